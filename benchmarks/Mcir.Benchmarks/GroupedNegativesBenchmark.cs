using System.Diagnostics;
using System.Globalization;
using Mcir.Core.Compute;
using Mcir.Core.Runs;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Mcir.Benchmarks;

/// <summary>What <see cref="GroupedNegativesBenchmark.Run"/> measured (milliseconds; the largest output difference).</summary>
public sealed record GroupedNegativesResult(int Negatives, int Batch, int LrSize, int Scale, double SeparateMs, double GroupedMs, double MaxDifference)
{
    /// <summary>One line for the console.</summary>
    public string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"K = {Negatives} negatives' forwards (EDSR-light x{Scale}, batch {Batch} of {LrSize}x{LrSize}, no gradient, channels-last): " +
        $"K calls {SeparateMs:F1} ms, one grouped call {GroupedMs:F1} ms (grouped / separate {GroupedMs / SeparateMs:F2}); " +
        $"largest |difference| of the outputs {MaxDifference:G3}");
}

/// <summary>
/// The suggestion for the negatives: all K negative models' forwards as one call, their weights stacked along the
/// output channels and every convolution grouped (<c>groups = K</c>, the input repeated K times), against K separate
/// calls. EDSR-light (BasicSR's EDSR, 64 features, 16 residual blocks, res_scale 1; the mean shift and image range
/// are left out, elementwise and the same in both) with K sets of random weights, written functionally so that both
/// paths run the same operations: the grouped one's pixel shuffle keeps each group's channels together (channel
/// c·r² + i of group k lands in group k), and residual adds and ReLUs are elementwise, so its output is the K separate
/// outputs side by side. Both paths run without gradient in eval mode, as <c>NegativeBank.Produce</c> runs them, with
/// channels-last convolution inputs (the engine's default); rounds alternate, medians reported.
/// </summary>
public static class GroupedNegativesBenchmark
{
    private const int Features = 64, Blocks = 16;

    public static GroupedNegativesResult Run(int negatives = 4, int batch = 4, int lrSize = 48, int scale = 4, int warmup = 2, int rounds = 9)
    {
        if (scale is not (2 or 3 or 4)) throw new ArgumentOutOfRangeException(nameof(scale), scale, "EDSR-light scales are 2, 3 and 4");
        torch.manual_seed(0);
        using var scope = NewDisposeScope();
        var sets = Enumerable.Range(0, negatives).Select(_ => RandomWeights(scale)).ToList();
        // Stacked weights: per convolution, the K sets' [out, in, kh, kw] concatenated along out.
        var stacked = Enumerable.Range(0, sets[0].Count)
            .Select(i => (cat(sets.Select(s => s[i].W).ToList(), 0), cat(sets.Select(s => s[i].B).ToList(), 0)))
            .ToList();
        using var lq = rand(batch, 3, lrSize, lrSize);
        using var repeated = lq.repeat(1, negatives, 1, 1);
        using var noGrad = no_grad();

        Tensor Separate() => cat(sets.Select(s => Forward(s, lq, 1, scale)).ToList(), 1);
        Tensor Grouped() => Forward(stacked, repeated, negatives, scale);

        double maxDiff;
        using (NewDisposeScope()) maxDiff = (Separate() - Grouped()).abs().max().item<float>();
        for (int i = 0; i < warmup; i++) { using (NewDisposeScope()) { Separate(); Grouped(); } }
        var separate = new List<double>();
        var grouped = new List<double>();
        for (int r = 0; r < rounds; r++)
        {
            separate.Add(Time(Separate));
            grouped.Add(Time(Grouped));
        }
        return new GroupedNegativesResult(negatives, batch, lrSize, scale, StepBenchmark.Median(separate), StepBenchmark.Median(grouped), maxDiff);
    }

    private static double Time(Func<Tensor> forward)
    {
        using var scope = NewDisposeScope();
        var sw = Stopwatch.StartNew();
        forward();
        return sw.Elapsed.TotalMilliseconds;
    }

    /// <summary>EDSR-light's convolutions in call order: conv_first, body (conv1, conv2)×16, conv_after_body, upsample, conv_last.</summary>
    private static List<(Tensor W, Tensor B)> RandomWeights(int scale)
    {
        var list = new List<(Tensor, Tensor)>();
        void Add(int cin, int cout)
        {
            double bound = 1 / Math.Sqrt(cin * 9); // PyTorch's default Conv2d initialisation range
            list.Add(((rand(cout, cin, 3, 3) * 2 - 1) * bound, (rand(cout) * 2 - 1) * bound));
        }
        Add(3, Features);
        for (int b = 0; b < 2 * Blocks; b++) Add(Features, Features);
        Add(Features, Features);
        if (scale == 3) Add(Features, 9 * Features);
        else for (int s = scale; s > 1; s /= 2) Add(Features, 4 * Features);
        Add(Features, 3);
        return list;
    }

    /// <summary>EDSR-light's forward with every convolution grouped <paramref name="groups"/> ways; x is [B, 3·groups, H, W].</summary>
    private static Tensor Forward(IReadOnlyList<(Tensor W, Tensor B)> convs, Tensor x, int groups, int scale)
    {
        int i = 0;
        Tensor Conv(Tensor t)
        {
            var (w, b) = convs[i++];
            return F.conv2d(ChannelsLast.Of(t), w, b, padding: [1, 1], groups: groups);
        }
        var feat = Conv(x);
        var h = feat;
        for (int b = 0; b < Blocks; b++) h = Conv(Conv(h).relu_()).add_(h);
        h = Conv(h).add_(feat);
        if (scale == 3) h = F.pixel_shuffle(Conv(h), 3);
        else for (int s = scale; s > 1; s /= 2) h = F.pixel_shuffle(Conv(h), 2);
        return Conv(h);
    }
}
