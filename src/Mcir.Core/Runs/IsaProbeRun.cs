using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Mcir.Abstractions.Losses;
using Mcir.Core.Compute;
using Mcir.Core.ModelContrast;
using Mcir.Core.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Runs;

/// <summary>
/// The workload of one <see cref="IsaProbe"/> child: the run's own training step (model, loss terms, negatives, SPN
/// embedding, as <c>run</c> composes them) on seeded random data of the run's patch size, once to record the output and
/// every parameter's gradient, then timed.
/// </summary>
public static class IsaProbeRun
{
    /// <summary>Largest batch the probe uses (the run's <c>data.batch_size</c> when smaller): enough for the kernels'
    /// blocking to be the run's, small enough that probing every candidate takes seconds.</summary>
    public const int MaxBatch = 4;

    /// <summary>GT patch side when <c>data.train.gt_size</c> is not set (whole images): BasicSR's usual 96 for ×2–×4 runs.</summary>
    public const int DefaultGtSize = 96;

    /// <summary>
    /// What identifies the workload for the cache: model, loss, negatives, batch and patch size of the configuration.
    /// </summary>
    public static string WorkloadDescription(JsonObject root)
    {
        ArgumentNullException.ThrowIfNull(root);
        var config = RunComposition.Bind(root);
        var (batch, lr, gt) = Shapes(config);
        return $"model {root["model"]?.ToJsonString()}|loss {root["loss"]?.ToJsonString()}|negatives {root["negatives"]?.ToJsonString()}|batch {batch}|lq {lr}|gt {gt}";
    }

    private static (int Batch, int Lq, int Gt) Shapes(RunConfig config)
    {
        int scale = Math.Max(1, config.Data.Train.Scale);
        int gt = config.Data.Train.GtSize ?? DefaultGtSize;
        return (Math.Clamp(config.Data.BatchSize, 1, MaxBatch), gt / scale, gt / scale * scale);
    }

    /// <summary>
    /// Runs the probe in this process and writes <paramref name="outputPath"/> (safetensors: <c>output</c> and
    /// <c>grad.&lt;parameter&gt;</c> of the first step, metadata <see cref="IsaProbe.SecondsKey"/>: the fastest of
    /// <paramref name="timedSteps"/> steps after <see cref="StepBenchmark.WarmUpSteps"/> untimed ones — on a shared machine noise only
    /// slows a step down, so the fastest is the steadiest estimate of a setting's speed).
    /// </summary>
    public static void Execute(JsonObject root, RunRegistries registries, string outputPath, int timedSteps = 3)
    {
        ArgumentNullException.ThrowIfNull(registries);
        var config = RunComposition.Bind(root);
        var (batch, lrSize, gtSize) = Shapes(config);
        // A thread candidate: its count, whatever libtorch made of the inherited environment.
        if (int.TryParse(Environment.GetEnvironmentVariable(IsaProbe.ThreadsVariable), NumberStyles.None, CultureInfo.InvariantCulture, out int threads) && threads > 0)
            set_num_threads(threads);
        manual_seed(config.Train.Seed);
        using var net = RunComposition.CreateModel(registries.Models, config.Model, out var modelOptions);
        int channels = RunComposition.ModelInputChannels(net, modelOptions, out _);
        var terms = RunComposition.CreateLosses(config.Loss, registries.LossTerms, registries.Embeddings);
        try
        {
            using var bank = terms.Any(t => t.NeedsNegatives) ? NegativeBank.Create(net, config.Negatives) : null;
            using var gen = new Generator((ulong)config.Train.Seed + 1);
            using (no_grad())
            {
                // The negatives start as copies of the target: move the target off them so the contrastive terms have
                // gradients (a zero distance has none) and every kernel of the backward pass runs.
                foreach (var p in net.parameters())
                    p.add_(randn(p.shape, generator: gen).mul_(0.01 * (p.numel() > 1 ? p.std().item<float>() : 1f) + 1e-4));
            }
            using var lq = rand(new long[] { batch, channels, lrSize, lrSize }, generator: gen);
            using var gt = rand(new long[] { batch, channels, gtSize, gtSize }, generator: gen);
            net.train();

            (Tensor Output, Tensor? Negatives) Step()
            {
                net.zero_grad();
                return StepBenchmark.ForwardBackward(net, terms, bank, lq, gt);
            }

            // Forward quantities (compared tightly): the output, the negatives' outputs, each embedding's features of
            // the output; then every parameter's gradient (compared by relative L2 norm, see IsaProbe).
            var recorded = new List<KeyValuePair<string, Tensor>>();
            using (var scope = NewDisposeScope())
            {
                static Tensor Keep(Tensor t) => t.detach().contiguous().clone().MoveToOuterDisposeScope();
                var (output, negatives) = Step();
                recorded.Add(new("output", Keep(output)));
                if (negatives is not null) recorded.Add(new("negatives", Keep(negatives)));
                using (no_grad())
                {
                    foreach (var t in terms)
                    {
                        var embedding = t switch { SpnLoss spn => spn.Embedding, ContrastRegularizationLoss cr => cr.Embedding, _ => null };
                        if (embedding is null) continue;
                        var features = embedding.Extract(output.detach());
                        for (int i = 0; i < features.Count; i++) recorded.Add(new($"features.{t.Name}.{embedding.Layers[i]}", Keep(features[i])));
                    }
                }
                foreach (var (name, p) in net.named_parameters())
                    if (p.grad is { } g) recorded.Add(new(IsaProbe.GradientPrefix + name, Keep(g)));
            }
            var times = new List<double>();
            for (int i = 0; i < StepBenchmark.WarmUpSteps - 1 + timedSteps; i++) // the recorded step above was the first warm-up step
            {
                using var scope = NewDisposeScope();
                var sw = Stopwatch.StartNew();
                Step();
                if (i >= StepBenchmark.WarmUpSteps - 1) times.Add(sw.Elapsed.TotalSeconds);
            }
            double fastest = times.Count == 0 ? 0 : times.Min();
            using var file = new TensorFile(recorded, new Dictionary<string, string>
            {
                [IsaProbe.SecondsKey] = fastest.ToString("R", CultureInfo.InvariantCulture),
                ["isa"] = Environment.GetEnvironmentVariable("ONEDNN_MAX_CPU_ISA") ?? "default",
                ["threads"] = get_num_threads().ToString(CultureInfo.InvariantCulture),
            });
            string tmp = outputPath + ".tmp";
            SafetensorsFile.Write(tmp, file);
            File.Move(tmp, outputPath, overwrite: true);
        }
        finally
        {
            foreach (var t in terms) (t as IDisposable)?.Dispose();
        }
    }
}
