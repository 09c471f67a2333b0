using System.Diagnostics;
using System.Globalization;
using Mcir.Abstractions.ModelContrast;
using Mcir.Core.Embeddings;
using Mcir.Core.Embeddings.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Benchmarks;

/// <summary>One measured embedding configuration.</summary>
public sealed record EmbeddingBenchmarkResult(
    string Case, string Layers, double LoadMs, double ConstantsMb, double RssAfterLoadMb, double PeakRssMb,
    double ForwardMs, double ForwardBackwardMs, string Weights);

/// <summary>
/// Load time, memory and forward / forward+backward time of a feature embedding on a [B, 3, H, W] batch (default
/// 4×3×192×192), as SPN uses it: forward with gradient to the input, backward of Σ_l mean(φ_l). Each case should run in
/// its own process (<see cref="Program"/> does that) so RSS figures are not mixed.
/// </summary>
public static class EmbeddingBenchmark
{
    public static readonly string[] Cases = ["resnet18-imagenet", "resnet18-imagenet-nofold", "vgg16-relu3_3"];

    public static EmbeddingBenchmarkResult Run(string name, int batch = 4, int size = 192, int warmup = 3, int iterations = 10, string? vggWeights = null)
    {
        torch.set_num_threads(Math.Min(2, Environment.ProcessorCount));
        torch.manual_seed(0);
        using (torch.NewDisposeScope()) { using var warm = torch.ones(2, 2).matmul(torch.ones(2, 2)); }   // load libtorch before the baseline
        GC.Collect();
        double rss0 = RssMb();

        var sw = Stopwatch.StartNew();
        IFeatureEmbedding emb = name switch
        {
            "resnet18-imagenet" => OnnxEmbeddings.Create(ResNet18ImageNet.Name),
            "resnet18-imagenet-nofold" => OnnxEmbeddings.Create(ResNet18ImageNet.Name, new OnnxEmbeddingOptions { FoldBatchNorm = false }),
            "vgg16-relu3_3" => new VggEmbedding(new VggEmbeddingOptions
            {
                Variant = VggVariant.Vgg16, Layers = ["relu1_2", "relu2_2", "relu3_3"],
                WeightsPath = vggWeights, AllowRandomWeights = vggWeights is null,
            }),
            _ => throw new ArgumentException($"unknown case '{name}'; cases: {string.Join(", ", Cases)}"),
        };
        double loadMs = sw.Elapsed.TotalMilliseconds;
        GC.Collect();
        double rssLoad = RssMb() - rss0;
        double constantsMb = emb switch
        {
            OnnxEmbedding o => o.Network.named_buffers().Sum(b => b.buffer.numel() * b.buffer.element_size()) / 1048576.0,
            VggEmbedding v => v.Network.parameters().Sum(p => p.numel() * p.element_size()) / 1048576.0,
            _ => double.NaN,
        };

        using var input = torch.rand(new long[] { batch, 3, size, size }, generator: new Generator(1));
        double Forward()
        {
            using var scope = torch.NewDisposeScope();
            using var noGrad = torch.no_grad();
            var t = Stopwatch.StartNew();
            var f = emb.Extract(input);
            _ = f[^1].sum().item<float>();
            return t.Elapsed.TotalMilliseconds;
        }
        double ForwardBackward()
        {
            using var scope = torch.NewDisposeScope();
            var t = Stopwatch.StartNew();
            var x = input.detach().requires_grad_(true);
            var f = emb.Extract(x);
            var loss = f.Select(z => z.mean()).Aggregate((a, b) => a + b);
            loss.backward();
            _ = x.grad!.sum().item<float>();
            return t.Elapsed.TotalMilliseconds;
        }
        for (int i = 0; i < warmup; i++) { Forward(); ForwardBackward(); }
        var fwd = Enumerable.Range(0, iterations).Select(_ => Forward()).ToList();
        var fb = Enumerable.Range(0, iterations).Select(_ => ForwardBackward()).ToList();
        double peak = PeakRssMb() - rss0;
        var result = new EmbeddingBenchmarkResult(name, string.Join(", ", emb.Layers), loadMs, constantsMb, rssLoad, peak,
            Median(fwd), Median(fb), emb.WeightsDescription);
        emb.Dispose();
        return result;
    }

    public static string Header(int batch, int size) =>
        $"| embedding ({batch}×3×{size}×{size}) | layers | load ms | weights MB | RSS after load MB | peak RSS MB | forward ms | forward+backward ms |\n" +
        "|---|---|---:|---:|---:|---:|---:|---:|";

    public static string Row(EmbeddingBenchmarkResult r) => string.Create(CultureInfo.InvariantCulture,
        $"| {r.Case} | {r.Layers} | {r.LoadMs:F0} | {r.ConstantsMb:F1} | {r.RssAfterLoadMb:F0} | {r.PeakRssMb:F0} | {r.ForwardMs:F0} | {r.ForwardBackwardMs:F0} |");

    private static double Median(List<double> v)
    {
        v.Sort();
        return v.Count % 2 == 1 ? v[v.Count / 2] : (v[v.Count / 2 - 1] + v[v.Count / 2]) / 2;
    }

    private static double RssMb() => StatusKb("VmRSS:") / 1024.0;

    private static double PeakRssMb() => StatusKb("VmHWM:") / 1024.0;

    private static double StatusKb(string key)
    {
        if (!File.Exists("/proc/self/status")) return Process.GetCurrentProcess().WorkingSet64 / 1024.0;
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(key, StringComparison.Ordinal))
                return double.Parse(line[key.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
        return double.NaN;
    }
}
