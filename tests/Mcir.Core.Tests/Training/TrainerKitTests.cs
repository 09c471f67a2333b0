using System.Text.Json;
using Mcir.Abstractions.Losses;
using Mcir.Abstractions.ModelContrast;
using Mcir.Abstractions.Models;
using Mcir.Core.ModelContrast;
using Mcir.Core.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Training.TrainerLoop;

/// <summary>
/// Trainer tests seed and use the process-wide torch generator (network initialisation, dropout), so they must not
/// run in parallel with anything else that draws from it.
/// </summary>
[CollectionDefinition("Trainer", DisableParallelization = true)]
public sealed class TrainerCollection;

/// <summary>Tiny residual conv net (optionally with BatchNorm and dropout) for trainer tests.</summary>
public sealed class TrainerTestNet : nn.Module<Tensor, Tensor>, IArchitectureCloneable
{
    private readonly Conv2d conv1;
    private readonly Conv2d conv2;
    private readonly BatchNorm2d? bn;
    private readonly Dropout? drop;

    public TrainerTestNet(int width = 8, bool batchNorm = false, double dropout = 0) : base("TrainerTestNet")
    {
        Width = width;
        BatchNorm = batchNorm;
        DropoutP = dropout;
        conv1 = nn.Conv2d(3, width, 3, padding: 1);
        conv2 = nn.Conv2d(width, 3, 3, padding: 1);
        if (batchNorm) bn = nn.BatchNorm2d(width);
        if (dropout > 0) drop = nn.Dropout(dropout);
        RegisterComponents();
    }

    public int Width { get; }
    public bool BatchNorm { get; }
    public double DropoutP { get; }

    public nn.Module<Tensor, Tensor> CloneArchitecture() => new TrainerTestNet(Width, BatchNorm, DropoutP);

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = conv1.call(x);
        if (bn is not null) h = bn.call(h);
        h = nn.functional.relu(h);
        if (drop is not null) h = drop.call(h);
        return (x + conv2.call(h)).MoveToOuterDisposeScope();
    }
}

/// <summary>A tiny frozen two-layer "feature extractor" standing in for VGG in SPN trainer tests.</summary>
public sealed class TrainerTestEmbedding : IFeatureEmbedding
{
    private readonly Conv2d _c1;
    private readonly Conv2d _c2;

    public TrainerTestEmbedding(long seed = 7)
    {
        var saved = random.get_rng_state();
        random.manual_seed(seed);
        _c1 = nn.Conv2d(3, 4, 3, padding: 1);
        _c2 = nn.Conv2d(4, 4, 3, stride: 2, padding: 1);
        random.set_rng_state(saved);
        saved.Dispose();
        foreach (var p in _c1.parameters().Concat(_c2.parameters())) p.requires_grad = false;
        _c1.eval();
        _c2.eval();
    }

    public string Name => "test-embedding";
    public IReadOnlyList<string> Layers { get; } = ["f1", "f2"];
    public string WeightsDescription => "seeded random weights (test)";

    public IReadOnlyList<Tensor> Extract(Tensor rgb)
    {
        var f1 = nn.functional.relu(_c1.call(rgb));
        var f2 = nn.functional.relu(_c2.call(f1));
        return [f1, f2];
    }

    public void Dispose()
    {
        _c1.Dispose();
        _c2.Dispose();
    }
}

/// <summary>A loss term that returns NaN from a given iteration on (counted by calls).</summary>
public sealed class NanFromIterationTerm(long fromCall) : ILossTerm
{
    private long _calls;
    public string Name => "nan";
    public bool NeedsNegatives => false;

    public LossResult Compute(LossContext context)
    {
        _calls++;
        var v = context.Output.mean() * (_calls >= fromCall ? double.NaN : 0.0);
        return new LossResult(v, new Dictionary<string, double> { ["nan"] = v.to(ScalarType.Float64).item<double>() });
    }
}

/// <summary>Records events and runs a callback at every iteration record.</summary>
public sealed class RecordingLog : ITrainingLog
{
    public List<IterationRecord> Iterations { get; } = [];
    public List<(long, string)> Messages { get; } = [];
    public Action<IterationRecord>? OnEachIteration { get; init; }

    public void OnIteration(IterationRecord record)
    {
        Iterations.Add(record);
        OnEachIteration?.Invoke(record);
    }

    public void OnMessage(long iteration, string message) => Messages.Add((iteration, message));
}

/// <summary>Everything a trainer test composes, disposed together.</summary>
public sealed class TrainerRig : IDisposable
{
    public required TrainerTestNet Net { get; init; }
    public required InMemoryBatchSource Batches { get; init; }
    public NegativeBank? Bank { get; init; }
    public TrainerTestEmbedding? Embedding { get; init; }
    public SpnLoss? Spn { get; init; }
    public required IReadOnlyList<ILossTerm> Terms { get; init; }

    public Trainer CreateTrainer(TrainingOptions options, string runDir, ITrainingLog? log = null, TextWriter? progress = null,
        CollapseGuard? guard = null, Func<nn.Module<Tensor, Tensor>, long, IReadOnlyDictionary<string, double>>? validate = null) =>
        new(Net, Terms, Batches, options, runDir, Bank, validate, log, progress, guard);

    public void Dispose()
    {
        Spn?.Dispose();
        Embedding?.Dispose();
        Bank?.Dispose();
        Batches.Dispose();
        Net.Dispose();
    }
}

public static class TrainerKit
{
    /// <summary>Deterministic tiny denoising data: 16 samples of 3×12×12, LQ = GT + noise.</summary>
    public static (Tensor Lq, Tensor Gt) Data(int n = 16, int size = 12)
    {
        var g = new Generator(1234);
        var gt = rand([n, 3, size, size], generator: g);
        gt = nn.functional.avg_pool2d(gt, 3, stride: 1, padding: 1);
        var lq = (gt + 0.15 * randn([n, 3, size, size], generator: g)).clamp(0, 1);
        g.Dispose();
        return (lq, gt);
    }

    /// <summary>
    /// Builds net (+ optional negative bank and SPN) with the torch generator seeded, so two rigs with the same arguments
    /// start identical.
    /// </summary>
    public static TrainerRig Rig(bool spn = false, double lambda = 1e-3, bool batchNorm = false, double dropout = 0,
        IReadOnlyList<long>? steps = null, ILossTerm? extraTerm = null, long netSeed = 42)
    {
        random.manual_seed(netSeed);
        var net = new TrainerTestNet(8, batchNorm, dropout);
        var (lq, gt) = Data();
        var batches = new InMemoryBatchSource(lq, gt, batchSize: 4, seed: 99);
        lq.Dispose();
        gt.Dispose();
        var terms = new List<ILossTerm> { new Mcir.Core.Losses.L1Loss() };
        NegativeBank? bank = null;
        TrainerTestEmbedding? emb = null;
        SpnLoss? spnLoss = null;
        if (spn)
        {
            bank = NegativeBank.Create(net, new NegativeBankOptions { Steps = steps ?? [2, 3] });
            emb = new TrainerTestEmbedding();
            spnLoss = new SpnLoss(new SpnLossOptions
            {
                Lambda = lambda,
                LayerWeights = new Dictionary<string, double> { ["f1"] = 0.5, ["f2"] = 0.5 },
            }, emb);
            terms.Add(spnLoss);
        }
        if (extraTerm is not null) terms.Add(extraTerm);
        return new TrainerRig { Net = net, Batches = batches, Bank = bank, Embedding = emb, Spn = spnLoss, Terms = terms };
    }

    public static TrainingOptions Options(long totalIter, long checkpointFreq = 0, double lr = 2e-3) => new()
    {
        TotalIter = totalIter,
        PrintFreq = 1,
        CheckpointFreq = checkpointFreq,
        Seed = 5,
        Optimizer = new OptimizerSettings { Type = "adam", Lr = lr, Betas = [0.9, 0.99] },
    };

    public static string NewRunDir(string name)
    {
        string dir = Path.Combine(Path.GetTempPath(), "mcir-trainer-tests", $"{name}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        return dir;
    }

    public sealed record TrainLine(long Iter, double Lr, Dictionary<string, double> Loss, double? GradNorm);

    /// <summary>The "train" records of a metrics log.</summary>
    public static List<TrainLine> TrainLines(string metricsPath)
    {
        var result = new List<TrainLine>();
        foreach (var line in File.ReadLines(metricsPath))
        {
            using var doc = JsonDocument.Parse(line);
            var r = doc.RootElement;
            if (r.GetProperty("event").GetString() != "train") continue;
            var loss = r.GetProperty("loss").EnumerateObject().ToDictionary(p => p.Name, p => JsonLinesMetricsLog.ReadNumber(p.Value));
            double? gn = r.TryGetProperty("grad_norm", out var g) ? JsonLinesMetricsLog.ReadNumber(g) : null;
            result.Add(new TrainLine(r.GetProperty("iter").GetInt64(), JsonLinesMetricsLog.ReadNumber(r.GetProperty("lr")), loss, gn));
        }
        return result;
    }

    public static List<string> Events(string metricsPath) =>
        File.ReadLines(metricsPath).Select(l => { using var d = JsonDocument.Parse(l); return d.RootElement.GetProperty("event").GetString()!; }).ToList();

    public static void TryDelete(string dir)
    {
        try { Directory.Delete(dir, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
