using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Mcir.Core;
using Mcir.Core.Compute;
using Mcir.Core.Config;
using Mcir.Core.Runs;
using Microsoft.Extensions.DependencyInjection;

namespace Mcir.Host.Commands;

/// <summary>
/// The oneDNN ISA probe (<see cref="IsaProbe"/>) from the host's side: the hidden <c>probe-isa</c> command a probe child
/// runs, and <see cref="SelectFor"/>, which <c>run</c> calls before it builds anything.
/// </summary>
internal static class IsaProbeCommand
{
    public const string Name = "probe-isa";

    /// <summary>Longest a probe child may take before it is killed and its cap rejected.</summary>
    public static readonly TimeSpan ChildTimeout = TimeSpan.FromMinutes(10);

    public static Command Create(HostConsole console)
    {
        var config = new Option<string>("--config") { Description = "Resolved run configuration (JSON)", Required = true };
        var output = new Option<string>("--out") { Description = "Where to write the probe's output and gradients (safetensors)", Required = true };
        var plugins = new PluginOptions();
        var command = new Command(Name, "Runs one training step of a configuration under the oneDNN ISA cap of this process, for IsaProbe") { config, output };
        command.Hidden = true;
        plugins.AddTo(command);
        command.SetAction(r =>
        {
            var root = ConfigBinder.Load(r.GetValue(config)!);
            using var services = new ServiceCollection().AddMcirPlugins(plugins.Load(r)).BuildServiceProvider();
            IsaProbeRun.Execute(root, services.GetRunRegistries(), r.GetValue(output)!);
            return 0;
        });
        return command;
    }

    /// <summary>
    /// Where the engine capped oneDNN for a fault of this machine and the run trains on the CPU, measures (or reads
    /// from the cache) the fastest cap that computes this run's step like the safe one, and applies it. Prints one line.
    /// </summary>
    public static void SelectFor(JsonObject root, IReadOnlyList<string> pluginArguments, TextWriter log)
    {
        if (IsaProbe.ReasonNotToProbe() is not null) return;
        var config = RunComposition.Bind(root);
        if (!TorchDevice.Same(TorchDevice.Resolve(config.Device, "device"), TorchSharp.torch.CPU)) return;
        string baseline = OneDnnIsa.EngineCap!;
        var candidates = IsaProbe.Candidates(CpuFeatures.Machine, baseline);
        if (candidates.Count == 0) return;
        string workload = IsaProbe.WorkloadKey(IsaProbeRun.WorkloadDescription(root));
        string configFile = Path.Combine(Path.GetTempPath(), $"mcir-isa-probe-{Environment.ProcessId}-{workload}.json");
        try
        {
            File.WriteAllText(configFile, root.ToJsonString());
            IsaChoice choice;
            try
            {
                choice = IsaProbe.Choose(workload, baseline, candidates, (isa, outPath) =>
                {
                    log.WriteLine($"oneDNN: timing this run's step under ISA cap {isa} (once per machine and workload) ...");
                    return RunChild(isa, configFile, outPath, pluginArguments);
                }, IsaProbe.DefaultCachePath(), IsaProbe.MachineKey(CpuFeatures.Machine));
            }
            catch (McirException)
            {
                return; // the step cannot run even under the safe cap: the run itself reports why, in its own words
            }
            OneDnnIsa.Apply(choice);
        }
        finally
        {
            File.Delete(configFile);
        }
    }

    /// <summary>Runs <c>mcir-host probe-isa</c> under <paramref name="isa"/>; null on success, else why it failed.</summary>
    /// <param name="host">The mcir-host executable (default: this process's).</param>
    internal static string? RunChild(string isa, string configFile, string outPath, IReadOnlyList<string> pluginArguments, string? host = null)
    {
        var psi = new ProcessStartInfo(host ?? Environment.ProcessPath!) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        // Under `dotnet mcir-host.dll` the process is dotnet: the entry assembly comes first.
        if (host is null && Path.GetFileNameWithoutExtension(Environment.ProcessPath!) == "dotnet")
            psi.ArgumentList.Add(System.Reflection.Assembly.GetEntryAssembly()!.Location);
        foreach (var a in new[] { Name, "--config", configFile, "--out", outPath }.Concat(pluginArguments)) psi.ArgumentList.Add(a);
        psi.Environment["ONEDNN_MAX_CPU_ISA"] = isa;
        psi.Environment[IsaProbe.SwitchVariable] = "off";
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        var stdout = p.StandardOutput.ReadToEndAsync();
        if (!p.WaitForExit(ChildTimeout))
        {
            p.Kill(entireProcessTree: true);
            return $"no result within {ChildTimeout.TotalMinutes:F0} min";
        }
        p.WaitForExit();
        if (p.ExitCode == 0 && File.Exists(outPath)) return null;
        string last = (stderr.Result + stdout.Result).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault() ?? "";
        return p.ExitCode > 128 ? $"killed by {SignalName(p.ExitCode - 128)}" : $"exit {p.ExitCode}: {last}";
    }

    private static string SignalName(int signal) => signal switch
    {
        4 => "SIGILL", 6 => "SIGABRT", 7 => "SIGBUS", 8 => "SIGFPE", 9 => "SIGKILL", 11 => "SIGSEGV", _ => $"signal {signal}",
    };
}
