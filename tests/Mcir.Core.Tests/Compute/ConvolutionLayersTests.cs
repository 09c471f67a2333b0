using Mcir.Core.Compute;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Compute;

public class ConvolutionLayersTests
{
    // Operands of order 1 (weights ~ 1/√(9C)), the input channels-last.
    private static (Tensor X, Tensor W, Tensor B, Tensor R) Operands(long n, long c, long o, long h, long w, ulong seed)
    {
        var g = new Generator(seed);
        var x = ChannelsLast.Of(randn([n, c, h, w], generator: g));
        var wt = randn([o, c, 3, 3], generator: g) * (1.0 / Math.Sqrt(9 * c));
        var b = randn([o], generator: g) * 0.1;
        var r = ChannelsLast.Of(randn([n, o, h, w], generator: g));
        return (x, wt, b, r);
    }

    // Float32 rounding of F(4×4, 3×3) against the direct kernel: both are float32 sums of the same products in another
    // order, the transforms amplifying rounding up to ~6× (WinogradConvolutionTests measures it against float64); 1e-4 of
    // the largest value leaves room for other CPUs; a wrong tap, flip or transpose is off by ≥ 1e-2 of it.
    private static void AssertClose(Tensor actual, Tensor expected, string what)
    {
        double scale = expected.abs().max().item<float>();
        Assert.True(scale > 0.1, $"{what}: vacuous comparison (largest value {scale})");
        double err = (actual - expected).abs().max().item<float>();
        Assert.True(err <= 1e-4 * scale, $"{what}: max |winograd - direct| = {err} (largest {scale})");
    }

    // A bias gradient (a sum over batch and pixels) against autograd's: float32 sums in another order differ by a few
    // units of rounding of the summands' magnitude (the sum of |r|); a wrong axis or a missing term is off by whole values.
    private static void AssertSumClose(Tensor actual, Tensor expected, Tensor gradOutput, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        var bound = gradOutput.abs().sum([0, 2, 3]) * 1e-6 + 1e-6;
        var err = (actual - expected).abs();
        Assert.True(err.le(bound).all().item<bool>(), $"{what}: max |ours - autograd| = {err.max().item<float>()}");
    }

    // Equal shapes and every element equal.
    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    [Theory]
    // Ragged tiles (13 × 10), one pixel, a wide image, without bias; the input with and without a gradient of its own.
    [InlineData(2, 16, 32, 13, 10, true, true)]
    [InlineData(1, 32, 16, 1, 1, true, false)]
    [InlineData(2, 16, 48, 5, 23, false, true)]
    public void Conv2dTrainable_ValuesAndAllGradients_EqualAutogradThroughConv2d(long n, long c, long o, long h, long w, bool bias, bool inputGrad)
    {
        using var scope = NewDisposeScope();
        var (x, wt, b, r) = Operands(n, c, o, h, w, 41);

        var xd = x.detach().requires_grad_(inputGrad);
        var wd = wt.detach().requires_grad_(true);
        var bd = bias ? b.detach().requires_grad_(true) : null;
        var yd = nn.functional.conv2d(xd, wd, bd, padding: [1, 1]);
        yd.backward([r]);

        var xw = x.detach().requires_grad_(inputGrad);
        var ww = wt.detach().requires_grad_(true);
        var bw = bias ? b.detach().requires_grad_(true) : null;
        var yw = WinogradConvolution.Conv2dTrainable(xw, ww, bw, WinogradConvolution.TransformWeight(ww));
        Assert.True(yw.requires_grad);
        Assert.True(ChannelsLast.IsChannelsLast(yw));
        yw.backward([r]);

        AssertClose(yw.detach(), yd.detach(), "output");
        if (inputGrad)
        {
            Assert.True(ChannelsLast.IsChannelsLast(xw.grad!));
            AssertClose(xw.grad!, xd.grad!, "input gradient");
        }
        else Assert.Null(xw.grad);
        // The weight gradient comes from libtorch's own backward-weights kernel on the same input and output gradient as
        // autograd's: the same kernel on the same shapes, so the same values bit for bit. The bias's is a sum.
        Assert.True(Same(ww.grad!, wd.grad!), $"weight gradient differs by {(ww.grad! - wd.grad!).abs().max().item<float>()}");
        if (bias) AssertSumClose(bw!.grad!, bd!.grad!, r, "bias gradient");
    }

    [Fact]
    public void ConvolutionBackward_WeightAndBias_AreAutogradsOnes_AndWithoutBiasNone()
    {
        using var scope = NewDisposeScope();
        Assert.True(ConvolutionBackward.Available);
        var (x, wt, b, r) = Operands(2, 8, 16, 7, 9, 43);
        var wd = wt.detach().requires_grad_(true);
        var bd = b.detach().requires_grad_(true);
        nn.functional.conv2d(x, wd, bd, padding: [1, 1]).backward([r]);
        var (gw, gb) = ConvolutionBackward.WeightAndBias(r, x, wt, withBias: true);
        Assert.True(Same(gw, wd.grad!));
        Assert.True(Same(gb!, bd.grad!));
        Assert.False(gw.requires_grad);
        var (gw2, gb2) = ConvolutionBackward.WeightAndBias(r, x, wt, withBias: false);
        Assert.True(Same(gw2, wd.grad!));
        Assert.Null(gb2);
        var ex = Assert.Throws<InvalidOperationException>(() => ConvolutionBackward.WeightAndBias(r[.., ..4], x, wt, withBias: true));
        Assert.Contains("convolution backward: aoti_torch_cpu_convolution_backward failed", ex.Message);
    }

    [Fact]
    public void TransformWeightForInputGradient_IsTheTransformOfTheFlippedTranspose()
    {
        using var scope = NewDisposeScope();
        var (_, wt, _, _) = Operands(1, 16, 24, 4, 4, 47);
        var expected = WinogradConvolution.TransformWeight(wt.flip(2, 3).transpose(0, 1).contiguous());
        var actual = WinogradConvolution.TransformWeightForInputGradient(wt);
        Assert.Equal(new long[] { 36 * 16, 24, 1, 1 }, actual.shape);
        Assert.True(Same(actual, expected)); // the same float64 products on the same values
    }

    // A network with one layer Winograd computes and three it does not (stride 2, dilation 2, a 1×1 kernel).
    private sealed class Net : nn.Module<Tensor, Tensor>
    {
        private readonly Conv2d conv1 = nn.Conv2d(16, 32, 3, padding: 1);
        private readonly Conv2d strided = nn.Conv2d(32, 32, 3, stride: 2, padding: 1);
        private readonly Conv2d dilated = nn.Conv2d(32, 32, 3, padding: 2, dilation: 2);
        private readonly Conv2d pointwise = nn.Conv2d(32, 16, 1);

        public Net() : base(nameof(Net)) => RegisterComponents();

        public override Tensor forward(Tensor x) => pointwise.call(dilated.call(strided.call(conv1.call(x).relu())));
    }

    [Fact]
    public void ForModel_TakesOnlyWinogradShapedLayers_KeepsTheStateDict_AndTrainsAsTheDirectNetwork()
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        var direct = new Net();
        var wino = new Net();
        wino.load_state_dict(direct.state_dict());
        var keys = wino.state_dict().Keys.ToArray();
        ChannelsLast.ForConvolutions(direct);
        ConvolutionLayers.ForModel(direct, "off");
        ConvolutionLayers.ForModel(wino, "on");
        ConvolutionLayers.ForModel(wino, "on"); // once per layer
        Assert.Equal(keys, wino.state_dict().Keys.ToArray());
        Assert.True(ConvolutionLayers.IsWinogradShape(nn.Conv2d(8, 8, 3, padding: 1)));
        Assert.False(ConvolutionLayers.IsWinogradShape(nn.Conv2d(8, 8, 3, stride: 2, padding: 1)));
        Assert.False(ConvolutionLayers.IsWinogradShape(nn.Conv2d(8, 8, 3, padding: 2, dilation: 2)));
        Assert.False(ConvolutionLayers.IsWinogradShape(nn.Conv2d(8, 8, 3, padding: 1, groups: 2)));
        Assert.False(ConvolutionLayers.IsWinogradShape(nn.Conv2d(8, 8, 1)));

        var (x, _, _, _) = Operands(2, 16, 16, 12, 11, 53);
        var target = randn(2, 16, 6, 6, generator: new Generator(54));
        long before = ConvolutionLayers.WinogradCalls;
        var yd = direct.call(x);
        nn.functional.l1_loss(yd, target, reduction: nn.Reduction.Sum).backward();
        long afterDirect = ConvolutionLayers.WinogradCalls;
        var yw = wino.call(x);
        nn.functional.l1_loss(yw, target, reduction: nn.Reduction.Sum).backward();
        long afterWino = ConvolutionLayers.WinogradCalls;
        // Counted on this thread: the direct network adds none, the Winograd one its conv1 (conv2 and conv3 are not
        // Winograd-shaped or qualify only under "on").
        Assert.Equal(before, afterDirect);
        Assert.True(afterWino - afterDirect >= 1);
        // conv1 really ran another summation: its rounding shows in the output (the direct kernel's would be identical).
        Assert.False(Same(yw.detach(), yd.detach()));

        AssertClose(yw.detach(), yd.detach(), "network output");
        var gradsD = direct.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!);
        foreach (var (name, p) in wino.named_parameters())
            AssertClose(p.grad!, gradsD[name], $"gradient of {name}");

        // Without a gradient (a negative's or inference's pass): the forward only, the same values.
        using (no_grad())
            AssertClose(wino.call(x), direct.call(x), "no-gradient output");
        // A weight changed in place (an optimizer step, an EMA refresh) is transformed again.
        using (no_grad())
        {
            foreach (var p in direct.parameters()) p.mul_(0.5);
            foreach (var p in wino.parameters()) p.mul_(0.5);
            AssertClose(wino.call(x), direct.call(x), "output after a weight change");
        }
        // … and so is a trainable layer's, at every call (an optimizer step between two training passes).
        direct.zero_grad();
        wino.zero_grad();
        using (no_grad())
        {
            foreach (var p in direct.parameters()) p.add_(0.01);
            foreach (var p in wino.parameters()) p.add_(0.01);
        }
        var yd2 = direct.call(x);
        var yw2 = wino.call(x);
        AssertClose(yw2.detach(), yd2.detach(), "training output after a step");
        nn.functional.l1_loss(yd2, target, reduction: nn.Reduction.Sum).backward();
        nn.functional.l1_loss(yw2, target, reduction: nn.Reduction.Sum).backward();
        var gradsD2 = direct.named_parameters().ToDictionary(p => p.name, p => p.parameter.grad!);
        foreach (var (name, p) in wino.named_parameters())
            AssertClose(p.grad!, gradsD2[name], $"gradient of {name} after a step");
    }

    [Fact]
    public void ForModel_LeavesWhatItCannotCompute_ToTheModule()
    {
        using var scope = NewDisposeScope();
        var conv = nn.Conv2d(12, 16, 3, padding: 1); // 12 input channels: not a multiple of the vector width
        var seq = nn.Sequential(conv);
        ConvolutionLayers.ForModel(seq, "on");
        var x = ChannelsLast.Of(randn(1, 12, 8, 8));
        var expected = nn.functional.conv2d(x, conv.weight!, conv.bias, padding: [1, 1]);
        Assert.True(Same(seq.call(x), expected)); // the module's own kernel, bit for bit
        var conv8 = nn.Conv2d(16, 16, 3, padding: 1);
        var seq8 = nn.Sequential(conv8);
        ConvolutionLayers.ForModel(seq8, "on");
        var contiguous = randn(1, 16, 8, 8); // not channels-last
        Assert.True(Same(seq8.call(contiguous), nn.functional.conv2d(contiguous, conv8.weight!, conv8.bias, padding: [1, 1])));
        var off = nn.Sequential(nn.Conv2d(16, 16, 3, padding: 1));
        ConvolutionLayers.ForModel(off, "off");
        var xc = ChannelsLast.Of(randn(1, 16, 8, 8));
        var offConv = (Conv2d)off.children().First();
        Assert.True(Same(off.call(xc), nn.functional.conv2d(xc, offConv.weight!, offConv.bias, padding: [1, 1])));
    }

    [Theory]
    // With and without bias, the input with and without a gradient; channels-last and contiguous; 3 and 64 channels.
    [InlineData(2, 3, 16, 9, 7, true, false, true)]
    [InlineData(2, 16, 3, 12, 12, true, true, true)]
    [InlineData(1, 8, 8, 5, 6, false, true, false)]
    [InlineData(3, 64, 64, 10, 10, true, true, false)]
    public void ConvolutionBackward_Conv2d_IsConv2dWithAutogradsGradients_TheBiasOnesBySum(long n, long c, long o, long h, long w, bool bias, bool inputGrad, bool channelsLast)
    {
        using var scope = NewDisposeScope();
        var (x0, wt, b, r0) = Operands(n, c, o, h, w, 43);
        var x = channelsLast ? x0 : x0.contiguous();
        var r = channelsLast ? r0 : r0.contiguous();

        var xd = x.detach().requires_grad_(inputGrad);
        var wd = wt.detach().requires_grad_(true);
        var bd = bias ? b.detach().requires_grad_(true) : null;
        var yd = nn.functional.conv2d(xd, wd, bd, padding: [1, 1]);
        yd.backward([r]);

        var xo = x.detach().requires_grad_(inputGrad);
        var wo = wt.detach().requires_grad_(true);
        var bo = bias ? b.detach().requires_grad_(true) : null;
        var yo = ConvolutionBackward.Conv2d(xo, wo, bo);
        Assert.True(yo.requires_grad);
        yo.backward([r]);

        // The forward, input and weight gradients: libtorch's kernels on the same operands, bit for bit.
        Assert.True(Same(yo.detach(), yd.detach()), "output differs");
        Assert.True(Same(wo.grad!, wd.grad!), $"weight gradient differs by {(wo.grad! - wd.grad!).abs().max().item<float>()}");
        if (inputGrad) Assert.True(Same(xo.grad!, xd.grad!), "input gradient differs");
        else Assert.Null(xo.grad);
        if (bias) AssertSumClose(bo!.grad!, bd!.grad!, r, "bias gradient");
    }

    [Fact]
    public void ForModel_RoutesTrainableLayersItDoesNotTakeByWinograd_ThroughConvolutionBackward()
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        // 3 → 16 → 16 → 3: no layer qualifies for Winograd ("off"), every one has a bias that needs a gradient.
        nn.Module<Tensor, Tensor> Net() => nn.Sequential(nn.Conv2d(3, 16, 3, padding: 1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding: 1), nn.ReLU(), nn.Conv2d(16, 3, 3, padding: 1));
        var plain = Net();
        var routed = Net();
        routed.load_state_dict(plain.state_dict());
        ConvolutionLayers.ForModel(routed, "off");
        var x = ChannelsLast.Of(randn(2, 3, 12, 12));
        var target = randn(2, 3, 12, 12);

        long before = ConvolutionLayers.DirectCalls;
        var yr = routed.call(x);
        Assert.Equal(3, ConvolutionLayers.DirectCalls - before);
        var yp = plain.call(x);
        Assert.True(Same(yr.detach(), yp.detach()), "output differs");
        nn.functional.l1_loss(yr, target).backward();
        nn.functional.l1_loss(yp, target).backward();
        var pg = plain.named_parameters().ToDictionary(t => t.name, t => t.parameter.grad!);
        foreach (var (name, p) in routed.named_parameters())
        {
            if (name.EndsWith("weight", StringComparison.Ordinal)) Assert.True(Same(p.grad!, pg[name]), $"{name}: gradient differs");
            else Assert.True((p.grad! - pg[name]).abs().max().item<float>() <= 1e-6f, $"{name}: gradient differs by {(p.grad! - pg[name]).abs().max().item<float>()}");
        }

        // Without a gradient (evaluation, negatives), and for a contiguous input, the module runs as it is.
        long direct = ConvolutionLayers.DirectCalls;
        using (no_grad()) Assert.True(Same(routed.call(x), plain.call(x)));
        var xc = x.contiguous();
        Assert.True(Same(routed.call(xc).detach(), plain.call(xc).detach()));
        Assert.Equal(direct, ConvolutionLayers.DirectCalls);
    }
}
