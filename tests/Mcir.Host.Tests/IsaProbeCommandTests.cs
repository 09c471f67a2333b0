using Mcir.Core.Compute;
using Mcir.Core.Weights;
using Mcir.Host.Commands;
using Xunit;

namespace Mcir.Host.Tests;

/// <summary>The probe child (<c>mcir-host probe-isa</c>) as IsaProbe starts it: a real mcir-host process.</summary>
public class IsaProbeCommandTests
{
    private static readonly string Host = Path.Combine(AppContext.BaseDirectory, "mcir-host");

    [Fact]
    public void A_probe_child_records_the_steps_forward_quantities_gradients_and_time()
    {
        using var tmp = new TempDir();
        string config = TinyRun.Write(tmp, "probe");
        string output = Path.Combine(tmp.Path, "probe.safetensors");
        // SSE41: a cap every x86-64 CPU this project runs on has, so the child runs anywhere.
        Assert.Null(IsaProbeCommand.RunChild("SSE41", config, output, [], Host));
        using var file = SafetensorsFile.Read(output);
        var names = file.Tensors.Select(t => t.Key).ToList();
        var shape = (string n) => file.Tensors.Single(t => t.Key == n).Value.shape;
        Assert.Equal([2L, 3, 32, 32], shape("output"));                // batch 2 of the 32x32 GT patches
        Assert.Equal([2L, 2, 3, 32, 32], shape("negatives"));          // K = 2 negatives (steps [2, 3])
        Assert.Contains(names, n => n.StartsWith("features.spn.", StringComparison.Ordinal));
        Assert.Contains(IsaProbe.GradientPrefix + "conv_first.weight", names);
        Assert.Equal("SSE41", file.Metadata["isa"]);
        Assert.True(double.Parse(file.Metadata[IsaProbe.SecondsKey], System.Globalization.CultureInfo.InvariantCulture) > 0);
        // The target was moved off its negatives, so the contrastive term has gradients everywhere.
        using var g = file.Tensors.Single(t => t.Key == IsaProbe.GradientPrefix + "conv_first.weight").Value.abs().sum();
        Assert.True(g.item<float>() > 0);
    }

    [Fact]
    public void A_thread_candidate_child_runs_with_that_many_libtorch_threads()
    {
        using var tmp = new TempDir();
        string config = TinyRun.Write(tmp, "probe-threads");
        string output = Path.Combine(tmp.Path, "probe.safetensors");
        Assert.Null(IsaProbeCommand.RunChild(new ComputeSetting("SSE41", Threads: 1), config, output, [], Host));
        using var file = SafetensorsFile.Read(output);
        Assert.Equal("1", file.Metadata["threads"]);
    }

    [Theory]
    [InlineData(OneDnnCacheSizes.SwitchVariable, "'on' or 'off'")]
    [InlineData(FusedConvolution.SwitchVariable, "'on' or 'off'")]
    [InlineData(WinogradConvolution.SwitchVariable, "'auto', 'benchmark', 'on' or 'off'")]
    public async Task A_bad_compute_switch_stops_the_host_with_one_line(string variable, string expected)
    {
        var psi = new System.Diagnostics.ProcessStartInfo(Host) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add("bench");
        psi.ArgumentList.Add("--rounds");
        psi.ArgumentList.Add("1");
        psi.Environment[variable] = "maybe";
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        string err = await p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(TimeSpan.FromMinutes(2)), "mcir-host did not stop");
        Assert.Equal(1, p.ExitCode);
        Assert.Equal($"error: {variable}: expected {expected}, got 'maybe'", err.Trim());
        Assert.Equal("", (await stdout).Trim());
    }

    [Fact]
    public async Task A_run_logs_the_settings_in_force_after_the_probe_chose_them()
    {
        using var tmp = new TempDir();
        string config = TinyRun.Write(tmp, "probed");
        // The user's cap and formats leave only the thread stage (one child per candidate besides the baseline's).
        var psi = new System.Diagnostics.ProcessStartInfo(Host) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "run", "--config", config }) psi.ArgumentList.Add(a);
        psi.Environment["ONEDNN_MAX_CPU_ISA"] = "SSE41";
        psi.Environment[ConvolutionLayout.Variable] = "channels_last";
        psi.Environment.Remove(IsaProbe.ThreadsVariable);
        psi.Environment["XDG_CACHE_HOME"] = Path.Combine(tmp.Path, "cache");
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        string err = await p.StandardError.ReadToEndAsync();
        Assert.True(p.WaitForExit(TimeSpan.FromMinutes(5)), "mcir-host run did not finish within 5 minutes");
        Assert.True(p.ExitCode == 0, $"exit {p.ExitCode}\n{err}\n{await stdout}");
        var lines = err.Split('\n');
        int cpu = Array.FindIndex(lines, l => l.StartsWith("cpu: ", StringComparison.Ordinal));
        Assert.True(cpu >= 0, err);
        var candidates = IsaProbe.ThreadCandidates(Environment.ProcessorCount, CpuFeatures.Machine.ThreadsPerCore, userSet: false);
        if (candidates.Count == 0) return; // one processor: nothing to measure
        int timing = Array.FindLastIndex(lines, l => l.StartsWith("compute settings: timing", StringComparison.Ordinal));
        Assert.True(timing >= 0 && timing < cpu, $"the settings line comes after the probe's children:\n{err}");
        Assert.StartsWith("compute settings measured for this workload on this machine: ", lines[cpu + 1]);
        foreach (int t in candidates) Assert.Contains(t == 1 ? ", 1 thread " : $", {t} threads ", lines[cpu + 1]); // each candidate was measured
        // When the probe chose fewer threads, the settings line says so: it is printed after the choice was applied.
        string chosen = lines[cpu + 1]["compute settings measured for this workload on this machine: ".Length..].Split(" (")[0];
        if (System.Text.RegularExpressions.Regex.Match(chosen, @"(\d+) threads?$") is { Success: true } m)
            Assert.Contains($", {m.Groups[1].Value} libtorch threads;", lines[cpu]);
    }

    [Fact]
    public void A_probe_child_that_fails_reports_its_error_line()
    {
        using var tmp = new TempDir();
        string config = TinyRun.Write(tmp, "probe-bad");
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"edsr-light\"", "\"no-such-model\""));
        string? failure = IsaProbeCommand.RunChild("SSE41", config, Path.Combine(tmp.Path, "x.safetensors"), [], Host);
        Assert.NotNull(failure);
        Assert.StartsWith("exit 1: error: ", failure);
        Assert.Contains("no-such-model", failure, StringComparison.Ordinal);
    }
}
