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
