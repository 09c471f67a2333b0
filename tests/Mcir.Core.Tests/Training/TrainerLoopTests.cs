using System.Text.Json;
using Mcir.Core.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Training.TrainerLoop;

/// <summary>The loop itself: learning, SPN wiring, logging, validation, clipping, EMA, schedules, memory.</summary>
[Collection("Trainer")]
public class TrainerLoopTests
{
    [Fact]
    public void EveryIterationReportsItsProgress_WithThePrintedTotal()
    {
        string run = TrainerKit.NewRunDir("steps");
        try
        {
            using var rig = TrainerKit.Rig();
            var steps = new StepRecorder();
            using var trainer = rig.CreateTrainer(TrainerKit.Options(7) with { PrintFreq = 3 }, run, steps);
            Assert.Equal(TrainingStatus.Completed, trainer.Run().Status);

            Assert.Equal(Enumerable.Range(1, 7).Select(i => (long)i), steps.Steps.Select(s => s.Iteration));
            Assert.All(steps.Steps, s => Assert.Equal(7, s.TotalIter));
            Assert.All(steps.Steps, s => Assert.True(s.IterationsPerSecond > 0 && double.IsFinite(s.IterationsPerSecond)));
            Assert.All(steps.Steps, s => Assert.True(s.EtaSeconds >= 0));
            Assert.Equal(0, steps.Steps[^1].EtaSeconds);
            // The loss shown is the iteration's total, the value the print events (1, 3, 6, 7) log.
            Assert.Equal(new long[] { 1, 3, 6, 7 }, steps.Prints.Select(p => p.Iteration));
            Assert.All(steps.Prints, p => Assert.Equal(p.Parts["total"], steps.Steps[(int)p.Iteration - 1].Loss));
        }
        finally { TrainerKit.TryDelete(run); }
    }

    private sealed class StepRecorder : ITrainingLog
    {
        public List<StepProgress> Steps { get; } = [];
        public List<IterationRecord> Prints { get; } = [];
        public void OnStep(StepProgress progress) => Steps.Add(progress);
        public void OnIteration(IterationRecord record) => Prints.Add(record);
    }

    [Fact]
    public void L1_OnTinyData_LossDecreases_AndMetricsAndProgressAreWritten()
    {
        string run = TrainerKit.NewRunDir("l1");
        try
        {
            using var rig = TrainerKit.Rig();
            var progress = new StringWriter();
            using var val = TrainerKit.Data(4).Gt;
            var opts = TrainerKit.Options(60) with { PrintFreq = 10, ValFreq = 30 };
            using var trainer = rig.CreateTrainer(opts with { PrintFreq = 1 }, run, progress: progress,
                validate: (net, it) =>
                {
                    Assert.False(net.training);
                    var o = net.call(val);
                    double mse = (o - val).square().mean().item<float>();
                    return new Dictionary<string, double> { ["psnr"] = 10 * Math.Log10(1 / mse) };
                });
            var result = trainer.Run();

            Assert.Equal(TrainingStatus.Completed, result.Status);
            Assert.Equal(60, result.Iteration);
            Assert.True(rig.Net.training, "the network is back in train mode after validation");
            var lines = TrainerKit.TrainLines(trainer.MetricsPath);
            Assert.Equal(Enumerable.Range(1, 60).Select(i => (long)i), lines.Select(l => l.Iter));
            double first = lines.Take(5).Average(l => l.Loss["l1"]);
            double last = lines.TakeLast(5).Average(l => l.Loss["l1"]);
            Assert.True(last < 0.85 * first, $"l1 went from {first} to {last}");
            Assert.All(lines, l => Assert.Equal(l.Loss["l1"], l.Loss["total"], 6));

            var events = TrainerKit.Events(trainer.MetricsPath);
            Assert.Equal("start", events[0]);
            Assert.Equal(2, events.Count(e => e == "val"));
            Assert.Equal("end", events[^1]);
            Assert.NotNull(result.LastValidation);
            Assert.True(result.LastValidation!["psnr"] > 0);
            Assert.NotNull(CheckpointStore.FindLatestComplete(run));
            Assert.True(File.Exists(Path.Combine(run, "training_options.json")));

            string text = progress.ToString();
            Assert.Contains("[iter  1/60] lr 2.000e-03 | l1 ", text);
            Assert.Contains("[iter 60/60]", text);
            Assert.Contains("s/it, eta ", text);
            Assert.Contains("validation: psnr ", text);
        }
        finally { TrainerKit.TryDelete(run); }
    }

    [Fact]
    public void Spn_WithNegativeBank_Runs_AndItsPartsAreLogged()
    {
        string run = TrainerKit.NewRunDir("spn");
        try
        {
            using var rig = TrainerKit.Rig(spn: true, lambda: 1e-3, steps: [2, 3]);
            using var trainer = rig.CreateTrainer(TrainerKit.Options(6), run);
            var result = trainer.Run();
            Assert.Equal(TrainingStatus.Completed, result.Status);

            var lines = TrainerKit.TrainLines(trainer.MetricsPath);
            Assert.Equal(6, lines.Count);
            foreach (var l in lines)
            {
                foreach (var key in new[] { "l1", "spn", "spn/neg0", "spn/neg1", "spn/layer/f1", "spn/layer/f2", "total" })
                    Assert.True(l.Loss.ContainsKey(key), $"part '{key}' missing at iteration {l.Iter}");
                Assert.True(l.Loss["spn"] < 0, "the subtract form is negative");
                Assert.Equal(-1e-3 * (l.Loss["spn/neg0"] + l.Loss["spn/neg1"]) / 2, l.Loss["spn"], 1e-9);
                Assert.Equal(l.Loss["l1"] + l.Loss["spn"], l.Loss["total"], 6);
            }
            // the bank followed the trainer's iterations: negative 0 every 2, negative 1 every 3
            Assert.Equal(6, rig.Bank!.LastIteration);
            Assert.Equal(new long[] { 3, 2 }, rig.Bank.UpdateCounts);
            Assert.True(File.Exists(Path.Combine(CheckpointStore.FindLatestComplete(run)!, "negatives.safetensors")));
        }
        finally { TrainerKit.TryDelete(run); }
    }

    [Fact]
    public void Spn_WithoutNegativeBank_IsRefusedAtConstruction()
    {
        using var rig = TrainerKit.Rig(spn: true);
        var e = Assert.Throws<McirException>(() => new Trainer(rig.Net, rig.Terms, rig.Batches, TrainerKit.Options(2), TrainerKit.NewRunDir("nobank")));
        Assert.Contains("'spn'", e.Message);
        Assert.Contains("negative bank", e.Message);
    }

    // Reference rates: TestData/schedules/basicsr_lr.py — BasicSR's MultiStepRestartLR / CosineAnnealingRestartLR and
    // torch's CosineAnnealingLR (torch 1.13), stepped as basicsr/train.py does (only when current_iter > 1): element
    // i − 1 is the rate iteration i trains with. Closed forms here versus the schedulers' recursive forms in Python
    // agree to rounding, hence a relative tolerance of 1e-12.
    private static void AssertRates(IReadOnlyList<double> expected, LearningRateSchedule s)
    {
        for (int i = 1; i <= expected.Count; i++)
            Assert.True(Math.Abs(s.At(i) - expected[i - 1]) <= 1e-12 * Math.Abs(expected[i - 1]) + 1e-20,
                $"iteration {i}: expected {expected[i - 1]:R}, got {s.At(i):R}");
    }

    [Fact]
    public void Schedules_UsePositionIterationMinusOne_AsBasicSR()
    {
        var multistep = new LearningRateSchedule(TrainerKit.Options(4, lr: 1e-4) with { Scheduler = new SchedulerSettings { Type = "multistep", Milestones = [2], Gamma = 0.5 } });
        AssertRates([0.0001, 0.0001, 5e-05, 5e-05], multistep);
        var cosine = new LearningRateSchedule(TrainerKit.Options(4, lr: 1e-4) with { Scheduler = new SchedulerSettings { Type = "cosine", Periods = [4], EtaMin = 0 } });
        AssertRates([0.0001, 8.535533905932738e-05, 5e-05, 1.4644660940672627e-05], cosine);
        var restart = new LearningRateSchedule(TrainerKit.Options(10, lr: 1.0) with
        {
            Scheduler = new SchedulerSettings { Type = "cosine", Periods = [4, 6], RestartWeights = [1, 0.5], EtaMin = 1e-3 },
        });
        AssertRates([1.0, 0.8536998372026805, 0.5005, 0.14730016279731956, 0.001, 0.4670398445951636, 0.375625, 0.25075,
            0.12587500000000004, 0.034460155404836434], restart);
        // default periods = [total_iter]: from lr at iteration 1 towards eta_min
        var plain = new LearningRateSchedule(TrainerKit.Options(4, lr: 1e-4) with { Scheduler = new SchedulerSettings { Type = "cosine", EtaMin = 0 } });
        AssertRates([0.0001, 8.535533905932738e-05, 5e-05, 1.4644660940672627e-05], plain);
    }

    [Fact]
    public void TrueCosineAnnealingLR_IsTorchsCosineAnnealingLR_AlsoPastTMax()
    {
        var zero = new LearningRateSchedule(TrainerKit.Options(10, lr: 1e-4) with { Scheduler = new SchedulerSettings { Type = "TrueCosineAnnealingLR", TMax = 4, EtaMin = 0 } });
        AssertRates([0.0001, 8.535533905932738e-05, 5e-05, 1.4644660940672627e-05, 0.0, 1.4644660940672622e-05,
            5.000000000000001e-05, 8.53553390593274e-05, 0.00010000000000000003, 8.53553390593274e-05], zero);
        var floor = new LearningRateSchedule(TrainerKit.Options(10, lr: 2e-4) with { Scheduler = new SchedulerSettings { Type = "TrueCosineAnnealingLR", TMax = 4, EtaMin = 1e-5 } });
        AssertRates([0.0002, 0.00017217514421272203, 0.000105, 3.782485578727799e-05, 1e-05, 3.7824855787277986e-05,
            0.00010500000000000005, 0.00017217514421272214, 0.00020000000000000015, 0.00017217514421272216], floor);
        // t_max defaults to total_iter
        var run = new LearningRateSchedule(TrainerKit.Options(4, lr: 1e-4) with { Scheduler = new SchedulerSettings { Type = "TrueCosineAnnealingLR", EtaMin = 0 } });
        AssertRates([0.0001, 8.535533905932738e-05, 5e-05, 1.4644660940672627e-05], run);
        var e = Assert.Throws<McirException>(() => (TrainerKit.Options(4) with { Scheduler = new SchedulerSettings { Type = "TrueCosineAnnealingLR", TMax = 0 } }).Validate());
        Assert.Contains("scheduler.t_max", e.Message);
    }

    [Fact]
    public void MultistepSchedule_TheOptimiserUsesTheRateOfEachIteration()
    {
        var opts = TrainerKit.Options(8, lr: 1e-2) with { Scheduler = new SchedulerSettings { Type = "multistep", Milestones = [3, 6], Gamma = 0.5 } };
        var s = new LearningRateSchedule(opts);
        AssertRates([0.01, 0.01, 0.01, 0.005, 0.005, 0.005, 0.0025, 0.0025], s);

        string run = TrainerKit.NewRunDir("multistep");
        try
        {
            using var rig = TrainerKit.Rig();
            using var trainer = rig.CreateTrainer(opts, run);
            trainer.Run();
            var lines = TrainerKit.TrainLines(trainer.MetricsPath);
            Assert.Equal([0.01, 0.01, 0.01, 0.005, 0.005, 0.005, 0.0025, 0.0025], lines.Select(l => l.Lr));
            Assert.Equal(s.At(9), trainer.CurrentLearningRate);
        }
        finally { TrainerKit.TryDelete(run); }
    }

    [Fact]
    public void Iteration_RunsInTheAuthorsOrder()
    {
        string run = TrainerKit.NewRunDir("order");
        try
        {
            using var rig = TrainerKit.Rig(spn: true, steps: [2, 3]);
            using var trainer = rig.CreateTrainer(TrainerKit.Options(3) with { EmaDecay = 0.9 }, run);
            var trace = new List<string>();
            trainer.StepTrace = trace.Add;
            Assert.Equal(TrainingStatus.Completed, trainer.Run().Status);
            string[] Iteration(string updated) =>
                ["zero_grad", "forward", "negatives_forward", "loss", "backward", "optimizer_step", "ema", $"negatives_update [{updated}]", "scheduler"];
            // negative j is updated at the end of iterations i with i % s_j == 0 (s = 2, 3)
            Assert.Equal(Iteration("").Concat(Iteration("0")).Concat(Iteration("1")), trace);
        }
        finally { TrainerKit.TryDelete(run); }
    }

    [Fact]
    public void BadOptions_AreRefused_NamingTheKey()
    {
        var e = Assert.Throws<McirException>(() => (TrainerKit.Options(10) with { Scheduler = new SchedulerSettings { Type = "step" } }).Validate());
        Assert.Contains("scheduler.type", e.Message);
        e = Assert.Throws<McirException>(() => (TrainerKit.Options(10) with { Optimizer = new OptimizerSettings { Type = "sgd" } }).Validate());
        Assert.Contains("optimizer.type", e.Message);
        e = Assert.Throws<McirException>(() => (TrainerKit.Options(10) with { EmaDecay = 1.0 }).Validate());
        Assert.Contains("ema_decay", e.Message);
    }

    [Fact]
    public void Options_RoundTripThroughSnakeCaseJson()
    {
        var o = TrainerKit.Options(10) with { GradClipNorm = 0.5, EmaDecay = 0.999, Scheduler = new SchedulerSettings { Type = "multistep", Milestones = [5] } };
        string json = o.ToJson();
        Assert.Contains("\"total_iter\": 10", json);
        Assert.Contains("\"grad_clip_norm\": 0.5", json);
        Assert.Contains("\"weight_decay\"", json);
        var back = TrainingOptions.FromJson(json);
        Assert.Equal(json, back.ToJson());
    }

    [Fact]
    public void GradClipping_BoundsTheGradientNorm()
    {
        string run = TrainerKit.NewRunDir("clip");
        try
        {
            using var rig = TrainerKit.Rig();
            const double maxNorm = 1e-3;
            var norms = new List<double>();
            var log = new RecordingLog
            {
                OnEachIteration = _ =>
                {
                    // grads stay on the parameters until the next iteration's zero_grad: they are the clipped ones
                    using var scope = NewDisposeScope();
                    var sq = rig.Net.parameters().Select(p => p.grad!.square().sum()).Aggregate((a, b) => a + b);
                    norms.Add(Math.Sqrt(sq.to(ScalarType.Float64).item<double>()));
                },
            };
            using var trainer = rig.CreateTrainer(TrainerKit.Options(3) with { GradClipNorm = maxNorm }, run, log);
            trainer.Run();
            Assert.Equal(3, norms.Count);
            Assert.All(norms, n => Assert.True(n <= maxNorm * (1 + 1e-4), $"clipped norm {n} > {maxNorm}"));
            var lines = TrainerKit.TrainLines(trainer.MetricsPath);
            Assert.All(lines, l => Assert.True(l.GradNorm > maxNorm, $"the logged pre-clip norm {l.GradNorm} should exceed {maxNorm} on this data"));
        }
        finally { TrainerKit.TryDelete(run); }
    }

    [Fact]
    public void TargetEma_FollowsTheFormula_ParametersBlended_BuffersCopied()
    {
        string run = TrainerKit.NewRunDir("ema");
        try
        {
            using var rig = TrainerKit.Rig(batchNorm: true);
            const double decay = 0.9;
            Dictionary<string, Tensor> Snapshot() => rig.Net.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone().to(ScalarType.Float64).DetachFromDisposeScope());
            var expected = Snapshot();                     // EMA starts as a copy of the target
            var log = new RecordingLog
            {
                OnEachIteration = _ =>
                {
                    var now = Snapshot();
                    foreach (var (k, v) in now)
                    {
                        var e = expected[k];
                        expected[k] = (e * decay + v * (1 - decay)).DetachFromDisposeScope();
                        e.Dispose();
                        v.Dispose();
                    }
                },
            };
            using var trainer = rig.CreateTrainer(TrainerKit.Options(5) with { EmaDecay = decay }, run, log);
            Assert.NotNull(trainer.Ema);
            trainer.Run();

            var ema = trainer.Ema!.Network;
            Assert.False(ema.training);
            foreach (var (name, p) in ema.named_parameters())
            {
                Assert.False(p.requires_grad);
                double diff = (p.to(ScalarType.Float64) - expected[name]).abs().max().item<double>();
                Assert.True(diff < 1e-6, $"ema parameter '{name}' is off by {diff}");
            }
            var targetBuffers = rig.Net.named_buffers().ToDictionary(b => b.name, b => b.buffer);
            foreach (var (name, b) in ema.named_buffers())
                Assert.True(b.eq(targetBuffers[name]).all().item<bool>(), $"ema buffer '{name}' is not the target's");
            foreach (var t in expected.Values) t.Dispose();
            Assert.True(File.Exists(Path.Combine(CheckpointStore.FindLatestComplete(run)!, "ema.safetensors")));
        }
        finally { TrainerKit.TryDelete(run); }
    }

    [Fact]
    public void TwoHundredIterations_DoNotGrowLiveTensorsOrRss()
    {
        string run = TrainerKit.NewRunDir("memory");
        try
        {
            using var rig = TrainerKit.Rig(spn: true, steps: [3, 7]);
            long live20 = 0, live220 = 0, rss20 = 0, rss220 = 0;
            var log = new RecordingLog
            {
                OnEachIteration = r =>
                {
                    if (r.Iteration != 20 && r.Iteration != 220) return;
                    GC.Collect();
                    GC.WaitForPendingFinalizers();
                    long live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
                    long rss = RssBytes();
                    if (r.Iteration == 20) { live20 = live; rss20 = rss; } else { live220 = live; rss220 = rss; }
                },
            };
            using var trainer = rig.CreateTrainer(TrainerKit.Options(220) with { EmaDecay = 0.99, GradClipNorm = 1.0 }, run, log);
            Assert.Equal(TrainingStatus.Completed, trainer.Run().Status);
            Assert.True(live220 - live20 <= 2, $"live tensors grew from {live20} to {live220} over 200 iterations");
            Assert.True(rss220 - rss20 < 64L << 20, $"RSS grew by {(rss220 - rss20) >> 20} MB over 200 iterations");
        }
        finally { TrainerKit.TryDelete(run); }
    }

    internal static long RssBytes()
    {
        var fields = File.ReadAllText("/proc/self/statm").Split(' ');
        return long.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture) * Environment.SystemPageSize;
    }

    [Fact]
    public void InMemoryBatchSource_StateRoundTrip_ReplaysTheSameBatches()
    {
        var (lq, gt) = TrainerKit.Data();
        using var _l = lq; using var _g = gt;
        using var a = new InMemoryBatchSource(lq, gt, 3, seed: 11);
        for (int i = 0; i < 7; i++) { var (x, y) = a.Next(); x.Dispose(); y.Dispose(); }
        byte[] state = a.GetState();
        using var b = new InMemoryBatchSource(lq, gt, 3, seed: 999);
        b.SetState(state);
        for (int i = 0; i < 12; i++)
        {
            var (xa, ya) = a.Next();
            var (xb, yb) = b.Next();
            Assert.True(xa.eq(xb).all().item<bool>() && ya.eq(yb).all().item<bool>(), $"batch {i} differs after restoring the state");
            xa.Dispose(); ya.Dispose(); xb.Dispose(); yb.Dispose();
        }
        Assert.Throws<InvalidDataException>(() => b.SetState([1, 2, 3]));
    }
}
