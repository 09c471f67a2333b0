using System.Globalization;
using Mcir.Core.Compute;
using Mcir.Core.Weights;
using Mcir.Core.Tests.Embeddings;
using Xunit;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Compute;

public class IsaProbeTests
{
    private static CpuFeatures Cpu(string flags) => new("Test CPU", "AuthenticAMD", 26, new HashSet<string>(flags.Split(' ')));

    [Fact]
    public void Candidates_are_the_caps_above_the_baseline_that_the_cpu_has()
    {
        Assert.Equal(["ALL", "AVX512_CORE", "AVX2"], IsaProbe.Candidates(Cpu("avx avx2 avx512f"), "AVX"));
        Assert.Equal(["ALL", "AVX512_CORE"], IsaProbe.Candidates(Cpu("avx avx2 avx512f"), "AVX2"));
        Assert.Equal(["AVX2"], IsaProbe.Candidates(Cpu("avx avx2"), "AVX"));
        Assert.Empty(IsaProbe.Candidates(Cpu("avx avx2"), "AVX2"));
    }

    // What a probe child writes: its output (a forward quantity), one gradient and its step time.
    private static void Write(string path, float outputShift, float gradientShift, double seconds)
    {
        using var output = arange(1, 101, dtype: float32).reshape(4, 25).add(outputShift);
        using var grad = linspace(-1, 1, 50, dtype: float32).add(gradientShift);
        using var file = new TensorFile([new("output", output.clone()), new(IsaProbe.GradientPrefix + "conv.weight", grad.clone())],
            new Dictionary<string, string> { [IsaProbe.SecondsKey] = seconds.ToString("R", CultureInfo.InvariantCulture) });
        SafetensorsFile.Write(path, file);
    }

    [Fact]
    public void The_fastest_cap_that_agrees_with_the_baseline_wins_and_is_cached()
    {
        using var tmp = new TempDir();
        string cache = Path.Combine(tmp.Path, "cache", "onednn-isa.json");
        var calls = new List<string>();
        string? Child(string isa, string path)
        {
            calls.Add(isa);
            switch (isa)
            {
                case "AVX": Write(path, 0, 0, 2.0); return null;
                case "ALL": return "killed by SIGFPE";
                case "AVX512_CORE": Write(path, 0.5f, 0, 0.5); return null;        // forward off by 0.5 of 100: wrong kernel
                case "AVX2": Write(path, 1e-5f, 1e-3f, 1.0); return null;          // rounding-sized differences, faster
                default: throw new InvalidOperationException(isa);
            }
        }
        var choice = IsaProbe.Choose("w1", "AVX", ["ALL", "AVX512_CORE", "AVX2"], Child, cache, "machine");
        Assert.Equal("AVX2", choice.Isa);
        Assert.False(choice.FromCache);
        Assert.Equal(["AVX", "ALL", "AVX512_CORE", "AVX2"], calls);
        Assert.Equal("killed by SIGFPE", choice.Results.Single(r => r.Isa == "ALL").Failure);
        Assert.StartsWith("disagrees with AVX: relative error 0.005 in the forward pass", choice.Results.Single(r => r.Isa == "AVX512_CORE").Failure);
        Assert.Null(choice.Results.Single(r => r.Isa == "AVX2").Failure);
        Assert.Contains("AVX2 1.00 s", choice.Describe(), StringComparison.Ordinal);

        // Measured once per machine and workload: the cache answers without children.
        var again = IsaProbe.Choose("w1", "AVX", ["ALL", "AVX512_CORE", "AVX2"], (_, _) => throw new InvalidOperationException("no child expected"), cache, "machine");
        Assert.True(again.FromCache);
        Assert.Equal("AVX2", again.Isa);
        Assert.Equal(choice.Results, again.Results);
        // Another workload or machine measures again.
        calls.Clear();
        Assert.Equal("AVX2", IsaProbe.Choose("w2", "AVX", ["AVX2"], Child, cache, "machine").Isa);
        Assert.Equal(["AVX", "AVX2"], calls);
    }

    [Fact]
    public void Gradients_that_differ_beyond_rounding_or_a_slower_cap_keep_the_baseline()
    {
        using var tmp = new TempDir();
        string cache = Path.Combine(tmp.Path, "c.json");
        var choice = IsaProbe.Choose("w", "AVX", ["AVX2", "AVX512_CORE"], (isa, path) =>
        {
            if (isa == "AVX") Write(path, 0, 0, 1.0);
            else if (isa == "AVX2") Write(path, 0, 0.3f, 0.5);   // gradients off by 0.3 (relative L2 ~0.5)
            else Write(path, 0, 0, 1.5);                         // agrees but slower
            return null;
        }, cache, "m");
        Assert.Equal("AVX", choice.Isa);
        Assert.StartsWith("disagrees with AVX: relative error", choice.Results.Single(r => r.Isa == "AVX2").Failure);
        Assert.EndsWith("in the gradients", choice.Results.Single(r => r.Isa == "AVX2").Failure);
        Assert.Null(choice.Results.Single(r => r.Isa == "AVX512_CORE").Failure);
    }

    [Fact]
    public void A_failing_baseline_is_an_error_naming_it_and_nothing_is_cached()
    {
        using var tmp = new TempDir();
        string cache = Path.Combine(tmp.Path, "c.json");
        var e = Assert.Throws<McirException>(() => IsaProbe.Choose("w", "AVX", ["AVX2"], (_, _) => "exit 1: error: bad model", cache, "m"));
        Assert.Equal("the ISA probe's baseline run (AVX) failed: exit 1: error: bad model", e.Message);
        Assert.False(File.Exists(cache));
    }

    [Fact]
    public void Non_finite_values_and_missing_tensors_never_agree()
    {
        using var a = new TensorFile([new("output", tensor(new float[] { 1, 2 }))], new Dictionary<string, string>());
        using var nan = new TensorFile([new("output", tensor(new float[] { 1, float.NaN }))], new Dictionary<string, string>());
        using var none = new TensorFile([new("other", tensor(new float[] { 1, 2 }))], new Dictionary<string, string>());
        Assert.Equal((0.0, 0.0), IsaProbe.RelativeErrors(a, a));
        Assert.Equal(double.PositiveInfinity, IsaProbe.RelativeErrors(a, nan).Forward);
        Assert.Equal(double.PositiveInfinity, IsaProbe.RelativeErrors(a, none).Forward);
    }
}
