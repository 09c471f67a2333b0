using System.Text.Json.Nodes;
using Mcir.Abstractions.Losses;
using Mcir.Abstractions.Models;
using Mcir.Core.Data.Datasets;
using Mcir.Core.Compute;
using Mcir.Core.IO;
using Mcir.Core.Metrics;
using Mcir.Core.ModelContrast;
using Mcir.Core.Training;
using Mcir.Core.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Runs;

/// <summary>What a finished run reports: how training ended and the test tables (model beside the baseline).</summary>
public sealed record RunOutcome(TrainingResult Training, IReadOnlyList<TestTable> Tests, string RunDirectory);

/// <summary>One test set's scores for the trained model and for the baseline (bicubic for SR, the input otherwise).</summary>
/// <param name="Dataset">The test set's display name.</param>
/// <param name="Model">The trained model's scores.</param>
/// <param name="Baseline">The baseline's scores.</param>
/// <param name="BaselineName">What the baseline is, for the table header ("bicubic", "input").</param>
public sealed record TestTable(string Dataset, MetricsReport Model, MetricsReport Baseline, string BaselineName = "bicubic");

/// <summary>
/// One training run from a configuration: composes the model, data, loss terms and negative bank, trains with the
/// <see cref="Trainer"/>, then scores the test sets. The engine side of <c>mcir-host run</c>.
/// </summary>
public static class TrainingRun
{
    /// <summary>Trains and tests the run configured by <paramref name="resolvedRoot"/>.</summary>
    /// <param name="resolvedRoot">The configuration (file plus <c>--set</c> overrides).</param>
    /// <param name="registries">Where the model, degradation and loss-term names are resolved (engine and plugins).</param>
    /// <param name="resume">Null, <c>auto</c> or a checkpoint folder.</param>
    /// <param name="log">Progress lines.</param>
    /// <param name="cancel">Stops training after the current iteration (a checkpoint is written).</param>
    public static RunOutcome Execute(JsonObject resolvedRoot, RunRegistries registries, string? resume, TextWriter log, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(registries);
        var config = RunComposition.Bind(resolvedRoot);
        string runDir = Path.GetFullPath(Path.Combine(config.OutputRoot, config.Name));
        Directory.CreateDirectory(runDir);

        torch.manual_seed(config.Train.Seed);
        using var net = RunComposition.CreateModel(registries.Models, config.Model, out var modelOptions);
        log.WriteLine($"run {config.Name}: model {config.Model.Name} ({net.parameters().Sum(p => p.numel()):N0} parameters), folder {runDir}");
        log.WriteLine($"cpu: {Compute.CpuFeatures.Machine.Describe()}, {torch.get_num_threads()} libtorch threads; {Compute.OneDnnIsa.Note}");
        string? checkpoint = Trainer.ResolveResume(runDir, resume);
        if (config.Path.PretrainNetworkG is { Length: > 0 } && checkpoint is null)
            LoadPretrained(net, config.Path, log);

        var train = RunComposition.CreateDataset(config.Data.Train, "data.train", training: true, registries.Degradations);
        var loader = new PairedBatchLoader(train, new PairedLoaderOptions
        {
            BatchSize = config.Data.BatchSize, Shuffle = true, DropLast = true, Seed = (int)config.Train.Seed, Prefetch = true,
        });
        var val = config.Data.Val is { } v ? RunComposition.CreateDataset(v, "data.val", training: false, registries.Degradations) : null;
        var tests = config.Data.Test.Select((t, i) => (Section: t, Data: RunComposition.CreateDataset(t, $"data.test[{i}]", training: false, registries.Degradations))).ToList();

        var terms = RunComposition.CreateLosses(config.Loss, registries.LossTerms);
        try
        {
            WriteResolvedConfig(runDir, config, modelOptions, registries, terms.OfType<SpnLoss>().FirstOrDefault());
            foreach (var t in terms) log.WriteLine($"loss term {t.Name}{(t is SpnLoss spn ? ": " + spn.Describe() : "")}");
            using var bank = terms.Any(t => t.NeedsNegatives) ? NegativeBank.Create(net, config.Negatives) : null;
            if (bank is not null)
                log.WriteLine($"negatives: {NegativeBankOptions.FormatKind(config.Negatives.Kind)}, K = {bank.Count}, steps {string.Join("/", config.Negatives.Steps)}, init {NegativeBankOptions.FormatInit(config.Negatives.Init)}; {config.Negatives.Precision.Describe()}");

            Func<nn.Module<Tensor, Tensor>, long, IReadOnlyDictionary<string, double>>? validate = null;
            if (val is not null)
            {
                validate = (model, iter) =>
                {
                    var report = RestorationEvaluator.Evaluate(model, val, config.Metrics, Path.Combine(runDir, "visualization", $"iter_{iter:D6}"));
                    return new Dictionary<string, double> { ["psnr"] = report.MeanPsnr, ["ssim"] = report.MeanSsim };
                };
            }

            // The collapse guard watches the reconstruction term's part, whichever term that is.
            var guard = new CollapseGuard(config.CollapseGuard with { ReconstructionPart = terms[0].Name });
            using var tensorBoard = new TensorBoardLog(runDir); // <run>/tb: tensorboard --logdir runs
            using var batches = new LoaderBatchSource(loader);
            using var trainer = new Trainer(net, terms, batches, config.Train with { Name = config.Name }, runDir, bank, validate,
                log: tensorBoard, progress: log, collapseGuard: guard);
            if (checkpoint is not null)
            {
                trainer.LoadCheckpoint(checkpoint);
                log.WriteLine($"resumed from {checkpoint} (iteration {trainer.Iteration})");
            }
            var result = trainer.Run(cancel);
            RunCurves.TryWrite(runDir, log); // <run>/curves.png, also after a collapse or an interrupt
            if (result.Status != TrainingStatus.Completed)
                return new RunOutcome(result, [], runDir);

            var tables = tests.Select(t => new TestTable(RunComposition.DisplayName(t.Section),
                RestorationEvaluator.Evaluate(trainer.Ema?.Network ?? net, t.Data, config.Metrics, Path.Combine(runDir, "test", RunComposition.DisplayName(t.Section))),
                RestorationEvaluator.EvaluateBaseline(t.Data, config.Metrics), t.Section.Scale > 1 ? "bicubic" : "input")).ToList();
            WriteResults(runDir, tables);
            return new RunOutcome(result, tables, runDir);
        }
        finally
        {
            foreach (var t in terms) (t as IDisposable)?.Dispose();
        }
    }

    /// <summary>
    /// Loads <c>path.pretrain_network_g</c> into <paramref name="net"/> (strictly unless <c>path.strict_load_g</c> is
    /// false) and logs what was loaded and every key that was not.
    /// </summary>
    public static StateDictLoadReport LoadPretrained(nn.Module net, PathSection path, TextWriter log)
    {
        ArgumentNullException.ThrowIfNull(net);
        ArgumentNullException.ThrowIfNull(path);
        string file = path.PretrainNetworkG ?? throw new ArgumentException("path.pretrain_network_g is not set", nameof(path));
        const string what = "path.pretrain_network_g";
        Dictionary<string, Tensor> state;
        try { state = StateDictFile.Read(file, path.ParamKeyG, what); }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            throw new McirException(e.Message, e);
        }
        try
        {
            var report = StateDictLoader.Load(net, state, $"{what} '{file}'",
                new StateDictLoadOptions { Strict = path.StrictLoadG, NonStrictHint = "path.strict_load_g: false" });
            string key = path.ParamKeyG is { } k ? $"'{k}'" : "default wrapper rule";
            log.WriteLine($"pretrained weights {file} ({key}, {(path.StrictLoadG ? "strict" : "non-strict")}): {report.Loaded.Count} keys loaded");
            if (report.Recomputed.Count > 0)
                log.WriteLine($"  skipped {report.Recomputed.Count} buffers the model recomputes: {string.Join(", ", report.Recomputed)}");
            foreach (var line in report.Describe()) log.WriteLine("  " + line);
            return report;
        }
        finally
        {
            foreach (var t in state.Values) t.Dispose();
        }
    }

    /// <summary>
    /// The configuration as it runs: every section with its defaults; the full options of the model, of the
    /// reconstruction term and of every degradation.
    /// </summary>
    private static void WriteResolvedConfig(string runDir, RunConfig config, object modelOptions, RunRegistries registries, SpnLoss? spn)
    {
        var resolved = (JsonObject)Config.ConfigBinder.ToJson(config with { Train = config.Train with { Name = config.Name } });
        // The SPN options as they run: the embedding actually chosen and its layers.
        if (spn is not null) resolved["loss"]!["spn"] = Config.ConfigBinder.ToJson(spn.Options);
        resolved["model"]!["options"] = Config.ConfigBinder.ToJson(modelOptions);
        var reconstruction = RunComposition.Resolve(registries.LossTerms, config.Loss.Reconstruction, "loss.reconstruction");
        resolved["loss"]!["reconstruction_options"] = Config.ConfigBinder.ToJson(
            RunComposition.ComponentOptions(reconstruction, config.Loss.ReconstructionOptions, "loss.reconstruction_options"));
        var sets = new List<(DatasetSection Section, JsonNode? Node, string Where)> { (config.Data.Train, resolved["data"]!["train"], "data.train") };
        if (config.Data.Val is { } val) sets.Add((val, resolved["data"]!["val"], "data.val"));
        sets.AddRange(config.Data.Test.Select((t, i) => (t, resolved["data"]!["test"]![i], $"data.test[{i}]")));
        foreach (var (section, node, where) in sets)
        {
            if (section.Degradation is not { } d || node?["degradation"] is not JsonObject degradation) continue;
            var descriptor = RunComposition.Resolve(registries.Degradations, d.Name, $"{where}.degradation.name");
            degradation["options"] = Config.ConfigBinder.ToJson(RunComposition.ComponentOptions(descriptor, d.Options, $"{where}.degradation.options"));
        }
        AtomicFile.WriteAllText(Path.Combine(runDir, "config.resolved.json"), resolved.ToJsonString(Config.ConfigBinder.JsonOptions));
    }

    private static void WriteResults(string runDir, IReadOnlyList<TestTable> tables)
    {
        var doc = new JsonArray(tables.Select(t => (JsonNode)new JsonObject
        {
            ["dataset"] = t.Dataset,
            ["protocol"] = new JsonObject { ["crop_border"] = t.Model.Protocol.CropBorder, ["y_channel"] = t.Model.Protocol.YChannel },
            ["model"] = new JsonObject { ["psnr"] = t.Model.MeanPsnr, ["ssim"] = t.Model.MeanSsim },
            ["baseline"] = new JsonObject { ["name"] = t.BaselineName, ["psnr"] = t.Baseline.MeanPsnr, ["ssim"] = t.Baseline.MeanSsim },
            ["images"] = new JsonArray(t.Model.Images.Zip(t.Baseline.Images).Select(p => (JsonNode)new JsonObject
            {
                ["name"] = p.First.Name, ["psnr"] = p.First.Psnr, ["ssim"] = p.First.Ssim,
                ["baseline_psnr"] = p.Second.Psnr, ["baseline_ssim"] = p.Second.Ssim,
            }).ToArray()),
        }).ToArray());
        AtomicFile.WriteAllText(Path.Combine(runDir, "results.json"), doc.ToJsonString(Config.ConfigBinder.JsonOptions));
    }

    /// <summary>The test tables as text: per image and mean, model beside each table's own baseline.</summary>
    public static string FormatTables(IReadOnlyList<TestTable> tables) => Format(tables, null);

    /// <summary>The test tables as text: per image and mean, model beside the baseline called <paramref name="baselineName"/>.</summary>
    public static string FormatTables(IReadOnlyList<TestTable> tables, string baselineName) => Format(tables, baselineName);

    private static string Format(IReadOnlyList<TestTable> tables, string? fixedBaselineName)
    {
        var sb = new System.Text.StringBuilder();
        foreach (var t in tables)
        {
            string baselineName = fixedBaselineName ?? t.BaselineName;
            int w = Math.Max(8, t.Model.Images.Max(i => i.Name.Length));
            sb.AppendLine($"test set {t.Dataset} ({(t.Model.Protocol.YChannel ? "Y channel" : "RGB")}, crop border {t.Model.Protocol.CropBorder})");
            sb.AppendLine($"  {"image".PadRight(w)}  {baselineName + " PSNR",14}  {"SSIM",8}  {"model PSNR",11}  {"SSIM",8}");
            foreach (var (m, b) in t.Model.Images.Zip(t.Baseline.Images))
                sb.AppendLine($"  {m.Name.PadRight(w)}  {b.Psnr,14:F4}  {b.Ssim,8:F6}  {m.Psnr,11:F4}  {m.Ssim,8:F6}");
            sb.AppendLine($"  {"mean".PadRight(w)}  {t.Baseline.MeanPsnr,14:F4}  {t.Baseline.MeanSsim,8:F6}  {t.Model.MeanPsnr,11:F4}  {t.Model.MeanSsim,8:F6}");
        }
        return sb.ToString().TrimEnd();
    }
}
