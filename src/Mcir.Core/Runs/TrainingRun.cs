using System.Text.Json.Nodes;
using Mcir.Abstractions.Losses;
using Mcir.Abstractions.Models;
using Mcir.Core.Data.Datasets;
using Mcir.Core.IO;
using Mcir.Core.Metrics;
using Mcir.Core.ModelContrast;
using Mcir.Core.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Runs;

/// <summary>What a finished run reports: how training ended and the test tables (model beside the baseline).</summary>
public sealed record RunOutcome(TrainingResult Training, IReadOnlyList<TestTable> Tests, string RunDirectory);

/// <summary>One test set's scores for the trained model and for the baseline (bicubic for SR).</summary>
public sealed record TestTable(string Dataset, MetricsReport Model, MetricsReport Baseline);

/// <summary>
/// One training run from a configuration: composes the model, data, loss terms and negative bank, trains with the
/// <see cref="Trainer"/>, then scores the test sets. The engine side of <c>mcir-host run</c>.
/// </summary>
public static class TrainingRun
{
    public static RunOutcome Execute(JsonObject resolvedRoot, IModelRegistry models, string? resume, TextWriter log, CancellationToken cancel = default)
    {
        var config = RunComposition.Bind(resolvedRoot);
        string runDir = Path.GetFullPath(Path.Combine(config.OutputRoot, config.Name));
        Directory.CreateDirectory(runDir);

        torch.manual_seed(config.Train.Seed);
        using var net = RunComposition.CreateModel(models, config.Model, out var modelOptions);
        WriteResolvedConfig(runDir, resolvedRoot, config, modelOptions);
        log.WriteLine($"run {config.Name}: model {config.Model.Name} ({net.parameters().Sum(p => p.numel()):N0} parameters), folder {runDir}");

        var train = RunComposition.CreateDataset(config.Data.Train, "data.train", training: true);
        var loader = new PairedBatchLoader(train, new PairedLoaderOptions
        {
            BatchSize = config.Data.BatchSize, Shuffle = true, DropLast = true, Seed = (int)config.Train.Seed, Prefetch = false,
        });
        var val = config.Data.Val is { } v ? RunComposition.CreateDataset(v, "data.val", training: false) : null;
        var tests = config.Data.Test.Select((t, i) => (Section: t, Data: RunComposition.CreateDataset(t, $"data.test[{i}]", training: false))).ToList();

        var terms = RunComposition.CreateLosses(config.Loss);
        try
        {
            foreach (var t in terms) log.WriteLine($"loss term {t.Name}{(t is SpnLoss spn ? ": " + spn.Describe() : "")}");
            using var bank = terms.Any(t => t.NeedsNegatives) ? NegativeBank.Create(net, config.Negatives) : null;
            if (bank is not null)
                log.WriteLine($"negatives: {NegativeBankOptions.FormatKind(config.Negatives.Kind)}, K = {bank.Count}, steps {string.Join("/", config.Negatives.Steps)}, init {NegativeBankOptions.FormatInit(config.Negatives.Init)}");

            Func<nn.Module<Tensor, Tensor>, long, IReadOnlyDictionary<string, double>>? validate = null;
            if (val is not null)
            {
                validate = (model, iter) =>
                {
                    var report = RestorationEvaluator.Evaluate(model, val, config.Metrics, Path.Combine(runDir, "visualization", $"iter_{iter:D6}"));
                    return new Dictionary<string, double> { ["psnr"] = report.MeanPsnr, ["ssim"] = report.MeanSsim };
                };
            }

            using var trainer = new Trainer(net, terms, new LoaderBatchSource(loader), config.Train with { Name = config.Name }, runDir, bank, validate, progress: log);
            if (Trainer.ResolveResume(runDir, resume) is { } checkpoint)
            {
                trainer.LoadCheckpoint(checkpoint);
                log.WriteLine($"resumed from {checkpoint} (iteration {trainer.Iteration})");
            }
            var result = trainer.Run(cancel);
            if (result.Status != TrainingStatus.Completed)
                return new RunOutcome(result, [], runDir);

            var tables = tests.Select(t => new TestTable(RunComposition.DisplayName(t.Section),
                RestorationEvaluator.Evaluate(trainer.Ema?.Network ?? net, t.Data, config.Metrics, Path.Combine(runDir, "test", RunComposition.DisplayName(t.Section))),
                RestorationEvaluator.EvaluateBaseline(t.Data, config.Metrics))).ToList();
            WriteResults(runDir, tables);
            return new RunOutcome(result, tables, runDir);
        }
        finally
        {
            foreach (var t in terms) (t as IDisposable)?.Dispose();
        }
    }

    /// <summary>The configuration as it runs: every section with its defaults, the model's full options.</summary>
    private static void WriteResolvedConfig(string runDir, JsonObject root, RunConfig config, object modelOptions)
    {
        var resolved = (JsonObject)Config.ConfigBinder.ToJson(config);
        resolved["model"]!["options"] = Config.ConfigBinder.ToJson(modelOptions);
        AtomicFile.WriteAllText(Path.Combine(runDir, "config.resolved.json"), resolved.ToJsonString(Config.ConfigBinder.JsonOptions));
    }

    private static void WriteResults(string runDir, IReadOnlyList<TestTable> tables)
    {
        var doc = new JsonArray(tables.Select(t => (JsonNode)new JsonObject
        {
            ["dataset"] = t.Dataset,
            ["protocol"] = new JsonObject { ["crop_border"] = t.Model.Protocol.CropBorder, ["y_channel"] = t.Model.Protocol.YChannel },
            ["model"] = new JsonObject { ["psnr"] = t.Model.MeanPsnr, ["ssim"] = t.Model.MeanSsim },
            ["baseline"] = new JsonObject { ["psnr"] = t.Baseline.MeanPsnr, ["ssim"] = t.Baseline.MeanSsim },
            ["images"] = new JsonArray(t.Model.Images.Zip(t.Baseline.Images).Select(p => (JsonNode)new JsonObject
            {
                ["name"] = p.First.Name, ["psnr"] = p.First.Psnr, ["ssim"] = p.First.Ssim,
                ["baseline_psnr"] = p.Second.Psnr, ["baseline_ssim"] = p.Second.Ssim,
            }).ToArray()),
        }).ToArray());
        AtomicFile.WriteAllText(Path.Combine(runDir, "results.json"), doc.ToJsonString(Config.ConfigBinder.JsonOptions));
    }

    /// <summary>The test tables as text: per image and mean, model beside baseline.</summary>
    public static string FormatTables(IReadOnlyList<TestTable> tables, string baselineName)
    {
        var sb = new System.Text.StringBuilder();
        foreach (var t in tables)
        {
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
