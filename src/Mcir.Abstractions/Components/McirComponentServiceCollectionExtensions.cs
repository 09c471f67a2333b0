using Mcir.Abstractions.Components;
using Microsoft.Extensions.DependencyInjection.Extensions;

// The Microsoft.Extensions convention: Add* extensions live in the DI namespace so they are found without a using.
// ReSharper disable once CheckNamespace
namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registration of named Mcir components (degradations, loss terms, data set layouts, SPN embeddings) in a service collection; models register through McirModelServiceCollectionExtensions.</summary>
public static class McirComponentServiceCollectionExtensions
{
    /// <summary>
    /// Registers <paramref name="descriptor"/> as a singleton <see cref="DegradationDescriptor"/> and, once, the default
    /// <see cref="IComponentRegistry{TDescriptor}"/> of degradations over all of them.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="descriptor">The degradation's descriptor.</param>
    /// <returns><paramref name="services"/>, for chaining.</returns>
    public static IServiceCollection AddMcirDegradation(this IServiceCollection services, DegradationDescriptor descriptor) =>
        AddComponent<DegradationDescriptor, DegradationRegistry>(services, descriptor);

    /// <summary>
    /// Registers <paramref name="descriptor"/> as a singleton <see cref="LossTermDescriptor"/> and, once, the default
    /// <see cref="IComponentRegistry{TDescriptor}"/> of loss terms over all of them.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="descriptor">The loss term's descriptor.</param>
    /// <returns><paramref name="services"/>, for chaining.</returns>
    public static IServiceCollection AddMcirLossTerm(this IServiceCollection services, LossTermDescriptor descriptor) =>
        AddComponent<LossTermDescriptor, LossTermRegistry>(services, descriptor);

    /// <summary>
    /// Registers <paramref name="descriptor"/> as a singleton <see cref="DatasetLayoutDescriptor"/> and, once, the default
    /// <see cref="IComponentRegistry{TDescriptor}"/> of data set layouts over all of them.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="descriptor">The layout's descriptor.</param>
    /// <returns><paramref name="services"/>, for chaining.</returns>
    public static IServiceCollection AddMcirDatasetLayout(this IServiceCollection services, DatasetLayoutDescriptor descriptor) =>
        AddComponent<DatasetLayoutDescriptor, DatasetLayoutRegistry>(services, descriptor);

    /// <summary>Registers a feature embedding for SPN (<c>loss.spn.embedding_type</c>); see <see cref="EmbeddingDescriptor"/>.</summary>
    /// <param name="services">The service collection.</param>
    /// <param name="descriptor">The embedding's descriptor.</param>
    /// <returns>The same collection.</returns>
    public static IServiceCollection AddMcirEmbedding(this IServiceCollection services, EmbeddingDescriptor descriptor) =>
        AddComponent<EmbeddingDescriptor, EmbeddingRegistry>(services, descriptor);

    // One singleton per component, and once the registry over all components of the kind.
    private static IServiceCollection AddComponent<TDescriptor, TRegistry>(IServiceCollection services, TDescriptor descriptor)
        where TDescriptor : class, IComponentDescriptor
        where TRegistry : class, IComponentRegistry<TDescriptor>
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(descriptor);
        services.AddSingleton(descriptor);
        services.TryAddSingleton<IComponentRegistry<TDescriptor>, TRegistry>();
        return services;
    }
}
