using Mcir.Core.Compute;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Compute;

public class FusedConvolutionTests
{
    // The operands of a fused call: a 3×3/pad-1 convolution with bias, as VGG's, in the given dtype and layout.
    private static (Tensor X, Tensor W, Tensor B) Operands(long n, long c, long o, long hw, bool channelsLast, ScalarType dtype, ulong seed)
    {
        var g = new Generator(seed);
        var x = randn([n, c, hw, hw], generator: g).to(dtype);
        var w = (randn([o, c, 3, 3], generator: g) * (1.0 / Math.Sqrt(9 * c))).to(dtype);
        var b = (randn([o], generator: g) * 0.1).to(dtype);
        if (channelsLast) { x = ChannelsLast.Of(x); w = ChannelsLast.Of(w); }
        return (x, w, b);
    }

    [Fact]
    public void EntryPoint_IsExportedByTheShippedLibtorch()
    {
        using var warm = zeros(1); // libtorch is loaded
        Assert.True(FusedConvolution.Available, $"{FusedConvolution.EntryPoint} not found in libtorch_cpu.so");
        Assert.Equal("convolution + ReLU fused in the embedding's no-gradient passes", FusedConvolution.Note);
    }

    [Theory]
    // VGG16's first blocks' channel counts, channels-last (the embedding's layout) and contiguous.
    [InlineData(2, 3, 64, 24, true)]
    [InlineData(2, 64, 64, 24, true)]
    [InlineData(1, 64, 128, 12, true)]
    [InlineData(2, 128, 256, 6, true)]
    [InlineData(2, 3, 64, 24, false)]
    [InlineData(2, 64, 64, 24, false)]
    [InlineData(1, 60, 3, 10, true)]
    public void Conv2dRelu_EqualsConvolutionThenRelu_InTheInputsLayout(long n, long c, long o, long hw, bool channelsLast)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (x, w, b) = Operands(n, c, o, hw, channelsLast, ScalarType.Float32, 11);
        var expected = nn.functional.relu(nn.functional.conv2d(x, w, b, padding: [1, 1]));

        var fused = FusedConvolution.Conv2dRelu(x, w, b, padding: 1);

        Assert.Equal(expected.shape, fused.shape);
        Assert.Equal(ScalarType.Float32, fused.dtype);
        Assert.Equal(channelsLast, ChannelsLast.IsChannelsLast(fused));
        Assert.Equal(!channelsLast, Mcir.Core.Compute.ConvolutionLayout.IsDenseContiguous(fused));
        // ReLU applied: no negative value, and zeros exactly where the reference has them (bar values at rounding
        // distance from 0). Values: the same oneDNN kernel where libtorch's own convolution picks oneDNN (then
        // identical); for small shapes libtorch may pick another algorithm (another summation order), so the bound is
        // the float32 rounding of a sum of 9·C ≤ 1,152 products, outputs of order 1: √1152 · 2⁻²⁴ ≈ 2e-6 typical, a
        // few times that at the worst of ~10⁵ outputs (1.2e-6 measured on a Zen 5); 3e-5 leaves room for other CPUs'
        // kernels, and is far below a wrong tap or bias (≥ 1e-2).
        Assert.True(fused.min().item<float>() >= 0);
        double err = (fused - expected).abs().max().item<float>();
        Assert.True(err <= 3e-5, $"max |fused - conv+relu| = {err}");
        Assert.True(expected.abs().max().item<float>() > 0.5); // not a vacuous comparison
    }

    [Fact]
    public void Conv2dRelu_BFloat16_WithinOneBfloat16Step_WhereNative()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (x, w, b) = Operands(2, 64, 64, 16, true, ScalarType.BFloat16, 12);
        // Fused only where the CPU has bfloat16 natively and no cap hides it (libtorch refuses the fused kernel
        // elsewhere); there the unfused pair runs and there is nothing to compare.
        if (!FusedConvolution.CanFuse(x, w, b)) return;
        var expected = nn.functional.relu(nn.functional.conv2d(x, w, b, padding: [1, 1])).to(float32);
        var fused = FusedConvolution.Conv2dRelu(x, w, b, padding: 1);
        Assert.Equal(ScalarType.BFloat16, fused.dtype);
        // Both round a float32 accumulation to bfloat16 (8 significant bits): one bfloat16 step apart (2^-7 relative)
        // where the two sums agree to float32 rounding; outputs near zero, where a different summation order can move
        // the sum itself, get an absolute 2^-8 of the largest output besides.
        var diff = (fused.to(float32) - expected).abs();
        var bound = expected.abs() * (1.0 / 128) + expected.abs().max() * (1.0 / 256);
        Assert.True(diff.le(bound).all().item<bool>(), $"max diff {diff.max().item<float>()}");
    }

    [Fact]
    public void Conv2dRelu_WithoutBias_StrideAndDilation()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (x, w, _) = Operands(2, 32, 32, 20, true, ScalarType.Float32, 13);
        var expected = nn.functional.relu(nn.functional.conv2d(x, w, null, strides: [2, 2], padding: [2, 2], dilation: [2, 2]));
        var fused = FusedConvolution.Conv2dRelu(x, w, null, stride: 2, padding: 2, dilation: 2);
        Assert.Equal(expected.shape, fused.shape);
        Assert.True((fused - expected).abs().max().item<float>() <= 3e-5); // as above
    }

    [Fact]
    public void CanFuse_RefusesWhatItCannotComputeExactly()
    {
        using var scope = NewDisposeScope();
        var (x, w, b) = Operands(1, 8, 8, 6, true, ScalarType.Float32, 14);
        Assert.True(FusedConvolution.CanFuse(x, w, b));
        Assert.True(FusedConvolution.CanFuse(x, w, null));
        // A gradient is needed: with grad mode on and an operand requiring grad, never (the result has no history) …
        var xg = x.detach().requires_grad_(true);
        Assert.False(FusedConvolution.CanFuse(xg, w, b));
        // … but under no_grad it is only a value.
        using (no_grad()) Assert.True(FusedConvolution.CanFuse(xg, w, b));
        Assert.False(FusedConvolution.CanFuse(x.to(float64), w.to(float64), b.to(float64)));     // dtype
        Assert.False(FusedConvolution.CanFuse(x, w.to(float64), b));                             // mixed dtypes
        Assert.False(FusedConvolution.CanFuse(x[.., ..4], w[.., ..4], b));                      // a strided slice
        Assert.False(FusedConvolution.CanFuse(x, w[.., ..4], b));                                // groups (C ≠ weight's C)
        Assert.False(FusedConvolution.CanFuse(x[0], w, b));                                      // not 4-D
        Assert.False(FusedConvolution.CanFuse(x, w, b[..4]));                                    // bias size
        // Contiguous shapes oneDNN computes wrongly where its cache sizes are not corrected: refused there only, as
        // the layout guard refuses them to the unfused convolution.
        var (x60, w60, b60) = Operands(1, 60, 3, 6, false, ScalarType.Float32, 16);
        Assert.Equal(!ConvolutionLayout.GuardContiguous, FusedConvolution.CanFuse(x60, w60, b60));
        Assert.True(FusedConvolution.CanFuse(ChannelsLast.Of(x60), w60, b60));

        var ex = Assert.Throws<ArgumentException>(() => FusedConvolution.Conv2dRelu(xg, w, b));
        Assert.Contains("fused convolution: input [1, 8, 6, 6] Float32 on CPU, weight [8, 8, 3, 3]", ex.Message);
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("on", null)]
    [InlineData("OFF", null)]
    [InlineData("no", "MCIR_FUSED_CONVOLUTION: expected 'on' or 'off', got 'no'")]
    public void Switch_AcceptsOnOrOff(string? value, string? error)
    {
        Assert.Equal(error, OneDnnCacheSizes.CheckSwitch(value, FusedConvolution.SwitchVariable));
    }
}
