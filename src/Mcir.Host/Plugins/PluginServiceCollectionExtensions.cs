using Mcir.Abstractions.Models;
using Mcir.Core;
using Mcir.Host.Plugins;

// ReSharper disable once CheckNamespace
namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers loaded plugins' components.</summary>
public static class PluginServiceCollectionExtensions
{
    /// <summary>
    /// Lets every plugin register its components. Two plugins registering one model name is an error naming both
    /// assemblies (checked here, where the assemblies are known, rather than later in the registry).
    /// </summary>
    public static IServiceCollection AddMcirPlugins(this IServiceCollection services, IEnumerable<LoadedPlugin> plugins)
    {
        var owners = new Dictionary<string, LoadedPlugin>(StringComparer.Ordinal);
        foreach (var plugin in plugins)
        {
            var own = new ServiceCollection();
            plugin.Registrar.Register(own);
            foreach (var d in own.Where(s => s.ServiceType == typeof(ModelDescriptor)).Select(s => s.ImplementationInstance).OfType<ModelDescriptor>())
            {
                if (owners.TryGetValue(d.Name, out var other))
                    throw new McirException($"model '{d.Name}' is registered by two plugins: {other.Path} and {plugin.Path}; load only one of them");
                owners.Add(d.Name, plugin);
            }
            foreach (var s in own) services.Add(s);
        }
        services.AddSingleton<IModelRegistry, ModelRegistry>();
        return services;
    }
}
