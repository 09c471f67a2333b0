using System.Reflection;
using Mcir.Abstractions;
using Mcir.Abstractions.Models;
using Mcir.Core;
using McMaster.NETCore.Plugins;
using Microsoft.Extensions.DependencyInjection;
using TorchSharp;

namespace Mcir.Host.Plugins;

/// <summary>A plugin assembly loaded into its own load context, with the contract shared with the host.</summary>
public sealed record LoadedPlugin(string Path, Assembly Assembly, IMcirPluginRegistrar Registrar)
{
    public string Name => Assembly.GetName().Name ?? System.IO.Path.GetFileNameWithoutExtension(Path);
}

/// <summary>
/// Loads plugin assemblies with McMaster.NETCore.Plugins. The contract (Mcir.Abstractions), TorchSharp and the DI
/// abstractions are shared with the host, so a plugin's types are the host's types and libtorch is loaded once.
/// The host finds a plugin's registrar through its <see cref="McirPluginAttribute"/>, never by scanning types.
/// </summary>
public static class PluginLoader
{
    private static readonly Type[] SharedTypes =
    [
        typeof(IMcirPluginRegistrar), typeof(torch), typeof(IServiceCollection),
    ];

    /// <summary>The plugin files of a folder: <c>DIR/&lt;Name&gt;/&lt;Name&gt;.dll</c> (the layout the build produces).</summary>
    public static IReadOnlyList<string> Discover(string pluginDir)
    {
        if (!Directory.Exists(pluginDir))
            throw new McirException($"--plugin-dir {pluginDir}: folder not found");
        return Directory.EnumerateDirectories(pluginDir)
            .Select(d => System.IO.Path.Combine(d, System.IO.Path.GetFileName(d) + ".dll"))
            .Where(File.Exists)
            .Order(StringComparer.Ordinal)
            .ToList();
    }

    public static IReadOnlyList<LoadedPlugin> Load(IEnumerable<string> paths) => paths.Select(LoadOne).ToList();

    public static LoadedPlugin LoadOne(string path)
    {
        string full = System.IO.Path.GetFullPath(path);
        if (!File.Exists(full))
            throw new McirException($"{path}: plugin file not found");
        Assembly assembly;
        try
        {
            var loader = PluginLoader_.CreateFromAssemblyFile(full, SharedTypes, c => c.PreferSharedTypes = true);
            assembly = loader.LoadDefaultAssembly();
        }
        catch (BadImageFormatException)
        {
            throw new McirException($"{path}: not a .NET assembly (expected a plugin DLL built against Mcir.Abstractions)");
        }
        catch (FileLoadException e)
        {
            throw new McirException($"{path}: cannot be loaded: {e.Message}");
        }
        var marker = assembly.GetCustomAttribute<McirPluginAttribute>()
            ?? throw new McirException($"{path}: not an Mcir plugin (no [assembly: McirPlugin]); plugins reference Mcir.Abstractions and the Mcir.Generators analyzer, which emits the marker");
        CheckContract(marker, path);
        if (!typeof(IMcirPluginRegistrar).IsAssignableFrom(marker.RegistrarType) || marker.RegistrarType.IsAbstract)
            throw new McirException($"{path}: its [McirPlugin] names {marker.RegistrarType.FullName}, which is not a concrete IMcirPluginRegistrar");
        var registrar = (IMcirPluginRegistrar)Activator.CreateInstance(marker.RegistrarType)!;
        return new LoadedPlugin(full, assembly, registrar);
    }

    internal static void CheckContract(McirPluginAttribute marker, string path)
    {
        if (marker.ContractMajor != ContractVersion.Major)
            throw new McirException($"{path}: built against plugin contract v{marker.ContractMajor}, this host provides v{ContractVersion.Major}; rebuild the plugin against this Mcir.Abstractions");
    }

    // McMaster's type has the same name as this class.
    private static class PluginLoader_
    {
        public static McMaster.NETCore.Plugins.PluginLoader CreateFromAssemblyFile(string path, Type[] shared, Action<PluginConfig> configure) =>
            McMaster.NETCore.Plugins.PluginLoader.CreateFromAssemblyFile(path, shared, configure);
    }
}
