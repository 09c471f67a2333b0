using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mcir.Core.IO;
using Mcir.Core.ModelContrast;
using Mcir.Core.Runs;
using Mcir.Core.Training;
using Mcir.Core.Weights;
using Mcir.Host.Plugins;
using Microsoft.Extensions.DependencyInjection;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Mcir.Host.Tests.Training;

/// <summary>
/// Trajectory parity with the authors' training code: eight iterations of MCLIR's <c>SRNegModel_Multi</c> (EDSR
/// target, K = 2 negatives, <c>L1 − mean_j PerceptualLoss(output, neg_j)</c>, Adam, MultiStepLR, optional target
/// EMA) recorded with PyTorch 1.13 in TestData/trajectory (a copy of shared/fixtures/trajectory; its README gives
/// the formats and the tolerances used here). Each variant is replayed through the engine's own path, composed as
/// <c>mcir-host run</c> composes it (<see cref="TrainingRun.Execute"/>): the fixture's MCLIR option dict is written
/// as a run configuration and bound by <see cref="RunComposition.Bind"/>; the real EDSR of the SR plugin comes from
/// the plugin registry (<see cref="RunComposition.CreateModel"/>) and starts from <c>init_target.pth</c> through
/// <c>path.pretrain_network_g</c> (<see cref="TrainingRun.LoadPretrained"/>); the loss terms (L1 + SPN with the VGG16
/// weights file the fixture names, SHA-256 checked) come from <see cref="RunComposition.CreateLosses"/>; the
/// negative bank from <see cref="NegativeBank.Create"/> with <c>schedule_order: authors</c>; then the
/// <see cref="Trainer"/> runs. Two things differ from <c>mcir-host run</c>, both forced by the fixture: the batches
/// come from the fixture's <c>.npy</c> files (<see cref="InMemoryBatchSource"/>, in order) instead of a folder
/// loader, and the negatives' blended start is loaded from <c>init_neg{k}.pth</c> after the bank's own blend (the
/// fresh random initialisation inside the blend is torch's RNG, which C# cannot reproduce; the blend formula itself
/// is checked bit for bit by NegativeBankParityTests).
/// <para>Set <c>MCIR_TRAJECTORY_FIXTURES</c> to a folder with the same layout to replay another recording; its VGG
/// file is taken from <c>../spn/</c> beside it when present.</para>
/// </summary>
public class TrajectoryParityTests(ITestOutputHelper output)
{
    // The largest deviation seen per quantity (diff / tolerance), written to the test output.
    private readonly Dictionary<string, double> _worst = [];

    public static TheoryData<string> Variants() => new() { "lambda_1e-3", "lambda_0.1", "ema" };

    private static string FixtureRoot =>
        Environment.GetEnvironmentVariable("MCIR_TRAJECTORY_FIXTURES") is { Length: > 0 } env
            ? Path.GetFullPath(env)
            : Path.Combine(AppContext.BaseDirectory, "TestData", "trajectory");

    [Theory]
    [MemberData(nameof(Variants))]
    public void Replay_FollowsTheAuthorsTrajectory(string variant)
    {
        string dir = Path.Combine(FixtureRoot, variant);
        using var configDoc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "config.json")));
        using var expectedDoc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "expected.json")));
        var fixtureConfig = configDoc.RootElement;
        var expected = expectedDoc.RootElement;
        var opt = fixtureConfig.GetProperty("mclir_opt");
        var train = opt.GetProperty("train");
        var expectedIterations = expected.GetProperty("iterations").EnumerateArray().ToList();
        double lambda = train.GetProperty("perceptual_opt").GetProperty("perceptual_weight").GetDouble();
        bool withEma = train.TryGetProperty("ema_decay", out var emaDecay) && emaDecay.GetDouble() > 0;

        using var tmp = new TempDir();
        var root = RunConfiguration(opt, dir, VggFile(fixtureConfig), tmp.Path, variant);
        var config = RunComposition.Bind(root);
        Assert.Equal(expectedIterations.Count, config.Train.TotalIter);

        var plugins = PluginLoader.Load(PluginLoader.Discover(Path.Combine(AppContext.BaseDirectory, "plugins")));
        using var services = new ServiceCollection().AddMcirPlugins(plugins).BuildServiceProvider();
        var registries = services.GetRunRegistries();

        // As TrainingRun.Execute composes a run.
        torch.manual_seed(config.Train.Seed);
        using var net = RunComposition.CreateModel(registries.Models, config.Model, out _);
        TrainingRun.LoadPretrained(net, config.Path, TextWriter.Null);
        AssertSums(expected.GetProperty("init").GetProperty("target"), net, "init target", exactish: true);
        var terms = RunComposition.CreateLosses(config.Loss, registries.LossTerms);
        try
        {
            Assert.Equal(["l1", "spn"], terms.Select(t => t.Name));
            using var bank = NegativeBank.Create(net, config.Negatives);
            for (int k = 0; k < bank.Count; k++)
            {
                LoadStateDict(bank.Negatives[k], Path.Combine(dir, $"init_neg{k}.pth"), $"init_neg{k}.pth");
                AssertSums(expected.GetProperty("init").GetProperty($"neg{k}"), bank.Negatives[k], $"init neg{k}", exactish: true);
            }
            var guard = new CollapseGuard(config.CollapseGuard with { ReconstructionPart = terms[0].Name });
            var (lq, gt) = LoadBatches(dir, expectedIterations.Count);
            // the fixture's batches in order: iteration i takes samples 2(i − 1), 2(i − 1) + 1
            using var batches = new InMemoryBatchSource(lq, gt, (int)(lq.shape[0] / expectedIterations.Count), seed: 0, shuffle: false);
            lq.Dispose();
            gt.Dispose();

            var recorder = new Recorder();
            using var trainer = new Trainer(net, terms, batches, config.Train with { Name = config.Name }, Path.Combine(tmp.Path, config.Name), bank,
                validate: null, log: recorder, progress: null, collapseGuard: guard);
            var trace = new List<string>();
            trainer.StepTrace = trace.Add;
            recorder.Observe = record => recorder.Iterations.Add(Observe(record, net, bank, trainer.Ema?.Network));
            var outputSums = new List<double>();
            var negativeOutputSums = Enumerable.Range(0, bank.Count).Select(_ => new List<double>()).ToArray();
            var hook = net.register_forward_hook((_, _, y) => { outputSums.Add(Sum64(y)); return y; });
            var negativeHooks = bank.Negatives.Select((n, k) => n.register_forward_hook((_, _, y) => { negativeOutputSums[k].Add(Sum64(y)); return y; })).ToList();

            var result = trainer.Run();
            hook.remove();
            foreach (var h in negativeHooks) h.remove();
            Assert.True(result.Status == TrainingStatus.Completed, result.Message);
            Assert.Equal(expectedIterations.Count, recorder.Iterations.Count);
            Assert.Equal(withEma, trainer.Ema is not null);

            for (int i = 0; i < expectedIterations.Count; i++)
            {
                var e = expectedIterations[i];
                var got = recorder.Iterations[i];
                string at = $"{variant}, iteration {i + 1}";
                Assert.Equal(i + 1, e.GetProperty("iter").GetInt32());
                Assert.Equal(i + 1, got.Iteration);

                // exact: the learning rate of the step (BasicSR's schedule position i − 1)
                Assert.True(e.GetProperty("lr").GetDouble() == got.Lr, $"{at}: lr {got.Lr:R}, the authors' {e.GetProperty("lr").GetDouble():R}");

                // l_pix, l_total: |diff| ≤ 1e-6 — float32 losses of ~0.2 whose convolutions run in other kernels
                // (oneDNN/libtorch 2.10 vs PyTorch 1.13) on weights that already differ by float32 rounding (README).
                AssertClose(e.GetProperty("l_pix").GetDouble(), got.Parts["l1"], 1e-6, $"{at}: l_pix");
                AssertClose(e.GetProperty("l_total").GetDouble(), got.Parts["total"], 1e-6, $"{at}: l_total");
                // l_percep[j] = λ · Σ_l w_l mean|φ_l(o) − φ_l(n_j)| (spn/neg{j} is reported without λ): relative 1e-4,
                // the README's bound; these are small differences of VGG features, so their relative rounding is larger.
                var percep = e.GetProperty("l_percep").EnumerateArray().Select(x => x.GetDouble()).ToArray();
                Assert.Equal(bank.Count, percep.Length);
                for (int j = 0; j < percep.Length; j++)
                    AssertRelative(percep[j], lambda * got.Parts[$"spn/neg{j}"], 1e-4, $"{at}: l_percep[{j}]");
                AssertRelative(e.GetProperty("l_neg_sum_logged").GetDouble(), lambda * Enumerable.Range(0, bank.Count).Sum(j => got.Parts[$"spn/neg{j}"]), 1e-4, $"{at}: l_neg (sum)");
                // the SPN term enters as −λ·mean_j (the authors' l_total −= l_neg / neg_num)
                AssertClose(-percep.Average(), got.Parts["spn"], 1e-4 * percep.Max() + 1e-12, $"{at}: spn term = −mean_j l_percep[j]");

                // gradient norm before the step: relative 1e-4 (README)
                AssertRelative(e.GetProperty("grad_norm_l2_before_step").GetDouble(), got.GradNorm, 1e-4, $"{at}: gradient L2 norm");
                foreach (var p in e.GetProperty("grad_norm_per_tensor_before_step").EnumerateObject())
                    AssertClose(p.Value.GetDouble(), got.GradNormPerTensor[p.Name], 1e-4 * e.GetProperty("grad_norm_l2_before_step").GetDouble(), $"{at}: gradient norm of {p.Name}");

                // exact: which negatives were updated, with which decay
                var updated = e.GetProperty("negatives_updated").EnumerateArray().Select(x => x.GetInt32()).ToArray();
                Assert.True(updated.SequenceEqual(got.NegativesUpdated), $"{at}: negatives updated [{string.Join(", ", got.NegativesUpdated)}], the authors' [{string.Join(", ", updated)}]");
                foreach (var u in e.GetProperty("negative_updates").EnumerateArray())
                    Assert.Equal(u.GetProperty("decay").GetDouble(), bank.DecayOf(u.GetProperty("negative").GetInt32()));

                // weights: sums |diff| ≤ 2e-4, sum of squares relative ≤ 1e-5 (README; float32 steps of 21,763 weights)
                AssertStats(e.GetProperty("target_after_step"), got.Target, $"{at}: target after the step");
                foreach (var p in e.GetProperty("target_after_step_per_tensor_sum").EnumerateObject())
                    AssertClose(p.Value.GetDouble(), got.TargetPerTensor[p.Name], 2e-4, $"{at}: sum of target {p.Name}");
                var negatives = e.GetProperty("negatives_after_update").EnumerateArray().ToList();
                for (int k = 0; k < negatives.Count; k++)
                {
                    Assert.Equal(negatives[k].GetProperty("updated").GetBoolean(), got.NegativesUpdated.Contains(k));
                    AssertStats(negatives[k], got.Negatives[k], $"{at}: negative {k} at the end of the iteration");
                }
                if (withEma)
                {
                    Assert.True(e.GetProperty("ema_updated").GetBoolean());
                    AssertStats(e.GetProperty("ema_after_update"), got.Ema!, $"{at}: target EMA");
                }

                // outputs of this iteration (target and each negative, before the negatives' update): sums of 3,456
                // values ~0.4; relative 1e-5 covers float32 convolutions in other kernels on weights within the bounds above
                AssertRelative(e.GetProperty("output_sum").GetDouble(), outputSums[i], 1e-5, $"{at}: sum of f(x)");
                var negSums = e.GetProperty("neg_output_sums").EnumerateArray().Select(x => x.GetDouble()).ToArray();
                for (int k = 0; k < negSums.Length; k++)
                    AssertRelative(negSums[k], negativeOutputSums[k][i], 1e-5, $"{at}: sum of negative {k}'s output");

                // exact: the order of operations (the reference's recorded call sequence, in the trainer's phase names)
                Assert.Equal(ReferencePhases(e.GetProperty("trace")), OurPhases(trace, i));
            }
            Assert.Equal(expectedIterations.Count, outputSums.Count);
            Assert.All(negativeOutputSums, s => Assert.Equal(expectedIterations.Count, s.Count));

            // final weights: max |diff| ≤ 1e-4 per element, median ≤ 1e-7, at most 1 % of the elements above 1e-6 (README)
            AssertFinal(net, Path.Combine(dir, "final_target.pth"), $"{variant}: final target");
            for (int k = 0; k < bank.Count; k++)
                AssertFinal(bank.Negatives[k], Path.Combine(dir, $"final_neg{k}.pth"), $"{variant}: final negative {k}");
            if (withEma) AssertFinal(trainer.Ema!.Network, Path.Combine(dir, "final_ema.pth"), $"{variant}: final EMA");
            AssertSums(expected.GetProperty("final").GetProperty("target"), net, $"{variant}: final target", exactish: false);
            foreach (var (what, ratio) in _worst.OrderBy(kv => kv.Key))
                output.WriteLine($"{what}: largest deviation {ratio:P1} of its tolerance");
        }
        finally
        {
            foreach (var t in terms) (t as IDisposable)?.Dispose();
        }
    }

    /// <summary>
    /// The fixture's MCLIR option dict as this engine's run configuration (the mapping a user follows to port a
    /// BasicSR/MCLIR yml): network_g → model edsr; neg_iter/neg_decay/neg_start → negatives (authors' pairing);
    /// pixel_opt + perceptual_opt → loss l1 + spn; optim_g/scheduler/total_iter/ema_decay → train.
    /// </summary>
    private static JsonObject RunConfiguration(JsonElement opt, string dir, string vggFile, string outputRoot, string variant)
    {
        var g = opt.GetProperty("network_g");
        var t = opt.GetProperty("train");
        var p = t.GetProperty("perceptual_opt");
        var pixel = t.GetProperty("pixel_opt");
        var optim = t.GetProperty("optim_g");
        var scheduler = t.GetProperty("scheduler");
        Assert.Equal("EDSR", g.GetProperty("type").GetString());
        Assert.Equal("L1Loss", pixel.GetProperty("type").GetString());
        Assert.Equal("mean", pixel.GetProperty("reduction").GetString());
        Assert.Equal("PerceptualLoss", p.GetProperty("type").GetString());
        Assert.Equal("l1", p.GetProperty("criterion").GetString());
        Assert.False(p.GetProperty("range_norm").GetBoolean());
        Assert.Equal(0, p.GetProperty("style_weight").GetDouble());
        Assert.Equal("Adam", optim.GetProperty("type").GetString());
        Assert.Equal("MultiStepLR", scheduler.GetProperty("type").GetString());
        Assert.False(t.TryGetProperty("use_grad_clip", out _)); // the authors clip only with use_grad_clip
        Assert.Equal(-1, t.GetProperty("warmup_iter").GetInt32());
        JsonNode N(JsonElement e) => JsonNode.Parse(e.GetRawText())!;

        var root = new JsonObject
        {
            ["name"] = "trajectory-" + variant,
            ["output_root"] = outputRoot,
            ["model"] = new JsonObject
            {
                ["name"] = "edsr",
                ["options"] = new JsonObject
                {
                    ["num_in_channels"] = N(g.GetProperty("num_in_ch")),
                    ["num_out_channels"] = N(g.GetProperty("num_out_ch")),
                    ["num_feat"] = N(g.GetProperty("num_feat")),
                    ["num_block"] = N(g.GetProperty("num_block")),
                    ["upscale"] = N(g.GetProperty("upscale")),
                    ["res_scale"] = N(g.GetProperty("res_scale")),
                    ["img_range"] = N(g.GetProperty("img_range")),
                    ["rgb_mean"] = N(g.GetProperty("rgb_mean")),
                },
            },
            ["loss"] = new JsonObject
            {
                ["reconstruction"] = "l1",
                ["reconstruction_options"] = new JsonObject { ["weight"] = N(pixel.GetProperty("loss_weight")) },
                ["spn"] = new JsonObject
                {
                    ["lambda"] = N(p.GetProperty("perceptual_weight")),
                    ["form"] = "subtract",
                    ["embedding_type"] = "vgg",
                    ["layer_weights"] = N(p.GetProperty("layer_weights")),
                    ["negative_precision"] = "float32",
                    ["embedding"] = new JsonObject
                    {
                        ["variant"] = p.GetProperty("vgg_type").GetString(),
                        ["normalize"] = N(p.GetProperty("use_input_norm")),
                        ["weights_path"] = vggFile,
                    },
                },
            },
            ["negatives"] = new JsonObject
            {
                ["kind"] = "ema",
                ["init"] = "blend",
                ["neg_start"] = N(t.GetProperty("neg_start")),
                ["steps"] = N(t.GetProperty("neg_iter")),
                ["decays"] = N(t.GetProperty("neg_decay")),
                ["schedule_order"] = "authors",
                ["precision"] = "float32",
            },
            ["train"] = new JsonObject
            {
                ["total_iter"] = N(t.GetProperty("total_iter")),
                ["print_freq"] = 1,
                ["seed"] = 0,
                ["optimizer"] = new JsonObject
                {
                    ["type"] = "adam",
                    ["lr"] = N(optim.GetProperty("lr")),
                    ["betas"] = N(optim.GetProperty("betas")),
                    ["weight_decay"] = N(optim.GetProperty("weight_decay")),
                    ["eps"] = 1e-8, // torch.optim.Adam's default; optim_g sets none
                },
                ["scheduler"] = new JsonObject
                {
                    ["type"] = "multistep",
                    ["milestones"] = N(scheduler.GetProperty("milestones")),
                    ["gamma"] = N(scheduler.GetProperty("gamma")),
                },
                ["grad_clip_norm"] = null,
                ["ema_decay"] = t.TryGetProperty("ema_decay", out var ema) && ema.GetDouble() > 0 ? N(ema) : null,
            },
            ["path"] = new JsonObject { ["pretrain_network_g"] = Path.Combine(dir, "init_target.pth"), ["strict_load_g"] = true },
        };
        return root;
    }

    /// <summary>The VGG16 weights the fixture's φ was loaded from (config.json → vgg), checked by SHA-256.</summary>
    private static string VggFile(JsonElement fixtureConfig)
    {
        var vgg = fixtureConfig.GetProperty("vgg");
        string name = Path.GetFileName(vgg.GetProperty("file").GetString()!);
        string beside = Path.Combine(FixtureRoot, "..", "spn", name);
        string file = File.Exists(beside) ? Path.GetFullPath(beside) : Path.Combine(AppContext.BaseDirectory, "TestData", "spn", name);
        Assert.True(File.Exists(file), $"VGG weights {name} not found beside the fixtures nor in TestData/spn");
        using var s = File.OpenRead(file);
        Assert.Equal(vgg.GetProperty("sha256").GetString(), Convert.ToHexStringLower(SHA256.HashData(s)));
        return file;
    }

    private static (Tensor Lq, Tensor Gt) LoadBatches(string dir, int iterations)
    {
        var lq = new List<Tensor>();
        var gt = new List<Tensor>();
        for (int i = 1; i <= iterations; i++)
        {
            lq.Add(Npy.Load(Path.Combine(dir, "batches", $"lq_iter{i:D3}.npy")));
            gt.Add(Npy.Load(Path.Combine(dir, "batches", $"gt_iter{i:D3}.npy")));
        }
        var result = (cat(lq.ToArray(), 0), cat(gt.ToArray(), 0));
        foreach (var x in lq.Concat(gt)) x.Dispose();
        Assert.Equal(ScalarType.Float32, result.Item1.dtype);
        return result;
    }

    private static void LoadStateDict(nn.Module module, string file, string what)
    {
        var state = StateDictFile.Read(file, null, what);
        try { StateDictLoader.Load(module, state, what, strict: true); }
        finally { foreach (var t in state.Values) t.Dispose(); }
    }

    // ---- what is recorded after every iteration (the trainer's log event follows the step, EMA and negative updates) ----

    private sealed record Stats(double Sum, double SumSq);

    private sealed record Observation(long Iteration, double Lr, IReadOnlyDictionary<string, double> Parts, double GradNorm,
        IReadOnlyDictionary<string, double> GradNormPerTensor, Stats Target, IReadOnlyDictionary<string, double> TargetPerTensor,
        IReadOnlyList<int> NegativesUpdated, IReadOnlyList<Stats> Negatives, Stats? Ema);

    private sealed class Recorder : ITrainingLog
    {
        public readonly List<Observation> Iterations = [];
        public Action<IterationRecord>? Observe;
        public void OnIteration(IterationRecord record) => Observe?.Invoke(record);
    }

    private static Observation Observe(IterationRecord record, nn.Module net, NegativeBank bank, nn.Module? ema)
    {
        using var scope = NewDisposeScope();
        // The gradients of this iteration's backward are still in .grad (zero_grad runs at the start of the next one).
        var gradPerTensor = new Dictionary<string, double>();
        double gradSq = 0;
        foreach (var (name, p) in net.named_parameters())
        {
            var g = p.grad ?? throw new InvalidOperationException($"no gradient for {name}");
            double sq = g.detach().to(float64).square().sum().item<double>();
            gradSq += sq;
            gradPerTensor[name] = Math.Sqrt(sq);
        }
        var perTensor = net.named_parameters().ToDictionary(p => p.name, p => Sum64(p.parameter));
        var updated = Enumerable.Range(0, bank.Count).Where(k => bank.LastUpdateIterations[k] == record.Iteration).ToList();
        return new Observation(record.Iteration, record.Lr, record.Parts, Math.Sqrt(gradSq), gradPerTensor, StatsOf(net), perTensor,
            updated, bank.Negatives.Select(StatsOf).ToList(), ema is null ? null : StatsOf(ema));
    }

    /// <summary>The fixture's convention: per-tensor float64 sums (named_parameters order) added in double.</summary>
    private static Stats StatsOf(nn.Module m)
    {
        double sum = 0, sumSq = 0;
        foreach (var (_, p) in m.named_parameters())
        {
            using var d = p.detach().to(float64);
            using var s = d.sum();
            using var q = d.square();
            using var qs = q.sum();
            sum += s.item<double>();
            sumSq += qs.item<double>();
        }
        return new Stats(sum, sumSq);
    }

    private static double Sum64(Tensor t)
    {
        using var d = t.detach().to(float64);
        using var s = d.sum();
        return s.item<double>();
    }

    private void AssertStats(JsonElement expected, Stats got, string what)
    {
        AssertClose(expected.GetProperty("sum").GetDouble(), got.Sum, 2e-4, what + ": sum");
        AssertRelative(expected.GetProperty("sum_sq").GetDouble(), got.SumSq, 1e-5, what + ": sum of squares");
    }

    /// <summary>
    /// Sums of a state loaded from the fixture's own .pth: the same float32 values summed in float64 per tensor, so
    /// only the summation order can differ (1e-9); after training the README's 2e-4 / 1e-5 apply.
    /// </summary>
    private void AssertSums(JsonElement expected, nn.Module m, string what, bool exactish)
    {
        var got = StatsOf(m);
        if (exactish)
        {
            AssertClose(expected.GetProperty("sum").GetDouble(), got.Sum, 1e-9, what + ": sum");
            AssertClose(expected.GetProperty("sum_sq").GetDouble(), got.SumSq, 1e-9, what + ": sum of squares");
        }
        else AssertStats(expected, got, what);
    }

    private void AssertFinal(nn.Module m, string file, string what)
    {
        var reference = StateDictFile.Read(file, null, what);
        try
        {
            var own = m.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
            Assert.Equal(reference.Keys.Order(), own.Keys.Order());
            using var scope = NewDisposeScope();
            var diffs = cat(reference.Select(kv => (own[kv.Key].detach().to(float64) - kv.Value.to(float64)).abs().flatten()).ToArray(), 0);
            double max = diffs.max().item<double>();
            double median = diffs.median().item<double>(); // torch's lower median, as numpy's for an odd count
            long above = diffs.gt(1e-6).sum().item<long>();
            long n = diffs.numel();
            output.WriteLine($"{what}: max |diff| {max:G3}, median {median:G3}, {above} of {n} above 1e-6");
            Assert.True(max <= 1e-4, $"{what}: max |diff| {max:G3} > 1e-4");
            Assert.True(median <= 1e-7, $"{what}: median |diff| {median:G3} > 1e-7");
            Assert.True(above <= n / 100, $"{what}: {above} of {n} elements differ by more than 1e-6 (> 1 %)");
        }
        finally { foreach (var t in reference.Values) t.Dispose(); }
    }

    private void Note(string what, double diff, double tolerance)
    {
        string key = what.Contains(", iteration ", StringComparison.Ordinal) ? what[(what.IndexOf(": ", StringComparison.Ordinal) + 2)..] : what;
        if (key.StartsWith("sum of target ", StringComparison.Ordinal)) key = "sum of a target tensor";
        if (key.StartsWith("gradient norm of ", StringComparison.Ordinal)) key = "gradient norm of a tensor";
        _worst[key] = Math.Max(_worst.GetValueOrDefault(key), diff / tolerance);
    }

    private void AssertClose(double expected, double actual, double tolerance, string what)
    {
        Note(what, Math.Abs(expected - actual), tolerance);
        Assert.True(Math.Abs(expected - actual) <= tolerance, $"{what}: {actual:R}, the authors' {expected:R} (|diff| {Math.Abs(expected - actual):G3} > {tolerance:G3})");
    }

    private void AssertRelative(double expected, double actual, double relative, string what)
    {
        Note(what, Math.Abs(expected - actual) / Math.Abs(expected), relative);
        Assert.True(Math.Abs(expected - actual) <= relative * Math.Abs(expected),
            $"{what}: {actual:R}, the authors' {expected:R} (relative diff {Math.Abs(expected - actual) / Math.Abs(expected):G3} > {relative:G3})");
    }

    // ---- the order of operations ----

    /// <summary>The reference's call sequence in the trainer's phase names (learning-rate calls and feed_data are checked by value).</summary>
    private static List<string> ReferencePhases(JsonElement trace)
    {
        var phases = new List<string>();
        var updates = new List<int>();
        void Add(string phase) { if (phases.Count == 0 || phases[^1] != phase) phases.Add(phase); }
        foreach (var call in trace.EnumerateArray().Select(x => x.GetString()!))
        {
            if (call.StartsWith("update_learning_rate") || call == "scheduler.step" || call == "feed_data") continue;
            if (call == "optimizer_g.zero_grad") Add("zero_grad");
            else if (call.StartsWith("net_g.forward(grad_enabled=True, training=True)")) Add("forward");
            else if (call.StartsWith("neg") && call.Contains(".forward(grad_enabled=False, training=False)")) Add("negatives_forward");
            else if (call.StartsWith("cri_pix") || call.StartsWith("cri_perceptual")) Add("loss");
            else if (call == "l_total.backward") Add("backward");
            else if (call == "optimizer_g.step") Add("optimizer_step");
            else if (call.StartsWith("model_ema(")) Add("ema");
            else if (call.StartsWith("model_neg(neg"))
            {
                updates.Add(int.Parse(call["model_neg(neg".Length..call.IndexOf(',')]));
                Add("negatives_update");
            }
            else throw new InvalidDataException($"trace: unknown reference call '{call}'");
        }
        return phases.Select(p => p == "negatives_update" ? $"negatives_update [{string.Join(", ", updates)}]" : p).ToList();
    }

    /// <summary>Iteration <paramref name="index"/>'s phases from the trainer's trace (each iteration ends with "scheduler").</summary>
    private static List<string> OurPhases(List<string> trace, int index)
    {
        var iterations = new List<List<string>> { new() };
        foreach (var phase in trace)
        {
            if (phase == "scheduler") { iterations.Add([]); continue; }
            iterations[^1].Add(phase);
        }
        return iterations[index].Where(p => p != "negatives_update []").ToList();
    }
}
