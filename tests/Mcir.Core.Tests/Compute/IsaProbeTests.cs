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
        // AVX2 would replace the baseline: both are timed again, the baseline first, before it does.
        Assert.Equal(["AVX", "ALL", "AVX512_CORE", "AVX2", "AVX", "AVX2"], calls);
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
        Assert.Equal(["AVX", "AVX2", "AVX", "AVX2"], calls);
    }

    [Fact]
    public void A_setting_must_be_faster_by_more_than_the_minimum_gain_to_replace_the_best_so_far()
    {
        using var tmp = new TempDir();
        string? Child(string isa, string path)
        {
            switch (isa)
            {
                case "AVX": Write(path, 0, 0, 1.00); return null;
                case "AVX2": Write(path, 0, 0, 0.99); return null;        // 1 % faster: noise, the baseline stays
                case "AVX512_CORE": Write(path, 0, 0, 0.97); return null; // 3 % faster than the baseline: replaces it
                case "ALL": Write(path, 0, 0, 0.96); return null;         // 1 % faster than that: noise again
                default: throw new InvalidOperationException(isa);
            }
        }
        Assert.Equal("AVX", IsaProbe.Choose("a", "AVX", ["AVX2"], Child, Path.Combine(tmp.Path, "a.json"), "m").Isa);
        Assert.Equal("AVX512_CORE", IsaProbe.Choose("b", "AVX", ["AVX2", "AVX512_CORE", "ALL"], Child, Path.Combine(tmp.Path, "b.json"), "m").Isa);
        Assert.Equal(0.02, IsaProbe.MinimumGain);
    }

    [Fact]
    public void A_new_best_is_timed_again_with_the_best_so_far_and_replaces_it_only_if_its_gain_holds()
    {
        using var tmp = new TempDir();
        // A noisy first baseline (1.81 s, later 1.51 s) made a slower setting (1.69 s, later 1.65 s) look faster: the
        // times seen on a shared Zen 5 guest. Each keeps its fastest child; the baseline wins.
        var times = new Dictionary<string, Queue<double>> { ["AVX"] = new([1.81, 1.51]), ["AVX2"] = new([1.69, 1.65]) };
        var calls = new List<string>();
        var choice = IsaProbe.Choose("w", "AVX", ["AVX2"], (isa, path) => { calls.Add(isa); Write(path, 0, 0, times[isa].Dequeue()); return null; },
            Path.Combine(tmp.Path, "c.json"), "m");
        Assert.Equal(["AVX", "AVX2", "AVX", "AVX2"], calls);
        Assert.Equal("AVX", choice.Isa);
        Assert.Equal(1.51, choice.Results.Single(r => r.Isa == "AVX").StepSeconds);
        Assert.Equal(1.65, choice.Results.Single(r => r.Isa == "AVX2").StepSeconds);

        // A real gain holds: the candidate is chosen. A candidate that fails when timed again is rejected, saying so.
        times = new() { ["AVX"] = new([1.8, 1.7]), ["AVX2"] = new([1.2, 1.25]) };
        Assert.Equal("AVX2", IsaProbe.Choose("w2", "AVX", ["AVX2"], (isa, path) => { Write(path, 0, 0, times[isa].Dequeue()); return null; },
            Path.Combine(tmp.Path, "c.json"), "m").Isa);
        int avx2Runs = 0;
        var flaky = IsaProbe.Choose("w3", "AVX", ["AVX2"], (isa, path) =>
        {
            if (isa == "AVX2" && ++avx2Runs == 2) return "killed by SIGSEGV";
            Write(path, 0, 0, isa == "AVX" ? 1.0 : 0.5);
            return null;
        }, Path.Combine(tmp.Path, "c.json"), "m");
        Assert.Equal("AVX", flaky.Isa);
        Assert.Equal("failed when timed again: killed by SIGSEGV", flaky.Results.Single(r => r.Isa == "AVX2").Failure);
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

    // A probe child's file with negatives: output, negatives [K=2, 1, 1, 4], a gradient and its step time.
    private static void WriteWithNegatives(string path, float negativesShift, double seconds, float outputShift = 0)
    {
        using var output = arange(1, 101, dtype: float32).reshape(4, 25).add(outputShift);
        using var negatives = linspace(0, 1, 8, dtype: float32).reshape(2, 1, 1, 4).add(negativesShift);
        using var grad = linspace(-1, 1, 50, dtype: float32);
        using var file = new TensorFile([new("output", output.clone()), new(IsaProbe.NegativesName, negatives.clone()),
                new(IsaProbe.GradientPrefix + "conv.weight", grad.clone())],
            new Dictionary<string, string> { [IsaProbe.SecondsKey] = seconds.ToString("R", CultureInfo.InvariantCulture) });
        SafetensorsFile.Write(path, file);
    }

    [Fact]
    public void Stages_build_on_the_best_setting_so_far_and_bfloat16_negatives_are_compared_on_their_own_scale()
    {
        using var tmp = new TempDir();
        string cache = Path.Combine(tmp.Path, "c.json");
        var (baseline, stages) = IsaProbe.Plan(Cpu("avx avx2 avx512f avx512_bf16"), engineCap: "AVX", userCap: null, formatsFixed: false,
            hasEmbedding: true, autoPrecision: true);
        var calls = new List<ComputeSetting>();
        string? Child(ComputeSetting s, string path)
        {
            calls.Add(s);
            if (s.AutoPrecision == NegativePrecision.BFloat16) WriteWithNegatives(path, 0.1f, 0.3);             // 10 % off: bfloat16 rounding
            else if (s.Model == MemoryFormat.Contiguous) WriteWithNegatives(path, 0, 0.2, outputShift: float.NaN); // a wrong kernel, fast
            else if (s.Embedding == MemoryFormat.Contiguous) WriteWithNegatives(path, 0, 0.6);                 // right, slower
            else WriteWithNegatives(path, s.Isa == "AVX512_CORE" ? 1e-6f : 0, s.Isa switch { "AVX" => 2.0, "AVX512_CORE" => 0.5, _ => 1.0 });
            return null;
        }
        var choice = IsaProbe.Choose("w", baseline, stages, Child, cache, "m");

        // Stage 1: the caps; stage 2: the formats under the best cap (AVX512_CORE); stage 3: bfloat16 under ALL (AVX512_CORE
        // is below bfloat16's kernels). Each new best (ALL over AVX, AVX512_CORE over ALL, bfloat16 over AVX512_CORE) is
        // confirmed by timing the best so far and it again.
        Assert.Equal(new ComputeSetting("AVX", AutoPrecision: NegativePrecision.Float32), calls[0]);
        Assert.Equal(["AVX", "ALL", "AVX", "ALL", "AVX512_CORE", "ALL", "AVX512_CORE", "AVX2", "AVX512_CORE", "AVX512_CORE", "AVX512_CORE", "ALL", "AVX512_CORE", "ALL"],
            calls.Select(c => c.Isa));
        Assert.Equal(new[] { MemoryFormat.Contiguous, MemoryFormat.ChannelsLast, MemoryFormat.Contiguous }, calls.Skip(8).Take(3).Select(c => c.Model));
        Assert.Equal(new[] { MemoryFormat.ChannelsLast, MemoryFormat.Contiguous, MemoryFormat.Contiguous }, calls.Skip(8).Take(3).Select(c => c.Embedding));
        Assert.Equal(new ComputeSetting("ALL", AutoPrecision: NegativePrecision.BFloat16), calls[^1]);
        Assert.Equal(calls[4], calls[^2]); // the best before bfloat16, timed again
        Assert.Equal(new ComputeSetting("ALL", AutoPrecision: NegativePrecision.BFloat16), choice.Setting);
        Assert.StartsWith("disagrees with AVX: relative error non-finite in the forward pass", choice.Results.Single(r => r.Setting == calls[8]).Failure);
        Assert.Contains("ALL, negatives bfloat16 0.30 s", choice.Describe(), StringComparison.Ordinal);

        // A float32 candidate whose negatives are 10 % off is a wrong kernel, not rounding.
        var (b2, s2) = IsaProbe.Plan(Cpu("avx avx2"), engineCap: "AVX", userCap: null, formatsFixed: true, hasEmbedding: true, autoPrecision: false);
        var strict = IsaProbe.Choose("w2", b2, s2, (s, path) => { WriteWithNegatives(path, s.Isa == "AVX2" ? 0.1f : 0, s.Isa == "AVX2" ? 0.5 : 1); return null; }, cache, "m");
        Assert.Equal("AVX", strict.Isa);
        Assert.StartsWith("disagrees with AVX: relative error 0.1", strict.Results.Single(r => r.Isa == "AVX2").Failure);

        // bfloat16 negatives beyond bfloat16's tolerance are rejected too.
        var (b3, s3) = IsaProbe.Plan(Cpu("avx avx2 avx512f avx512_bf16"), engineCap: null, userCap: null, formatsFixed: true, hasEmbedding: true, autoPrecision: true);
        var far = IsaProbe.Choose("w3", b3, s3, (s, path) =>
        {
            WriteWithNegatives(path, s.AutoPrecision == NegativePrecision.BFloat16 ? 0.5f : 0, s.AutoPrecision == NegativePrecision.BFloat16 ? 0.1 : 1);
            return null;
        }, cache, "m");
        Assert.Equal(NegativePrecision.Float32, far.Setting.AutoPrecision);
        Assert.EndsWith("in the bfloat16 negatives", far.Results[^1].Failure);
    }

    [Fact]
    public void The_plan_measures_only_what_is_left_to_choose()
    {
        var zen5 = Cpu("avx avx2 avx512f avx512_bf16");
        // No engine cap, formats fixed by the user, no auto precision: nothing to measure.
        Assert.Empty(IsaProbe.Plan(zen5, null, null, formatsFixed: true, hasEmbedding: true, autoPrecision: false).Stages);
        // No engine cap: the default ISA is the baseline and only the formats are measured (the model's alone without an embedding).
        var (baseline, stages) = IsaProbe.Plan(zen5, null, null, formatsFixed: false, hasEmbedding: false, autoPrecision: false);
        Assert.Equal(new ComputeSetting(ComputeSetting.DefaultIsa), baseline);
        Assert.Equal([new ComputeSetting(ComputeSetting.DefaultIsa, MemoryFormat.Contiguous)], Assert.Single(stages)(baseline));
        // A user's cap is kept: no ISA stage, and no bfloat16 stage when the cap is below bfloat16's kernels.
        var (userBase, userStages) = IsaProbe.Plan(zen5, "AVX", "AVX2", formatsFixed: false, hasEmbedding: true, autoPrecision: true);
        Assert.Equal(ComputeSetting.DefaultIsa, userBase.Isa);
        Assert.Single(userStages);
        // Without native bfloat16 an auto precision stays float32 (no stage).
        Assert.Empty(IsaProbe.Plan(Cpu("avx avx2"), null, null, formatsFixed: true, hasEmbedding: true, autoPrecision: true).Stages);
        // The children's environment: the cap (none for the default), the formats, the auto precision.
        var env = new ComputeSetting("AVX2", MemoryFormat.Contiguous, MemoryFormat.ChannelsLast, NegativePrecision.BFloat16).ChildEnvironment();
        Assert.Equal("AVX2", env["ONEDNN_MAX_CPU_ISA"]);
        Assert.Equal("model=contiguous,embedding=channels_last", env[ConvolutionLayout.Variable]);
        Assert.Equal("bfloat16", env[NegativePrecisionExtensions.AutoVariable]);
        Assert.Null(new ComputeSetting(ComputeSetting.DefaultIsa).ChildEnvironment()["ONEDNN_MAX_CPU_ISA"]);
    }
    [Fact]
    public void Thread_candidates_are_one_per_core_under_smt_and_half_the_processors_unless_the_user_set_them()
    {
        Assert.Equal([16, 8], IsaProbe.ThreadCandidates(32, threadsPerCore: 2, userSet: false)); // 16 cores × 2 hardware threads
        Assert.Equal([1], IsaProbe.ThreadCandidates(3, threadsPerCore: 1, userSet: false));       // 3 cores: half is 1
        Assert.Equal([4], IsaProbe.ThreadCandidates(8, threadsPerCore: 1, userSet: false));
        Assert.Equal([1], IsaProbe.ThreadCandidates(2, threadsPerCore: 1, userSet: false));       // a 2-vCPU guest
        Assert.Equal([2, 1], IsaProbe.ThreadCandidates(4, threadsPerCore: 2, userSet: false));
        Assert.Empty(IsaProbe.ThreadCandidates(1, threadsPerCore: 1, userSet: false));
        Assert.Empty(IsaProbe.ThreadCandidates(32, threadsPerCore: 2, userSet: true));            // OMP_NUM_THREADS wins
    }

    [Fact]
    public void Threads_are_measured_last_on_the_best_setting_and_the_faster_count_wins()
    {
        using var tmp = new TempDir();
        var (baseline, stages) = IsaProbe.Plan(Cpu("avx avx2"), engineCap: null, userCap: null, formatsFixed: false,
            hasEmbedding: false, autoPrecision: false, threadCandidates: [4, 2]);
        Assert.Equal(2, stages.Count);
        var calls = new List<ComputeSetting>();
        var choice = IsaProbe.Choose("w", baseline, stages, (s, path) =>
        {
            calls.Add(s);
            // The contiguous model is the faster format; 4 threads beat the default, 2 do not.
            Write(path, 0, 0, (s.Model == MemoryFormat.Contiguous ? 0.8 : 1.0) * (s.Threads switch { 4 => 0.9, 2 => 1.5, _ => 1.0 }));
            return null;
        }, Path.Combine(tmp.Path, "c.json"), "m");
        // Contiguous, then 4 threads, each confirmed (the best so far and the new best timed again).
        Assert.Equal([null, null, null, null, 4, null, 4, 2], calls.Select(c => c.Threads));
        Assert.Equal([MemoryFormat.ChannelsLast, MemoryFormat.Contiguous, MemoryFormat.ChannelsLast, MemoryFormat.Contiguous], calls.Take(4).Select(c => c.Model));
        Assert.All(calls.Skip(4), c => Assert.Equal(MemoryFormat.Contiguous, c.Model)); // built on the best format
        Assert.Equal(new ComputeSetting(ComputeSetting.DefaultIsa, MemoryFormat.Contiguous, Threads: 4), choice.Setting);
        Assert.Contains("model contiguous, 4 threads", choice.Describe(), StringComparison.Ordinal);
        Assert.Equal("4", choice.Setting.ChildEnvironment()[IsaProbe.ThreadsVariable]);
        Assert.Null(baseline.ChildEnvironment()[IsaProbe.ThreadsVariable]); // the default: inherited
        // No candidates: no stage.
        Assert.Single(IsaProbe.Plan(Cpu("avx avx2"), null, null, formatsFixed: false, hasEmbedding: false, autoPrecision: false, threadCandidates: []).Stages);
    }
}
