using System.CommandLine;
using Mcir.Host.Plugins;

namespace Mcir.Host.Commands;

/// <summary>The <c>--plugins</c> / <c>--plugin-dir</c> options shared by commands that need plugins.</summary>
internal sealed class PluginOptions
{
    public Option<string[]> Plugins { get; } = new("--plugins")
    {
        Description = "Plugin assemblies to load (DLL paths)",
        AllowMultipleArgumentsPerToken = true,
    };

    public Option<string?> PluginDir { get; } = new("--plugin-dir")
    {
        Description = "Folder of plugins (DIR/<Name>/<Name>.dll); default: the plugins built with mcir-host",
    };

    public void AddTo(Command command)
    {
        command.Options.Add(Plugins);
        command.Options.Add(PluginDir);
    }

    /// <summary>The plugins chosen on the command line: explicit files win over a folder, the default folder last.</summary>
    public IReadOnlyList<LoadedPlugin> Load(ParseResult r)
    {
        var files = r.GetValue(Plugins) ?? [];
        if (files.Length > 0) return PluginLoader.Load(files);
        string dir = r.GetValue(PluginDir) ?? DefaultPluginDir;
        if (r.GetValue(PluginDir) is null && !Directory.Exists(dir)) return [];
        return PluginLoader.Load(PluginLoader.Discover(dir));
    }

    /// <summary>The chosen plugin options as command-line arguments (absolute paths), for a child process of the host.</summary>
    public IReadOnlyList<string> Arguments(ParseResult r)
    {
        var files = r.GetValue(Plugins) ?? [];
        if (files.Length > 0) return ["--plugins", .. files.Select(Path.GetFullPath)];
        return r.GetValue(PluginDir) is { } dir ? ["--plugin-dir", Path.GetFullPath(dir)] : [];
    }

    public static string DefaultPluginDir => Path.Combine(AppContext.BaseDirectory, "plugins");
}
