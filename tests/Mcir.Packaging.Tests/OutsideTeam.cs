using System.Diagnostics;
using System.Reflection;
using System.Text;

namespace Mcir.Packaging.Tests;

/// <summary>
/// Does once per test run what a team outside the repository does: packs Mcir.Abstractions, the mcir-host tool and
/// Mcir.Templates (from this build, no-build, one pre-release version made for the run) into a local package source in
/// a temporary folder outside the repository; installs the tool there (<c>dotnet tool install --tool-path</c>) and the
/// template into a private template hive with a private DOTNET_CLI_HOME; runs <c>dotnet new mcir-plugin -n
/// Acme.Deblocking</c> and <c>dotnet build</c>. Restores use only the local source and, read-only, the machine's NuGet
/// package folder (TorchSharp, libtorch, xunit, as restored by this repository's build), into a package folder of the
/// temporary folder: nothing is downloaded and nothing is written to the user's home or NuGet cache.
/// Every step's duration is kept in <see cref="Timings"/> (printed by the tests).
/// </summary>
public sealed class OutsideTeam : IDisposable
{
    /// <summary>The registered names' prefix the template derives from <c>-n Acme.Deblocking</c>.</summary>
    public const string Task = "deblocking";

    public string Root { get; } = Path.Combine(Path.GetTempPath(), "mcir-outside-" + Guid.NewGuid().ToString("N")[..12]);
    public string Version { get; }
    public string Packages => Path.Combine(Root, "packages");
    public string ToolPath => Path.Combine(Root, "tools");
    public string McirHost => Path.Combine(ToolPath, "mcir-host");
    public string ProjectDir => Path.Combine(Root, "Acme.Deblocking");
    public string PluginDll => Path.Combine(ProjectDir, "src", "Acme.Deblocking", "bin", "Debug", "net10.0", "Acme.Deblocking.dll");
    public List<(string Step, TimeSpan Took)> Timings { get; } = [];

    private static readonly string RepoRoot = Metadata("McirRepoRoot");
    private static readonly string Configuration = Metadata("McirConfiguration");
    private static readonly string MachinePackages = Metadata("McirNuGetPackageRoot");

    public OutsideTeam()
    {
        string suffix = "citest." + DateTime.UtcNow.ToString("yyyyMMddHHmmss") + "." + Guid.NewGuid().ToString("N")[..6];
        Directory.CreateDirectory(Packages);
        File.WriteAllText(Path.Combine(Root, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{Packages}" />
              </packageSources>
              <config>
                <add key="globalPackagesFolder" value="{Path.Combine(Root, "nuget-packages")}" />
              </config>
              <fallbackPackageFolders>
                <add key="machine" value="{MachinePackages}" />
              </fallbackPackageFolders>
            </configuration>
            """);

        // Pack once, from this build. The publish folder of the tool goes to the temporary folder too.
        foreach (string project in new[] { "src/Mcir.Abstractions", "src/Mcir.Host", "templates/Mcir.Templates" })
            Dotnet(RepoRoot, $"pack {project}", "pack", Path.Combine(RepoRoot, project), "-c", Configuration, "--no-build",
                "-o", Packages, $"-p:VersionSuffix={suffix}", $"-p:PublishDir={Path.Combine(Root, "publish", Path.GetFileName(project))}/");
        string abstractions = Directory.GetFiles(Packages, "Mcir.Abstractions.*.nupkg").Single();
        Version = Path.GetFileNameWithoutExtension(abstractions)["Mcir.Abstractions.".Length..];
        Assert.EndsWith(suffix, Version);

        Dotnet(Root, "tool install", "tool", "install", "Mcir.Host", "--tool-path", ToolPath, "--add-source", Packages, "--version", Version);
        Dotnet(Root, "new install", "new", "install", Path.Combine(Packages, $"Mcir.Templates.{Version}.nupkg"), "--debug:custom-hive", Hive);
        Dotnet(Root, "new mcir-plugin", "new", "mcir-plugin", "-n", "Acme.Deblocking", "-o", ProjectDir, "--debug:custom-hive", Hive);
        Dotnet(ProjectDir, "build", "build", "Acme.Deblocking.slnx");
    }

    private string Hive => Path.Combine(Root, "template-hive");

    /// <summary>Runs <c>dotnet</c> in <paramref name="workingDir"/>; asserts exit code 0 and returns what it printed.</summary>
    public string Dotnet(string workingDir, string step, params string[] args)
    {
        var (code, output) = Run(DotnetExe, workingDir, step, args);
        Assert.True(code == 0, $"dotnet {string.Join(' ', args)} exited {code}:\n{output}");
        return output;
    }

    /// <summary>Runs a program with the outside team's environment; its exit code and stdout + stderr.</summary>
    public (int Code, string Output) Run(string program, string workingDir, string step, params string[] args)
    {
        var start = new ProcessStartInfo(program)
        {
            WorkingDirectory = workingDir,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string a in args) start.ArgumentList.Add(a);
        // The test host inherits MSBuild's and vstest's variables from `dotnet test`; an outside shell has none.
        foreach (string name in start.Environment.Keys.ToList())
            if (name.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase) || name.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase))
                start.Environment.Remove(name);
        start.Environment["DOTNET_CLI_HOME"] = Path.Combine(Root, "home");
        start.Environment["NUGET_PACKAGES"] = Path.Combine(Root, "nuget-packages");
        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        start.Environment["DOTNET_CLI_UI_LANGUAGE"] = "en";
        // No MSBuild node or build server outlives the step.
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        start.Environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
        start.Environment["UseSharedCompilation"] = "false";
        start.Environment["OMP_WAIT_POLICY"] = "PASSIVE";

        var output = new StringBuilder();
        var clock = Stopwatch.StartNew();
        using var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => { if (e.Data != null) lock (output) output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (output) output.AppendLine(e.Data); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (!process.WaitForExit(TimeSpan.FromMinutes(15)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', args)} did not finish in 15 minutes:\n{output}");
        }
        process.WaitForExit();
        lock (Timings) Timings.Add((step, clock.Elapsed));
        lock (output) return (process.ExitCode, output.ToString());
    }

    public string Report() => string.Join("\n", Timings.Select(t => $"{t.Step,-20} {t.Took.TotalSeconds,7:F1} s"));

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static string DotnetExe => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } p && File.Exists(p) ? p : "dotnet";

    private static string Metadata(string key) =>
        typeof(OutsideTeam).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value
        ?? throw new InvalidOperationException($"assembly metadata {key} missing");
}
