using Mcir.Abstractions.Components;
using Mcir.Abstractions.Models;
using Mcir.Core;
using Mcir.Core.Runs;
using Mcir.Host.Plugins;

// ReSharper disable once CheckNamespace
namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the engine's and the loaded plugins' components.</summary>
public static class PluginServiceCollectionExtensions
{
    /// <summary>The owner shown for components the engine registers itself.</summary>
    public const string EngineOwner = "engine";

    /// <summary>
    /// Registers the engine's own components (<see cref="McirEngineServiceCollectionExtensions.AddMcirEngineComponents"/>),
    /// then lets every plugin register its components. A name registered twice within a kind (model, degradation, loss term,
    /// data set layout, embedding) — by two plugins, or by a plugin and the engine — is an error naming both owners (checked here, where the assemblies are
    /// known, rather than later in the registries).
    /// </summary>
    public static IServiceCollection AddMcirPlugins(this IServiceCollection services, IEnumerable<LoadedPlugin> plugins)
    {
        // Every named component with its owner (the engine or a plugin file), checked once by the rule every registry
        // applies (ComponentNames.Unique), here with the owners' file names and before anything runs.
        var registered = new List<(IComponentDescriptor Descriptor, string Owner)>();
        var engine = new ServiceCollection().AddMcirEngineComponents();
        registered.AddRange(Named(engine).Select(d => (d, $"the engine ({typeof(McirException).Assembly.GetName().Name})")));
        foreach (var s in engine) services.Add(s);
        foreach (var plugin in plugins)
        {
            var own = new ServiceCollection();
            plugin.Registrar.Register(own);
            registered.AddRange(Named(own).Select(d => (d, $"the plugin {plugin.Path}")));
            foreach (var s in own) services.Add(s);
        }
        var owners = new Dictionary<IComponentDescriptor, string>(ReferenceEqualityComparer.Instance);
        foreach (var (d, owner) in registered) owners.TryAdd(d, owner);
        try { ComponentNames.Unique(registered.Select(r => r.Descriptor), d => owners[d]); }
        catch (DuplicateComponentException e) { throw new McirException(e.Message, e); }
        services.TryAddModelRegistry();
        return services;
    }

    public static RunRegistries GetRunRegistries(this IServiceProvider services) => new(
        services.GetRequiredService<IModelRegistry>(),
        services.GetRequiredService<IComponentRegistry<DegradationDescriptor>>(),
        services.GetRequiredService<IComponentRegistry<LossTermDescriptor>>(),
        services.GetRequiredService<IComponentRegistry<DatasetLayoutDescriptor>>(),
        services.GetRequiredService<IComponentRegistry<EmbeddingDescriptor>>());

    private static IEnumerable<IComponentDescriptor> Named(IServiceCollection registered) =>
        registered.Select(s => s.IsKeyedService ? null : s.ImplementationInstance).OfType<IComponentDescriptor>();
}
