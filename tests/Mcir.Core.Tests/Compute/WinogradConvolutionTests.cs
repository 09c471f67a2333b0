using System.Numerics;
using Mcir.Core.Compute;
using Mcir.Core.Embeddings;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Compute;

public class WinogradConvolutionTests
{
    // A 3×3/pad-1 convolution's operands as VGG's (weights ~ 1/√(9C), outputs of order 1), the input channels-last.
    private static (Tensor X, Tensor W, Tensor B) Operands(long n, long c, long o, long h, long w, ulong seed)
    {
        var g = new Generator(seed);
        var x = ChannelsLast.Of(randn([n, c, h, w], generator: g));
        var wt = ChannelsLast.Of(randn([o, c, 3, 3], generator: g) * (1.0 / Math.Sqrt(9 * c)));
        var b = randn([o], generator: g) * 0.1;
        return (x, wt, b);
    }

    // The float32 error bound against a float64 convolution. F(4×4, 3×3)'s transforms multiply by up to 8 (Aᵀ) and
    // divide by up to 24 (G): measured on 256-channel layers the largest error is ~6× the direct float32 kernel's
    // (1.6e-4 for outputs up to 14, i.e. ~1e-5 of the largest output). 1e-4 of the largest output leaves room for other
    // CPUs and vector widths; a wrong coefficient, tap, tile offset or bias is off by ≥ 1e-2 of it.
    private static void AssertClose(Tensor actual, Tensor expected64)
    {
        double scale = expected64.abs().max().item<double>();
        Assert.True(scale > 0.5, $"vacuous comparison: largest output {scale}");
        double err = (actual.to(float64) - expected64).abs().max().item<double>();
        Assert.True(err <= 1e-4 * scale, $"max |winograd - conv| = {err} (largest output {scale})");
    }

    [Theory]
    // Tiles past the right and bottom edges (13 × 10: 4 × 3 tiles, the last ones partly outside), one whole tile, a
    // single pixel (the whole 6×6 patch but its centre is padding), a wide image, batches of 1 and 2.
    [InlineData(2, 16, 32, 13, 10, true, true)]
    [InlineData(2, 16, 32, 13, 10, false, true)]
    [InlineData(1, 32, 16, 4, 4, true, false)]
    [InlineData(1, 16, 16, 1, 1, false, true)]
    [InlineData(1, 16, 48, 5, 23, true, true)]
    public void Conv2d_EqualsTheConvolution_UpToFloat32Rounding(long n, long c, long o, long h, long w, bool relu, bool bias)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (x, wt, b) = Operands(n, c, o, h, w, 21);
        var b64 = bias ? b.to(float64) : null;
        var expected = nn.functional.conv2d(x.to(float64), wt.to(float64), b64, padding: [1, 1]);
        if (relu) expected = expected.relu();

        var y = WinogradConvolution.Conv2d(x, WinogradConvolution.TransformWeight(wt), bias ? b : null, relu);

        Assert.Equal(new[] { n, o, h, w }, y.shape);
        Assert.Equal(ScalarType.Float32, y.dtype);
        Assert.True(ChannelsLast.IsChannelsLast(y));
        AssertClose(y, expected);
        if (relu) Assert.True(y.min().item<float>() >= 0);
        else Assert.True(y.min().item<float>() < 0); // signed values reach the output untouched
    }

    [Fact]
    public void Conv2d_ReadsAnInputAtAStorageOffset()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (x, wt, b) = Operands(3, 16, 16, 12, 12, 22); // 3 × 3 tiles: the middle one wholly inside the image
        var second = x[1..]; // channels-last and dense, starting one image into the storage
        Assert.True(ChannelsLast.IsChannelsLast(second));
        var expected = nn.functional.conv2d(second.to(float64), wt.to(float64), b.to(float64), padding: [1, 1]);
        AssertClose(WinogradConvolution.Conv2d(second, WinogradConvolution.TransformWeight(wt), b, relu: false), expected);
    }

    [Fact]
    public void Conv2d_InChunksOfImages_EqualsTheWholeBatch()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (x, wt, b) = Operands(5, 16, 32, 9, 7, 27);
        var u = WinogradConvolution.TransformWeight(wt);
        var expected = nn.functional.conv2d(x.to(float64), wt.to(float64), b.to(float64), padding: [1, 1]).relu();
        var whole = WinogradConvolution.Conv2d(x, u, b, relu: true, imagesPerChunk: 5);
        var chunked = WinogradConvolution.Conv2d(x, u, b, relu: true, imagesPerChunk: 2); // 2 + 2 + 1 images
        AssertClose(chunked, expected);
        // Each image's tiles go through the same transforms; only the matrix products' blocking may differ.
        Assert.True((chunked - whole).abs().max().item<float>() <= 1e-5 * expected.abs().max().item<double>());
        // The default chunk: as many images as fit ChunkBytes of transformed tiles, at least one.
        Assert.Equal(18, WinogradConvolution.ImagesPerChunk(256, 256, 48, 48)); // 5.3 MB per image: a batch of 16 in one chunk
        Assert.Equal(9, WinogradConvolution.ImagesPerChunk(128, 128, 96, 96));   // 10.6 MB per image
        Assert.Equal(1, WinogradConvolution.ImagesPerChunk(512, 512, 1024, 1024));
    }

    [Fact]
    public void TransformWeight_IsTheGroupedWeightOfTheTilePositions()
    {
        using var scope = NewDisposeScope();
        var (_, wt, _) = Operands(1, 16, 32, 4, 4, 23);
        var u = WinogradConvolution.TransformWeight(wt);
        Assert.Equal(new long[] { 36 * 32, 16, 1, 1 }, u.shape);
        Assert.Equal(ScalarType.Float32, u.dtype);
        // Position (0, 0) is G's first row twice: g[0, 0] / 16; position (5, 5) is g[2, 2] (G's last row is [0 0 1]).
        var first = u[..32].reshape(32, 16);
        var last = u[(35 * 32)..].reshape(32, 16);
        Assert.True(first.allclose(wt[.., .., 0, 0] / 16, rtol: 1e-6, atol: 1e-7));
        Assert.True(last.allclose(wt[.., .., 2, 2], rtol: 1e-6, atol: 1e-7));
        var ex = Assert.Throws<ArgumentException>(() => WinogradConvolution.TransformWeight(zeros(4, 4, 5, 5)));
        Assert.Contains("expected [O, C, 3, 3], got [4, 4, 5, 5]", ex.Message);
    }

    [Fact]
    public void Applies_RefusesWhatItCannotCompute()
    {
        using var scope = NewDisposeScope();
        int vl = Vector<float>.Count;
        var (x, w, b) = Operands(1, 2 * vl, vl, 6, 6, 24);
        Assert.True(WinogradConvolution.Applies(x, w, b));
        Assert.True(WinogradConvolution.Applies(x, w, null));
        var xg = x.detach().requires_grad_(true);
        Assert.False(WinogradConvolution.Applies(xg, w, b));                                  // a gradient is needed
        using (no_grad()) Assert.True(WinogradConvolution.Applies(xg, w, b));                 // … not under no_grad
        Assert.False(WinogradConvolution.Applies(x.contiguous(), w, b));                      // not channels-last
        Assert.False(WinogradConvolution.Applies(x.to(float64), w.to(float64), b.to(float64))); // dtype
        Assert.False(WinogradConvolution.Applies(x.to(bfloat16), w.to(bfloat16), b.to(bfloat16)));
        Assert.False(WinogradConvolution.Applies(x, zeros(vl, 2 * vl, 5, 5), b));            // not 3×3
        Assert.False(WinogradConvolution.Applies(x, w[.., ..vl], b));                         // channels differ
        Assert.False(WinogradConvolution.Applies(x, w, b[..1]));                              // bias size
        var (x3, w3, b3) = Operands(1, 3, vl, 6, 6, 25);
        Assert.False(WinogradConvolution.Applies(x3, w3, b3));                                // C not a vector multiple
        var (xo, wo, bo) = Operands(1, vl, 3, 6, 6, 26);
        Assert.False(WinogradConvolution.Applies(xo, wo, bo));                                // O not a vector multiple
        Assert.False(WinogradConvolution.Applies(x, w, b.to(float64)));                       // bias dtype
        Assert.False(WinogradConvolution.Applies(x[0], w, b));                                // not 4-D
        Assert.False(WinogradConvolution.Applies(x[..0], w, b));                              // no elements

        var ex = Assert.Throws<ArgumentException>(() => WinogradConvolution.Conv2d(x.contiguous(), WinogradConvolution.TransformWeight(w), b, relu: true));
        Assert.Contains($"Winograd convolution: input [1, {2 * vl}, 6, 6] Float32", ex.Message);
    }

    [Theory]
    [InlineData(128, 128, true, true)]
    [InlineData(256, 256, true, true)]
    [InlineData(64, 256, true, true)]
    [InlineData(256, 64, true, true)]
    [InlineData(64, 128, false, true)]
    [InlineData(64, 64, false, true)]
    [InlineData(32, 64, false, false)]
    [InlineData(16, 1024, false, false)]
    public void ChannelsQualify_ProductAgainstSum(long c, long o, bool withAvx512, bool belowAvx512)
    {
        // C·O ≥ 48·(C + O) where oneDNN runs AVX-512, 32·(C + O) below.
        Assert.Equal(WinogradConvolution.Avx512InForce ? withAvx512 : belowAvx512, WinogradConvolution.ChannelsQualify(c, o));
        Assert.Equal(c * o >= 48 * (c + o), withAvx512);
        Assert.Equal(c * o >= 32 * (c + o), belowAvx512);
    }

    [Fact]
    public void Choose_OnlyBenchmarkModeMeasures_AutoIsARuleOnTheChannels()
    {
        int calls = 0;
        Tensor Counted(int sleepMs)
        {
            calls++;
            if (sleepMs > 0) Thread.Sleep(sleepMs);
            return zeros(1);
        }
        // Shapes without memory (expanded): N·C·H·W·O above MinimumWork for the big ones.
        using var big = zeros(1, 1, 1, 1).expand(16, 256, 48, 47);
        using var big64 = zeros(1, 1, 1, 1).expand(16, 64, 192, 192);
        using var small = zeros(1, 1, 1, 1).expand(2, 256, 32, 32);
        Assert.False(WinogradConvolution.Choose("off", big, 256, () => Counted(0), () => Counted(0)));
        Assert.True(WinogradConvolution.Choose("on", small, 64, () => Counted(0), () => Counted(0)));
        Assert.False(WinogradConvolution.Choose("auto", small, 256, () => Counted(0), () => Counted(0)));      // below MinimumWork
        Assert.False(WinogradConvolution.Choose("benchmark", small, 256, () => Counted(0), () => Counted(0))); // below MinimumWork
        Assert.True(WinogradConvolution.Choose("auto", big, 256, () => Counted(40), () => Counted(0)));
        Assert.False(WinogradConvolution.Choose("auto", big, 32, () => Counted(0), () => Counted(40)));       // too few output channels
        Assert.Equal(!WinogradConvolution.Avx512InForce, WinogradConvolution.Choose("auto", big64, 64, () => Counted(0), () => Counted(0))); // 64 ↔ 64 below AVX-512 only
        Assert.True(WinogradConvolution.Choose("auto", big64, 256, () => Counted(0), () => Counted(0)));   // 64 → 256 (EDSR's upsampler) everywhere
        Assert.Equal(!WinogradConvolution.Avx512InForce, WinogradConvolution.Choose("auto", big64, 128, () => Counted(0), () => Counted(0))); // 64·128 < 48·192
        Assert.Equal(0, calls);

        // benchmark: direct 40 ms, Winograd ~0 ms: measured (four calls of each), chosen, and then kept without measuring again.
        Assert.True(WinogradConvolution.Choose("benchmark", big, 256, () => Counted(40), () => Counted(0)));
        Assert.Equal(8, calls);
        Assert.True(WinogradConvolution.Choose("benchmark", big, 256, () => Counted(0), () => Counted(40)));
        Assert.Equal(8, calls);
        Assert.True(WinogradConvolution.Decided["[16x256x48x47]->256"]);
        // Winograd slower: the direct kernel stays.
        using var big2 = zeros(1, 1, 1, 1).expand(16, 256, 48, 46);
        Assert.False(WinogradConvolution.Choose("benchmark", big2, 256, () => Counted(0), () => Counted(40)));
        Assert.False(WinogradConvolution.Decided["[16x256x48x46]->256"]);
    }

    [Theory]
    [InlineData("AVX2", true)]
    [InlineData("avx2_vnni", true)]
    [InlineData("SSE41", true)]
    [InlineData("AVX512_CORE", false)]
    [InlineData("AVX512_CORE_BF16", false)]
    public void IsBelowAvx512_NamesTheCapsWithoutAvx512(string cap, bool below) =>
        Assert.Equal(below, OneDnnIsa.IsBelowAvx512(cap));

    [Theory]
    [InlineData(100.0, 90.0, true)]
    [InlineData(100.0, 90.5, false)]
    [InlineData(100.0, 120.0, false)]
    public void Prefers_WinogradOnlyWhenTenPercentFaster(double direct, double winograd, bool expected) =>
        Assert.Equal(expected, WinogradConvolution.Prefers(direct, winograd));

    [Theory]
    [InlineData(null, "auto", null)]
    [InlineData("", "auto", null)]
    [InlineData("ON", "on", null)]
    [InlineData("off", "off", null)]
    [InlineData("Auto", "auto", null)]
    [InlineData("Benchmark", "benchmark", null)]
    [InlineData("fast", null, "MCIR_WINOGRAD: expected 'auto', 'benchmark', 'on' or 'off', got 'fast'")]
    public void Switch_ValuesAndTheErrorLine(string? value, string? mode, string? error)
    {
        Assert.Equal(mode, WinogradConvolution.ParseMode(value));
        Assert.Equal(error, WinogradConvolution.ErrorFor(value));
    }

    [Fact]
    public void Vgg_NoGradientFeatures_ByWinograd_EqualTheDirectOnes_AndFollowNewWeights()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var net = new VggFeatureNet(VggVariant.Vgg16, 15); // to relu3_3: 64-, 128- and 256-channel layers
        manual_seed(5);
        foreach (var p in net.parameters()) p.normal_(0, 0.05);
        ChannelsLast.ForConvolutions(net);
        var x = ChannelsLast.Of(rand(2, 3, 20, 20, generator: new Generator(6)));
        int[] taps = [3, 8, 15];

        net.WinogradMode = "off";
        var direct = net.Run(x, taps);
        net.WinogradMode = "on";
        var winograd = net.Run(x, taps);
        // Features through two to seven convolutions: each layer's ~1e-5-relative rounding carries on.
        for (int k = 0; k < taps.Length; k++)
        {
            double scale = direct[k].abs().max().item<float>();
            Assert.True(scale > 0);
            Assert.True((winograd[k] - direct[k]).abs().max().item<float>() <= 1e-4 * scale, $"tap {taps[k]}");
        }

        // The weights change in place (a load): the cached transform is not used any more.
        foreach (var p in net.parameters()) p.mul_(2);
        var winograd2 = net.Run(x, taps);
        net.WinogradMode = "off";
        var direct2 = net.Run(x, taps);
        double s2 = direct2[2].abs().max().item<float>();
        Assert.True((winograd2[2] - direct2[2]).abs().max().item<float>() <= 1e-4 * s2);
        Assert.True((winograd2[2] - direct[2]).abs().max().item<float>() > 0.1 * s2);
    }

    [Theory]
    // Ragged tiles, a single pixel, no bias; the incoming gradient channels-last or contiguous (as a loss may give it).
    [InlineData(2, 16, 32, 13, 10, true, true)]
    [InlineData(1, 32, 16, 4, 4, false, false)]
    [InlineData(1, 16, 16, 1, 1, true, true)]
    [InlineData(2, 16, 48, 5, 23, true, false)]
    public void Conv2dRelu_ValuesAndInputGradient_EqualTheConvolutions_UpToFloat32Rounding(long n, long c, long o, long h, long w, bool bias, bool channelsLastGradient)
    {
        using var scope = NewDisposeScope();
        var (x, wt, b) = Operands(n, c, o, h, w, 31);
        var r = randn([n, o, h, w], generator: new Generator(32));
        var b64 = bias ? b.to(float64) : null;
        var xg = x.detach().requires_grad_(true);
        Assert.True(WinogradConvolution.AppliesWithInputGradient(xg, wt, bias ? b : null));
        var y = WinogradConvolution.Conv2dRelu(xg, WinogradConvolution.TransformWeight(wt), WinogradConvolution.TransformWeightForInputGradient(wt), bias ? b : null);
        Assert.True(y.requires_grad);
        Assert.True(ChannelsLast.IsChannelsLast(y));

        // The reference: float64 autograd through the convolution and the ReLU's mask as the Winograd output has it. A
        // pre-activation within float32 rounding of 0 may fall on the other side of the ReLU than in float64, and that one
        // entry would move the gradient by a whole term: the mask is the function's own, its gradient is what is tested.
        var x64 = x.to(float64).requires_grad_(true);
        var pre64 = nn.functional.conv2d(x64, wt.to(float64), b64, padding: [1, 1]);
        var mask = (y.detach() > 0).to(float64);
        (pre64 * mask * r.to(float64)).sum().backward();
        AssertClose(y.detach(), pre64.detach().relu());
        Assert.True(y.min().item<float>() == 0 && (mask == 0).any().item<bool>()); // the mask matters
        Assert.True(((y.detach() > 0) != (pre64.detach() > 0)).sum().item<long>() <= 1); // … and is the ReLU's, up to rounding at 0
        var gradOutput = channelsLastGradient ? ChannelsLast.Of(r) : r.contiguous();
        y.backward([gradOutput]);

        Assert.Equal(x.shape, xg.grad!.shape);
        Assert.True(ChannelsLast.IsChannelsLast(xg.grad!));
        AssertClose(xg.grad!, x64.grad!);
    }

    [Fact]
    public void InputGradient_MaskedInChunks_EqualsTheMaskedGradientConvolved_AndFollowsThresholdBackward()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (g, wt, _) = Operands(3, 32, 16, 9, 7, 34);
        var mask = ChannelsLast.Of(randn([3, 32, 9, 7], generator: new Generator(35)).relu()); // half zeros, as a ReLU's output
        mask[1, 3, 4, 2] = float.NaN; // ATen's threshold_backward lets the gradient through where the output is NaN
        var u = WinogradConvolution.TransformWeightForInputGradient(wt.transpose(0, 1)); // an input-gradient weight: C = 32 → 16
        var masked = ChannelsLast.Of(where(mask <= 0, zeros_like(g), g));
        var expected = WinogradConvolution.Conv2d(masked, u, null, relu: false, imagesPerChunk: 3);
        var chunked = WinogradConvolution.Conv2d(g, u, null, relu: false, imagesPerChunk: 1, inputMask: mask); // each chunk its own part of the mask
        var whole = WinogradConvolution.Conv2d(g, u, null, relu: false, imagesPerChunk: 3, inputMask: mask);
        double scale = expected.abs().max().item<float>();
        Assert.True((chunked - expected).abs().max().item<float>() <= 1e-5 * scale);
        Assert.True((whole - expected).abs().max().item<float>() <= 1e-5 * scale);
        var unmasked = WinogradConvolution.Conv2d(g, u, null, relu: false, imagesPerChunk: 3);
        Assert.True((unmasked - expected).abs().max().item<float>() > 0.1 * scale); // the mask matters

        var ex = Assert.Throws<ArgumentException>(() => WinogradConvolution.Conv2d(g, u, null, relu: false, imagesPerChunk: 1, inputMask: mask[..2]));
        Assert.Contains("is not a channels-last float32 tensor of the input's shape [3, 32, 9, 7]", ex.Message);
    }

    [Fact]
    public void Conv2dRelu_Backward_TwiceWithRetainedGraph_AndFromASum()
    {
        using var scope = NewDisposeScope();
        var (x, wt, b) = Operands(2, 16, 16, 6, 9, 36);
        var u = WinogradConvolution.TransformWeight(wt);
        var ub = WinogradConvolution.TransformWeightForInputGradient(wt);
        var xg = x.detach().requires_grad_(true);
        var y = WinogradConvolution.Conv2dRelu(xg, u, ub, b);
        y.sum().backward(retain_graph: true); // the incoming gradient is a broadcast scalar (stride 0), not channels-last
        var once = xg.grad!.clone();
        y.sum().backward();                   // the saved output and weight still there: the gradient accumulates
        Assert.True(xg.grad!.allclose(2 * once, rtol: 1e-6, atol: 1e-6));

        var x64 = x.to(float64).requires_grad_(true);
        (nn.functional.conv2d(x64, wt.to(float64), b.to(float64), padding: [1, 1]) * (y.detach() > 0).to(float64)).sum().backward(); // the mask as y has it
        AssertClose(once, x64.grad!);
    }

    [Fact]
    public void AppliesWithInputGradient_OnlyForAnInputGradientOfAFrozenLayer()
    {
        using var scope = NewDisposeScope();
        int vl = Vector<float>.Count;
        var (x, w, b) = Operands(1, 2 * vl, vl, 6, 6, 33);
        var xg = x.detach().requires_grad_(true);
        Assert.True(WinogradConvolution.AppliesWithInputGradient(xg, w, b));
        Assert.True(WinogradConvolution.AppliesWithInputGradient(xg, w, null));
        Assert.False(WinogradConvolution.AppliesWithInputGradient(x, w, b));                          // no gradient needed
        using (no_grad()) Assert.False(WinogradConvolution.AppliesWithInputGradient(xg, w, b));       // gradient mode off
        Assert.False(WinogradConvolution.AppliesWithInputGradient(xg, w.detach().requires_grad_(true), b)); // weight trained
        Assert.False(WinogradConvolution.AppliesWithInputGradient(xg, w, b.detach().requires_grad_(true))); // bias trained
        Assert.False(WinogradConvolution.AppliesWithInputGradient(x.contiguous().requires_grad_(true), w, b)); // not channels-last
        Assert.False(WinogradConvolution.AppliesWithInputGradient(xg, zeros(vl, 2 * vl, 5, 5), b));  // not 3×3

        var u = WinogradConvolution.TransformWeight(w);
        var ex = Assert.Throws<ArgumentException>(() => WinogradConvolution.Conv2dRelu(xg, u, u, b)); // the forward weight twice
        Assert.Contains("does not belong to the forward weight", ex.Message);
    }

    [Fact]
    public void Vgg_FeaturesWithGradient_ByWinograd_EqualTheDirectOnes_AndSoDoesTheImageGradient()
    {
        using var scope = NewDisposeScope();
        using var net = new VggFeatureNet(VggVariant.Vgg16, 15);
        manual_seed(7);
        using (no_grad()) foreach (var p in net.parameters()) p.normal_(0, 0.05);
        foreach (var p in net.parameters()) p.requires_grad = false;
        ChannelsLast.ForConvolutions(net);
        var image = ChannelsLast.Of(rand(2, 3, 20, 20, generator: new Generator(8)));
        int[] taps = [3, 8, 15];

        (Tensor[] Features, Tensor Gradient) Pass(string mode)
        {
            net.WinogradMode = mode;
            var x = image.detach().requires_grad_(true);
            var f = net.Run(x, taps);
            (f[0].abs().mean() + f[1].abs().mean() + f[2].abs().mean()).backward(); // the SPN distance's kind of loss
            return (f.Select(t => t.detach()).ToArray(), x.grad!);
        }

        var direct = Pass("off");
        var winograd = Pass("on");
        for (int k = 0; k < taps.Length; k++)
        {
            double scale = direct.Features[k].abs().max().item<float>();
            Assert.True((winograd.Features[k] - direct.Features[k]).abs().max().item<float>() <= 1e-4 * scale, $"tap {taps[k]}");
        }
        Assert.True((winograd.Features[2] - direct.Features[2]).abs().max().item<float>() > 0); // Winograd did run (other rounding)
        // The image gradient passes back through up to seven ReLUs, and a pre-activation within float32 rounding of 0
        // (there are ~1–2 among these 2·10⁵: one at 3e-8 in relu1_2 alone) can fall on the other side of its ReLU with
        // Winograd's rounding than with the direct kernel's: measured, one such flip moves the image gradient by 1.8e-3 of
        // its norm, all of them here by 6.4e-3. Compared in norm with room for a few flips; a wrong transform, weight
        // flip or mask moves it by tens of percent.
        double g = direct.Gradient.norm().item<float>();
        Assert.True(g > 0);
        Assert.True((winograd.Gradient - direct.Gradient).norm().item<float>() <= 3e-2 * g,
            $"image gradient differs by {(winograd.Gradient - direct.Gradient).norm().item<float>() / g:E2} of its norm");

        // The weights change in place (a load): both cached transforms follow.
        using (no_grad()) foreach (var p in net.parameters()) p.mul_(2);
        var direct2 = Pass("off");
        var winograd2 = Pass("on");
        double g2 = direct2.Gradient.norm().item<float>();
        Assert.True((winograd2.Gradient - direct2.Gradient).norm().item<float>() <= 3e-2 * g2);
        Assert.True((winograd2.Gradient - winograd.Gradient).norm().item<float>() > 0.1 * g2);
        using (no_grad()) foreach (var p in net.parameters()) p.div_(2);

        // "off" is the ATen layers themselves, bit for bit.
        var x0 = image.detach().requires_grad_(true);
        Tensor h = x0;
        var seq = new List<Tensor>();
        foreach (var (_, m) in net.named_children().SelectMany(c => ((nn.Module)c.module).named_children()))
        {
            h = ((nn.Module<Tensor, Tensor>)m).call(h);
            seq.Add(h);
        }
        Assert.True(direct.Features[2].allclose(seq[15].detach(), rtol: 0, atol: 0));
    }
}
