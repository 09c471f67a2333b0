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
    /// For a run on the CPU: measures (or reads from the cache) this machine's fastest compute settings for the run's step
    /// that compute it like the safe ones (<see cref="IsaProbe.Plan"/>: oneDNN's ISA cap where the engine capped it, the
    /// memory formats, bfloat16 negatives under <c>auto</c>, libtorch's threads), and applies them unless
    /// <paramref name="apply"/> is false. Prints one line per child it starts.
    /// </summary>
    /// <returns>The choice; null where nothing was probed (probe off, not the CPU, nothing to choose, or the step cannot run).</returns>
    /// <param name="step">What the log lines call the step timed (<c>bench</c> probes two).</param>
    public static IsaChoice? SelectFor(JsonObject root, IReadOnlyList<string> pluginArguments, TextWriter log, bool apply = true, string step = "this run's step")
    {
        if (IsaProbe.ReasonNotToProbe() is not null) return null;
        var config = RunComposition.Bind(root);
        if (!TorchDevice.Same(TorchDevice.Resolve(config.Device, "device"), TorchSharp.torch.CPU)) return null;
        bool hasEmbedding = config.Loss.Spn is not null || config.Loss.Cr is not null;
        bool auto = config.Negatives.Precision == NegativePrecision.Auto || config.Loss.Spn?.NegativePrecision == NegativePrecision.Auto;
        var threads = IsaProbe.ThreadCandidates(Environment.ProcessorCount, CpuFeatures.Machine.ThreadsPerCore, IsaProbe.ThreadsSetByUser);
        var (baseline, stages) = IsaProbe.Plan(CpuFeatures.Machine, OneDnnIsa.EngineCap, OneDnnIsa.UserCap, ConvolutionLayout.SetByUser, hasEmbedding, auto, threads);
        if (stages.Count == 0) return null;
        // What the user fixed is part of the workload: a choice measured under another cap or format does not hold.
        string fixedByUser = $"|isa cap {OneDnnIsa.UserCap ?? "engine"}|formats {(ConvolutionLayout.SetByUser ? ConvolutionLayout.Format(ConvolutionLayout.Model, ConvolutionLayout.Embedding) : "measured")}" +
            $"|threads {(IsaProbe.ThreadsSetByUser ? Environment.GetEnvironmentVariable(IsaProbe.ThreadsVariable) : $"measured of {Environment.ProcessorCount}")}";
        string workload = IsaProbe.WorkloadKey(IsaProbeRun.WorkloadDescription(root) + fixedByUser);
        string configFile = Path.Combine(Path.GetTempPath(), $"mcir-isa-probe-{Environment.ProcessId}-{workload}.json");
        try
        {
            File.WriteAllText(configFile, root.ToJsonString());
            IsaChoice choice;
            try
            {
                bool warmedUp = false;
                var timed = new HashSet<ComputeSetting>();
                choice = IsaProbe.Choose(workload, baseline, stages, (setting, outPath) =>
                {
                    if (!warmedUp)
                    {
                        // The first child of a probe ran 10-15 % slower than the same setting measured later (the
                        // baseline in four of five fresh probes on the Zen 5 guest, which then lost to a slower
                        // format): one child is run first and its time and output are discarded.
                        warmedUp = true;
                        log.WriteLine($"compute settings: warming up {step} under {setting.Describe()} (not timed) ...");
                        string warmUpPath = outPath + ".warm-up";
                        RunChild(setting, configFile, warmUpPath, pluginArguments);
                        File.Delete(warmUpPath);
                    }
                    log.WriteLine(timed.Add(setting)
                        ? $"compute settings: timing {step} under {setting.Describe()} (once per machine and workload) ..."
                        : $"compute settings: timing {step} again under {setting.Describe()} (confirming a new best) ...");
                    return RunChild(setting, configFile, outPath, pluginArguments);
                }, IsaProbe.DefaultCachePath(), IsaProbe.MachineKey(CpuFeatures.Machine));
            }
            catch (McirException)
            {
                return null; // the step cannot run even under the safe settings: the run itself reports why, in its own words
            }
            if (apply) IsaProbe.Apply(choice);
            return choice;
        }
        finally
        {
            File.Delete(configFile);
        }
    }

    /// <summary>Runs <c>mcir-host probe-isa</c> under the ISA cap <paramref name="isa"/> (channels-last, float32).</summary>
    internal static string? RunChild(string isa, string configFile, string outPath, IReadOnlyList<string> pluginArguments, string? host = null) =>
        RunChild(new ComputeSetting(isa), configFile, outPath, pluginArguments, host);

    /// <summary>Runs <c>mcir-host probe-isa</c> under <paramref name="setting"/>; null on success, else why it failed.</summary>
    /// <param name="host">The mcir-host executable (default: this process's).</param>
    internal static string? RunChild(ComputeSetting setting, string configFile, string outPath, IReadOnlyList<string> pluginArguments, string? host = null)
    {
        var psi = new ProcessStartInfo(host ?? Environment.ProcessPath!) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        // Under `dotnet mcir-host.dll` the process is dotnet: the entry assembly comes first.
        if (host is null && Path.GetFileNameWithoutExtension(Environment.ProcessPath!) == "dotnet")
            psi.ArgumentList.Add(System.Reflection.Assembly.GetEntryAssembly()!.Location);
        foreach (var a in new[] { Name, "--config", configFile, "--out", outPath }.Concat(pluginArguments)) psi.ArgumentList.Add(a);
        foreach (var (name, value) in setting.ChildEnvironment())
            if (value is not null) psi.Environment[name] = value;
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
