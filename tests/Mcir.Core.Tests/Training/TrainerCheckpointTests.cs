using Mcir.Core.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Training.TrainerLoop;

/// <summary>Checkpoints, resume, interrupted writes, cancellation, collapse.</summary>
[Collection("Trainer")]
public class TrainerCheckpointTests
{
    /// <summary>SPN + negative bank + target EMA + dropout (uses the torch RNG) + a schedule: everything resume must restore.</summary>
    private static TrainerRig FullRig() => TrainerKit.Rig(spn: true, dropout: 0.2, steps: [2, 3]);

    private static TrainingOptions FullOptions(long total, long checkpointFreq) => TrainerKit.Options(total, checkpointFreq) with
    {
        EmaDecay = 0.9,
        GradClipNorm = 0.5,
        Scheduler = new SchedulerSettings { Type = "multistep", Milestones = [5, 9], Gamma = 0.5 },
    };

    /// <summary>Same iterations, same lr, bitwise-equal loss parts.</summary>
    private static void AssertSameLosses(IReadOnlyList<TrainerKit.TrainLine> expected, IReadOnlyList<TrainerKit.TrainLine> actual)
    {
        Assert.Equal(expected.Select(l => l.Iter), actual.Select(l => l.Iter));
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].Lr, actual[i].Lr);
            Assert.Equal(expected[i].Loss.Keys.Order(), actual[i].Loss.Keys.Order());
            foreach (var (k, v) in expected[i].Loss)
                Assert.True(v.Equals(actual[i].Loss[k]),
                    $"iteration {expected[i].Iter}, part '{k}': uninterrupted {v:R}, resumed {actual[i].Loss[k]:R}");
        }
    }

    [Fact]
    public void ResumeFromCheckpoint_GivesTheSameLossSequence_AsAnUninterruptedRun()
    {
        string a = TrainerKit.NewRunDir("uninterrupted"), b = TrainerKit.NewRunDir("resumed");
        try
        {
            List<TrainerKit.TrainLine> reference;
            using (var rig = FullRig())
            using (var trainer = rig.CreateTrainer(FullOptions(12, 4), a))
            {
                Assert.Equal(TrainingStatus.Completed, trainer.Run().Status);
                reference = TrainerKit.TrainLines(trainer.MetricsPath);
            }

            // first part: 6 iterations, then everything is thrown away
            using (var rig = FullRig())
            using (var trainer = rig.CreateTrainer(FullOptions(6, 4), b))
                Assert.Equal(TrainingStatus.Completed, trainer.Run().Status);

            // second part: new objects with a different initialisation, restored from the newest checkpoint (iteration 6)
            string? latest = CheckpointStore.ResolveResume(b, "auto");
            Assert.EndsWith("iter_000006", latest);
            var log = new RecordingLog();
            using (var rig = TrainerKit.Rig(spn: true, dropout: 0.2, steps: [2, 3], netSeed: 777))
            using (var trainer = rig.CreateTrainer(FullOptions(12, 4), b, log))
            {
                trainer.LoadCheckpoint(latest!);
                Assert.Equal(6, trainer.Iteration);
                Assert.Equal(TrainingStatus.Completed, trainer.Run().Status);
                Assert.Equal(12, rig.Bank!.LastIteration);
                AssertSameLosses(reference, TrainerKit.TrainLines(trainer.MetricsPath));
            }
            Assert.DoesNotContain(log.Messages, m => m.Item2.Contains("differ"));
        }
        finally { TrainerKit.TryDelete(a); TrainerKit.TryDelete(b); }
    }

    // Checkpoints written by earlier code with the same rig and options (TestData/checkpoints/README.md): at 59fe189,
    // before the weights module (its model, EMA and negatives files are compared; its other files predate later keys),
    // and at 9cf9b5d, before TrainingState (every file is compared). The format must not change: the checkpoint
    // resumes, the restored state written again by today's code gives the old bytes, and it trains on.
    [Theory]
    [InlineData("trainer-rig-59fe189", false)]
    [InlineData("trainer-rig-9cf9b5d", true)]
    public void ACheckpointWrittenByEarlierCodeResumesAndIsRewrittenIdentically(string folder, bool everyFile)
    {
        string saved = Path.Combine(AppContext.BaseDirectory, "TestData", "checkpoints", folder, "checkpoints", "iter_000004");
        string run = TrainerKit.NewRunDir("old-format-" + folder);
        try
        {
            string ckpt = Path.Combine(run, "checkpoints", "iter_000004");
            CopyDirectory(saved, ckpt);
            var log = new RecordingLog();
            using var rig = TrainerKit.Rig(spn: true, dropout: 0.2, steps: [2, 3], netSeed: 777);
            using (var trainer = rig.CreateTrainer(FullOptions(4, 4), run, log))
            {
                Assert.Equal(ckpt, CheckpointStore.ResolveResume(run, "auto"));
                trainer.LoadCheckpoint(ckpt);
                Assert.Equal(4, trainer.Iteration);
                Assert.Equal(4, rig.Bank!.LastIteration);

                string again = trainer.WriteCheckpoint();
                string[] names = everyFile
                    ? [.. Directory.GetFiles(saved).Select(f => Path.GetFileName(f)!).Where(n => n != CheckpointStore.ManifestName).Order()]
                    : ["model.safetensors", "ema.safetensors", "negatives.safetensors"];
                if (everyFile)
                    Assert.Equal(names, Directory.GetFiles(again).Select(f => Path.GetFileName(f)!).Where(n => n != CheckpointStore.ManifestName).Order());
                foreach (var n in names)
                    Assert.True(File.ReadAllBytes(Path.Combine(saved, n)).SequenceEqual(File.ReadAllBytes(Path.Combine(again, n))), n);
            }
            using (var trainer = rig.CreateTrainer(FullOptions(6, 100), run, log))
            {
                trainer.LoadCheckpoint(ckpt);
                Assert.Equal(TrainingStatus.Completed, trainer.Run().Status);
                Assert.Equal(6, trainer.Iteration);
                Assert.Equal(6, rig.Bank.LastIteration);
            }
            Assert.DoesNotContain(log.Messages, m => m.Item2.Contains("differ"));
        }
        finally { TrainerKit.TryDelete(run); }
    }

    [Fact]
    public void TrainerJson_OfAnotherVersion_IsRefusedNamingTheVersion()
    {
        string saved = Path.Combine(AppContext.BaseDirectory, "TestData", "checkpoints", "trainer-rig-9cf9b5d", "checkpoints", "iter_000004");
        string run = TrainerKit.NewRunDir("format-version");
        try
        {
            string ckpt = Path.Combine(run, "checkpoints", "iter_000004");
            CopyDirectory(saved, ckpt);
            var state = TrainerJson.Read(ckpt);
            Assert.Equal(4, state.Iteration);
            Assert.Equal(new[] { "l1", "spn" }, state.LossTerms);
            // a future version, written through the store so that the manifest is complete
            var files = Directory.GetFiles(ckpt).Where(f => Path.GetFileName(f) != CheckpointStore.ManifestName)
                .Select(f => (Path.GetFileName(f), (Action<Stream>)(s =>
                {
                    var bytes = Path.GetFileName(f) == TrainerJson.FileName ? (state with { Version = 2 }).ToUtf8() : File.ReadAllBytes(f);
                    s.Write(bytes);
                }))).ToList();
            string v2 = CheckpointStore.Write(run, 4, files);
            using var rig = TrainerKit.Rig(spn: true, dropout: 0.2, steps: [2, 3]);
            using var trainer = rig.CreateTrainer(FullOptions(6, 100), run);
            var e = Assert.Throws<McirException>(() => trainer.LoadCheckpoint(v2));
            Assert.Contains("trainer.json has format version 2", e.Message);
            Assert.Contains("reads version 1", e.Message);
        }
        finally { TrainerKit.TryDelete(run); }
    }

    [Fact]
    public void InterruptedCheckpointWrite_LeavesThePreviousCheckpointUsable()
    {
        string run = TrainerKit.NewRunDir("torn");
        try
        {
            using (var rig = TrainerKit.Rig(spn: true))
            using (var trainer = rig.CreateTrainer(TrainerKit.Options(6, checkpointFreq: 2), run))
            {
                trainer.CheckpointFileWritten = name =>
                {
                    if (trainer.Iteration == 4 && name == "optimizer.bin") throw new IOException("simulated crash while writing the checkpoint");
                };
                var e = Assert.Throws<IOException>(() => trainer.Run());
                Assert.Contains("simulated crash", e.Message);
            }
            string root = Path.Combine(run, CheckpointStore.FolderName);
            Assert.True(CheckpointStore.IsComplete(Path.Combine(root, "iter_000002")));
            Assert.False(Directory.Exists(Path.Combine(root, "iter_000004")), "a failed write must not leave a checkpoint folder");
            Assert.Empty(Directory.GetDirectories(root, ".tmp-*"));

            // a hard crash (kill -9) leaves a temporary folder behind; a folder can also lose a file or its manifest later
            string two = Path.Combine(root, "iter_000002");
            Directory.CreateDirectory(Path.Combine(root, ".tmp-iter_000004-crashed"));
            File.Copy(Path.Combine(two, "model.safetensors"), Path.Combine(root, ".tmp-iter_000004-crashed", "model.safetensors"));
            string noManifest = Path.Combine(root, "iter_000004");
            Directory.CreateDirectory(noManifest);
            File.Copy(Path.Combine(two, "model.safetensors"), Path.Combine(noManifest, "model.safetensors"));
            string truncated = Path.Combine(root, "iter_000003");
            CopyDirectory(two, truncated);
            File.WriteAllText(Path.Combine(truncated, CheckpointStore.ManifestName),
                File.ReadAllText(Path.Combine(two, CheckpointStore.ManifestName)).Replace("\"iteration\": 2", "\"iteration\": 3"));
            using (var fs = new FileStream(Path.Combine(truncated, "optimizer.bin"), FileMode.Open)) fs.SetLength(fs.Length / 2);

            Assert.Equal(two, CheckpointStore.FindLatestComplete(run));
            Assert.Contains("no MANIFEST.json", CheckpointStore.Verify(noManifest));
            Assert.Contains("optimizer.bin", CheckpointStore.Verify(truncated));
            var ex = Assert.Throws<McirException>(() => CheckpointStore.ResolveResume(run, noManifest));
            Assert.Contains("not a complete checkpoint", ex.Message);

            // the previous checkpoint resumes; the incomplete iter_000004 is replaced by a complete one
            using (var rig = TrainerKit.Rig(spn: true))
            using (var trainer = rig.CreateTrainer(TrainerKit.Options(6, checkpointFreq: 2), run))
            {
                trainer.LoadCheckpoint(CheckpointStore.ResolveResume(run, "auto")!);
                Assert.Equal(2, trainer.Iteration);
                Assert.Equal(TrainingStatus.Completed, trainer.Run().Status);
            }
            Assert.True(CheckpointStore.IsComplete(noManifest));
            Assert.Equal(Path.Combine(root, "iter_000006"), CheckpointStore.FindLatestComplete(run));
            var lines = TrainerKit.TrainLines(Path.Combine(run, "metrics.jsonl"));
            Assert.Equal(Enumerable.Range(1, 6).Select(i => (long)i), lines.Select(l => l.Iter)); // records after the checkpoint were dropped
        }
        finally { TrainerKit.TryDelete(run); }
    }

    [Fact]
    public void PruningChecksSizesNotHashes_LoadingChecksHashes()
    {
        string run = TrainerKit.NewRunDir("prune");
        try
        {
            using (var rig = TrainerKit.Rig(spn: false))
            using (var trainer = rig.CreateTrainer(TrainerKit.Options(4, checkpointFreq: 2), run))
                Assert.Equal(TrainingStatus.Completed, trainer.Run().Status);
            string root = Path.Combine(run, CheckpointStore.FolderName), two = Path.Combine(root, "iter_000002");
            // Same size, one byte changed: only the hash can tell.
            string model = Path.Combine(two, "model.safetensors");
            var bytes = File.ReadAllBytes(model);
            bytes[^1] ^= 0xFF;
            File.WriteAllBytes(model, bytes);

            Assert.Null(CheckpointStore.Verify(two, hashes: false));
            Assert.Contains("does not match its SHA-256", CheckpointStore.Verify(two));
            CheckpointStore.Prune(run, keep: 2); // counts iter_000002 as complete by size: both kept
            Assert.True(Directory.Exists(two));
            Assert.Equal(two, CheckpointStore.ResolveResume(run, two)); // resolution reads the manifest and sizes only
            // loading checks the hashes and refuses it in one line naming the file
            using var fresh = TrainerKit.Rig(spn: false);
            using var resumed = fresh.CreateTrainer(TrainerKit.Options(4, checkpointFreq: 2), run);
            var e = Assert.Throws<McirException>(() => resumed.LoadCheckpoint(two));
            Assert.Contains("'model.safetensors' does not match its SHA-256", e.Message);
            Assert.Contains(two, e.Message);
            Assert.DoesNotContain('\n', e.Message);
            Assert.Equal(0, resumed.Iteration);
        }
        finally { TrainerKit.TryDelete(run); }
    }

    [Fact]
    public void SavingReadsNoOlderCheckpoint_LoadingHashesEachFileOnce()
    {
        string run = TrainerKit.NewRunDir("hash-once");
        var hashed = new List<string>();
        void Record(string path)
        {
            if (path.StartsWith(run, StringComparison.Ordinal)) lock (hashed) hashed.Add(path);
        }
        CheckpointStore.FileHashed += Record;
        try
        {
            using (var rig = TrainerKit.Rig(spn: true))
            using (var trainer = rig.CreateTrainer(TrainerKit.Options(6, checkpointFreq: 1) with { KeepCheckpoints = 3 }, run))
            {
                Assert.Equal(TrainingStatus.Completed, trainer.Run().Status);
                Assert.Equal(new long[] { 6, 5, 4 }, CheckpointStore.List(run).Select(c => c.Iteration));
            }
            string? latest = CheckpointStore.ResolveResume(run, "auto");
            Assert.Empty(hashed); // six saves with pruning, and the resolution: no checkpoint's file was hashed again

            using (var rig = TrainerKit.Rig(spn: true))
            using (var trainer = rig.CreateTrainer(TrainerKit.Options(8, checkpointFreq: 1), run))
            {
                trainer.LoadCheckpoint(latest!);
                string[] files = Directory.GetFiles(latest!).Where(f => Path.GetFileName(f) != CheckpointStore.ManifestName).Order().ToArray();
                Assert.Equal(files, hashed.Order()); // every file of the loaded checkpoint, once
            }
        }
        finally
        {
            CheckpointStore.FileHashed -= Record;
            TrainerKit.TryDelete(run);
        }
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
    }

    [Fact]
    public void LoadCheckpoint_RefusesAStateThatDoesNotFitTheRun()
    {
        string run = TrainerKit.NewRunDir("mismatch");
        try
        {
            using (var rig = TrainerKit.Rig())
            using (var trainer = rig.CreateTrainer(TrainerKit.Options(2) with { EmaDecay = 0.9 }, run))
                trainer.Run();
            string ckpt = CheckpointStore.FindLatestComplete(run)!;
            using (var rig = TrainerKit.Rig())
            using (var trainer = rig.CreateTrainer(TrainerKit.Options(4), run))
            {
                var e = Assert.Throws<McirException>(() => trainer.LoadCheckpoint(ckpt));
                Assert.Contains("target EMA", e.Message);
            }
            using (var rig = TrainerKit.Rig(spn: true))
            using (var trainer = rig.CreateTrainer(TrainerKit.Options(4) with { EmaDecay = 0.9 }, run))
            {
                var e = Assert.Throws<McirException>(() => trainer.LoadCheckpoint(ckpt));
                Assert.Contains("negative bank", e.Message);
            }
            // different trajectory-defining options resume, with a warning in the log
            var log = new RecordingLog();
            using (var rig = TrainerKit.Rig())
            using (var trainer = rig.CreateTrainer(TrainerKit.Options(4) with { EmaDecay = 0.9, Optimizer = new OptimizerSettings { Lr = 1e-3 } }, run, log))
            {
                trainer.LoadCheckpoint(ckpt);
                Assert.Equal(2, trainer.Iteration);
                Assert.Equal(TrainingStatus.Completed, trainer.Run().Status);
            }
            Assert.Contains(log.Messages, m => m.Item1 == 2 && m.Item2.Contains("options differ"));
        }
        finally { TrainerKit.TryDelete(run); }
    }

    [Fact]
    public void KeepCheckpoints_PrunesOlderOnes_AfterTheNewOneIsComplete()
    {
        string run = TrainerKit.NewRunDir("keep");
        try
        {
            using var rig = TrainerKit.Rig();
            using var trainer = rig.CreateTrainer(TrainerKit.Options(10, checkpointFreq: 2) with { KeepCheckpoints = 2 }, run);
            trainer.Run();
            var left = CheckpointStore.List(run).Select(c => c.Iteration).ToList();
            Assert.Equal(new long[] { 10, 8 }, left);
            Assert.All(CheckpointStore.List(run), c => Assert.True(CheckpointStore.IsComplete(c.Path)));
        }
        finally { TrainerKit.TryDelete(run); }
    }

    [Fact]
    public void Cancellation_FinishesTheIteration_WritesACheckpoint_AndTheRunResumes()
    {
        string run = TrainerKit.NewRunDir("cancel"), reference = TrainerKit.NewRunDir("cancel-ref");
        try
        {
            List<TrainerKit.TrainLine> expected;
            using (var rig = FullRig())
            using (var trainer = rig.CreateTrainer(FullOptions(7, 0), reference))
            {
                trainer.Run();
                expected = TrainerKit.TrainLines(trainer.MetricsPath);
            }

            using var cts = new CancellationTokenSource();
            using (var rig = FullRig())
            using (var trainer = rig.CreateTrainer(FullOptions(7, 0), run, new RecordingLog { OnEachIteration = r => { if (r.Iteration == 3) cts.Cancel(); } }))
            {
                var result = trainer.Run(cts.Token);
                Assert.Equal(TrainingStatus.Interrupted, result.Status);
                Assert.Equal(3, result.Iteration);
                Assert.Contains("interrupted after iteration 3", result.Message);
                Assert.Equal(Path.Combine(run, "checkpoints", "iter_000003"), result.LastCheckpoint);
                Assert.True(CheckpointStore.IsComplete(result.LastCheckpoint!));
            }
            using (var rig = FullRig())
            using (var trainer = rig.CreateTrainer(FullOptions(7, 0), run))
            {
                trainer.LoadCheckpoint(CheckpointStore.ResolveResume(run, "auto")!);
                var result = trainer.Run();
                Assert.Equal(TrainingStatus.Completed, result.Status);
                Assert.Equal(7, result.Iteration);
                AssertSameLosses(expected, TrainerKit.TrainLines(trainer.MetricsPath));
            }
        }
        finally { TrainerKit.TryDelete(run); TrainerKit.TryDelete(reference); }
    }

    [Fact]
    public void CollapseGuard_HugeLambda_StopsTheRun_NamingTheCause_WithoutACheckpointFromTheCollapsedState()
    {
        string run = TrainerKit.NewRunDir("collapse");
        try
        {
            using var rig = TrainerKit.Rig(spn: true, lambda: 1e3);
            var guard = new CollapseGuard(new CollapseGuardOptions { RatioPatience = 3 });
            using var trainer = rig.CreateTrainer(TrainerKit.Options(20, checkpointFreq: 1), run, guard: guard);
            var result = trainer.Run();

            Assert.Equal(TrainingStatus.Collapsed, result.Status);
            Assert.Equal(CollapseCause.NegativeTermRunaway, result.Collapse!.Cause);
            long at = result.Collapse.Iteration;
            Assert.Equal(at - 1, result.Iteration);
            Assert.Contains($"iteration {at}", result.Message);
            Assert.Contains("negative term 'spn'", result.Message);
            Assert.Contains("lower lambda", result.Message);
            Assert.Equal(Path.Combine(run, "checkpoints", CheckpointStore.FolderNameOf(at - 1)), result.LastCheckpoint);
            Assert.All(CheckpointStore.List(run), c => Assert.True(c.Iteration < at, $"checkpoint at {c.Iteration} written at/after the collapse at {at}"));
            Assert.Equal(result.LastCheckpoint, CheckpointStore.FindLatestComplete(run));
            Assert.Contains("\"status\":\"collapsed\"", File.ReadLines(trainer.MetricsPath).Last());
        }
        finally { TrainerKit.TryDelete(run); }
    }

    [Fact]
    public void CollapseGuard_NaNLoss_StopsTheRun_AndTheCollapsedUpdateIsNotApplied()
    {
        string run = TrainerKit.NewRunDir("nan");
        try
        {
            using var rig = TrainerKit.Rig(extraTerm: new NanFromIterationTerm(5));
            using var trainer = rig.CreateTrainer(TrainerKit.Options(10, checkpointFreq: 2), run);
            var result = trainer.Run();

            Assert.Equal(TrainingStatus.Collapsed, result.Status);
            Assert.Equal(CollapseCause.NonFinite, result.Collapse!.Cause);
            Assert.Contains("'nan'", result.Message);
            Assert.Contains("iteration 5", result.Message);
            Assert.Equal(4, result.Iteration);
            Assert.EndsWith("iter_000004", result.LastCheckpoint);
            Assert.Equal(new long[] { 4, 2 }, CheckpointStore.List(run).Select(c => c.Iteration));
            foreach (var p in rig.Net.parameters())
                Assert.True(p.isfinite().all().item<bool>(), "the network must still hold the last good (finite) weights");
        }
        finally { TrainerKit.TryDelete(run); }
    }
}
