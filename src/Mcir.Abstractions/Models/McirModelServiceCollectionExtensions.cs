using Mcir.Abstractions.Models;
using Microsoft.Extensions.DependencyInjection.Extensions;

// The Microsoft.Extensions convention: Add* extensions live in the DI namespace so they are found without a using.
// ReSharper disable once CheckNamespace
namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registration of Mcir models in a service collection.</summary>
public static class McirModelServiceCollectionExtensions
{
    /// <summary>
    /// Registers <paramref name="descriptor"/> as a singleton <see cref="ModelDescriptor"/> (one registration per
    /// model) and, once, the default <see cref="IModelRegistry"/> over all of them. The generated plugin registrar
    /// calls this for every <see cref="McirModelAttribute"/> model of its assembly.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="descriptor">The model's descriptor (usually the generated <c>TModel.Descriptor</c>).</param>
    /// <returns><paramref name="services"/>, for chaining.</returns>
    public static IServiceCollection AddMcirModel(this IServiceCollection services, ModelDescriptor descriptor)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(descriptor);
        services.AddSingleton(descriptor);
        services.TryAddSingleton<IModelRegistry, ModelRegistry>();
        return services;
    }
}
