using Mcir.Core.Compute;
using Mcir.Core.ModelContrast;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.ModelContrast;

/// <summary>
/// The in-place per-negative mean absolute distance (<see cref="FeatureDistances.MeanAbsPerNegative"/>) against
/// autograd's (a.unsqueeze(0) − b).abs().mean(1..): values and gradients for any upstream gradient over the K
/// distances (the ratio forms divide by them), for channels-last and contiguous layouts alike.
/// </summary>
public class FeatureDistanceTests
{
    [Theory]
    [InlineData(true, true)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(false, false)]
    public void ValuesAndGradients_MatchAutograd(bool featuresChannelsLast, bool negativesChannelsLast)
    {
        using var scope = NewDisposeScope();
        using var gen = new Generator(3);
        const int k = 3, b = 2, c = 5, h = 7, w = 6;
        var a0 = randn([b, c, h, w], generator: gen);
        var negFlat = randn([k * b, c, h, w], generator: gen);
        // Some exact ties: sign(0) = 0 in both formulations.
        negFlat[0, 0, 0, 0] = a0[0, 0, 0, 0];
        var upstream = tensor(new float[] { 0.7f, -1.3f, 2.1f });    // dL/dd_j, unequal as in the ratio forms

        var aRef = (featuresChannelsLast ? ChannelsLast.Of(a0) : a0.contiguous()).detach().requires_grad_(true);
        var negRef = negFlat.view(k, b, c, h, w);
        var expected = (aRef.unsqueeze(0) - negRef).abs().mean([1, 2, 3, 4]);
        (expected * upstream).sum().backward();

        var a = (featuresChannelsLast ? ChannelsLast.Of(a0) : a0.contiguous()).detach().requires_grad_(true);
        var consumed = (negativesChannelsLast ? ChannelsLast.Of(negFlat) : negFlat.clone()).view(k, b, c, h, w);
        var actual = FeatureDistances.MeanAbsPerNegative(a, consumed);
        (actual * upstream).sum().backward();

        Assert.Equal(new long[] { k }, actual.shape);
        // float32 sums in another order: agreement to a few ulps of the values.
        Assert.True(actual.detach().allclose(expected.detach(), rtol: 1e-6, atol: 1e-7), $"values {Str(actual)} vs {Str(expected)}");
        Assert.True(a.grad!.allclose(aRef.grad!, rtol: 1e-6, atol: 1e-9), $"gradients differ by {(a.grad! - aRef.grad!).abs().max().item<float>()}");
    }

    [Fact]
    public void NegativesAreConsumed_AndNoGradientReachesThem()
    {
        using var scope = NewDisposeScope();
        var a = ones(1, 2, 2, 2).requires_grad_(true);
        var negatives = full(new long[] { 2, 1, 2, 2, 2 }, 3f);
        var d = FeatureDistances.MeanAbsPerNegative(a, negatives);
        Assert.Equal(new[] { 2f, 2f }, d.detach().data<float>().ToArray());
        // The documented contract: the negatives' storage now holds sign(b_j − a).
        Assert.True(negatives.eq(1f).all().item<bool>());
        Assert.False(negatives.requires_grad);
    }

    private static string Str(Tensor t) => string.Join(", ", t.detach().data<float>().ToArray());
}
