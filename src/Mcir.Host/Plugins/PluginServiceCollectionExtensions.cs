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
    /// then lets every plugin register its components. A model, degradation or loss-term name registered twice — by two
    /// plugins, or by a plugin and the engine — is an error naming both owners (checked here, where the assemblies are
    /// known, rather than later in the registries).
    /// </summary>
    public static IServiceCollection AddMcirPlugins(this IServiceCollection services, IEnumerable<LoadedPlugin> plugins)
    {
        var engine = new ServiceCollection().AddMcirEngineComponents();
        var owners = new Dictionary<(string Kind, string Name), string>();
        Claim(owners, engine, EngineOwner);
        foreach (var s in engine) services.Add(s);
        foreach (var plugin in plugins)
        {
            var own = new ServiceCollection();
            plugin.Registrar.Register(own);
            Claim(owners, own, plugin.Path);
            foreach (var s in own) services.Add(s);
        }
        services.AddSingleton<IModelRegistry, ModelRegistry>();
        return services;
    }

    /// <summary>The registries a run resolves configured names in.</summary>
    public static RunRegistries GetRunRegistries(this IServiceProvider services) => new(
        services.GetRequiredService<IModelRegistry>(),
        services.GetRequiredService<IComponentRegistry<DegradationDescriptor>>(),
        services.GetRequiredService<IComponentRegistry<LossTermDescriptor>>(),
        services.GetRequiredService<IComponentRegistry<DatasetLayoutDescriptor>>());

    private static void Claim(Dictionary<(string Kind, string Name), string> owners, IServiceCollection registered, string owner)
    {
        foreach (var (kind, name) in registered.Select(s => s.ImplementationInstance).Select(Named).OfType<(string, string)>())
        {
            if (owners.TryGetValue((kind, name), out var other))
                throw new McirException(other == EngineOwner
                    ? $"{kind} '{name}' is built into the engine (Mcir.Core) and registered again by the plugin {owner}; the plugin must use another name"
                    : $"{kind} '{name}' is registered by two plugins: {other} and {owner}; load only one of them");
            owners.Add((kind, name), owner);
        }
    }

    private static (string Kind, string Name)? Named(object? instance) => instance switch
    {
        ModelDescriptor m => ("model", m.Name),
        DegradationDescriptor d => ("degradation", d.Name),
        LossTermDescriptor l => ("loss term", l.Name),
        DatasetLayoutDescriptor d => ("data set layout", d.Name),
        _ => null,
    };
}
