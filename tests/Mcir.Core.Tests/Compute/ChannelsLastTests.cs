using Mcir.Core.Compute;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Compute;

public class ChannelsLastTests
{
    // float32 against float64 on the same values: each output sums cin·9 products of N(0,1) terms (|x| ≲ 4), so the
    // float32 rounding error stays far below 1e-3 · the output scale; the fault this guards against is off by O(10) or NaN.
    private const double RelativeTolerance = 1e-4;

    public static TheoryData<int> ChannelCounts => new() { 3, 16, 24, 30, 60, 64, 120 };

    [Theory]
    [MemberData(nameof(ChannelCounts))]
    public void GuardedConvolutionMatchesFloat64_ForContiguousAndOddStridedInputs(int channels)
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(7 + (ulong)channels);
        using var conv = ChannelsLast.ForConvolutions(nn.Conv2d(channels, channels, 3, padding: 1));
        var x = randn(new long[] { 1, 32 * 32, channels }, generator: gen);
        var contiguous = x.transpose(1, 2).contiguous().view(1, channels, 32, 32);
        var oddStrides = x.transpose(1, 2).view(1, channels, 32, 32); // NHWC order, batch stride = channels
        var w = conv.weight!.detach().to(ScalarType.Float64);
        var b = conv.bias!.detach().to(ScalarType.Float64);
        using (no_grad())
            foreach (var input in new[] { contiguous, oddStrides })
            {
                var expected = nn.functional.conv2d(input.to(ScalarType.Float64), w, b, padding: new long[] { 1, 1 });
                var got = conv.call(input).to(ScalarType.Float64);
                double err = (got - expected).abs().max().item<double>(), scale = expected.abs().max().item<double>();
                Assert.True(err <= RelativeTolerance * scale, $"{channels} channels, strides [{string.Join(", ", input.stride())}]: max |err| {err:E3} (scale {scale:E3})");
            }
    }

    [Fact]
    public void Of_GivesDenseNhwcStrides_AndKeepsValuesAndGradient()
    {
        using var scope = NewDisposeScope();
        var x = arange(2 * 3 * 4 * 5, dtype: ScalarType.Float32).view(2, 3, 4, 5).requires_grad_();
        var y = ChannelsLast.Of(x);
        Assert.Equal(new long[] { 60, 1, 15, 3 }, y.stride());
        Assert.True(ChannelsLast.IsChannelsLast(y));
        Assert.True(y.equal(x).all().item<bool>());
        (y * y).sum().backward();
        Assert.True(x.grad!.equal(2 * x.detach()).all().item<bool>());
        var odd = randn(1, 16, 3).transpose(1, 2).view(1, 3, 4, 4); // NHWC order, batch stride 3
        Assert.False(ChannelsLast.IsChannelsLast(odd));
        Assert.Equal(new long[] { 48, 1, 12, 3 }, ChannelsLast.Of(odd).stride());
        Assert.Same(y, ChannelsLast.Of(y));
    }
}
