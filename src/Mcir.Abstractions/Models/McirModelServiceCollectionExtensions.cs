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
        services.TryAddModelRegistry();
        return services;
    }

    /// <summary>
    /// Registers named presets of <paramref name="model"/>: the same architecture under other names with other default
    /// options (e.g. <c>edsr-light</c> beside <c>edsr</c>), with the model's tile safety. A preset named like the model
    /// itself is skipped (the model's own descriptor already stands for it).
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="model">The generated descriptor of the architecture (<c>TModel.Descriptor</c>).</param>
    /// <param name="presets">Preset name → options.</param>
    /// <param name="describe">The one-line description shown by <c>mcir-host list</c> for a preset's options.</param>
    /// <returns>The service collection, for chaining.</returns>
    public static IServiceCollection AddMcirPresets<TOptions>(this IServiceCollection services, ModelDescriptor model,
        IReadOnlyDictionary<string, TOptions> presets, Func<TOptions, string> describe)
        where TOptions : notnull
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(presets);
        ArgumentNullException.ThrowIfNull(describe);
        foreach (var (name, options) in presets)
        {
            if (name == model.Name) continue;
            services.AddMcirModel(new ModelDescriptor(name, model.Tasks, describe(options), model.ModelType, model.OptionsType, options, model.Create)
            {
                TileSafe = model.TileSafe,
                TileSafetyNote = model.TileSafetyNote,
            });
        }
        return services;
    }

    /// <summary>
    /// Registers the <see cref="ModelRegistry"/> once, reachable both as <see cref="IModelRegistry"/> and as the
    /// <c>IComponentRegistry&lt;ModelDescriptor&gt;</c> every other kind is looked up with.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <returns>The same collection.</returns>
    public static IServiceCollection TryAddModelRegistry(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddSingleton<ModelRegistry>();
        services.TryAddSingleton<IModelRegistry>(sp => sp.GetRequiredService<ModelRegistry>());
        services.TryAddSingleton<Mcir.Abstractions.Components.IComponentRegistry<ModelDescriptor>>(sp => sp.GetRequiredService<ModelRegistry>());
        return services;
    }
}
