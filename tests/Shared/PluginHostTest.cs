using Mcir.Host;

namespace Mcir.Tests.Shared;

/// <summary>
/// Base of a plugin's host tests: mcir-host run in-process (<see cref="HostCommands.Run"/>, the plugins bundled next to
/// the tests, loaded and registered as in a real run) in a temporary folder removed afterwards (linked into each plugin
/// test project that references the host).
/// </summary>
public abstract class PluginHostTest : IDisposable
{
    /// <summary>The test's temporary folder.</summary>
    protected string Dir { get; } = Path.Combine(Path.GetTempPath(), "mcir-plugin-host-" + Guid.NewGuid().ToString("N"));

    protected PluginHostTest() => Directory.CreateDirectory(Dir);

    public void Dispose()
    {
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
        GC.SuppressFinalize(this);
    }

    /// <summary>Runs mcir-host with <paramref name="args"/>; its exit code and what it printed.</summary>
    protected static (int Code, string Out, string Err) Host(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = HostCommands.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    /// <summary>A (created) sub-folder of <see cref="Dir"/>.</summary>
    protected string Sub(string name) => Directory.CreateDirectory(Path.Combine(Dir, name)).FullName;
}
