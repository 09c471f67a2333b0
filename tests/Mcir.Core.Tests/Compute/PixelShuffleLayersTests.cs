using Mcir.Core.Compute;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Compute;

public class PixelShuffleLayersTests
{
    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    [Theory]
    // Factor 2 with channels a multiple of 4 (the SSE blocks), factor 2 with 6 channels and factor 3 (one value at a
    // time), a non-square image.
    [InlineData(2, 64, 8, 12, 2)]
    [InlineData(1, 6, 4, 4, 2)]
    [InlineData(2, 5, 9, 6, 3)]
    [InlineData(1, 4, 2, 2, 1)]
    public void Unshuffle_IsLibtorchsPixelUnshuffle_BitForBit_ChannelsLast(long n, long c, long h, long w, long r)
    {
        using var scope = NewDisposeScope();
        var x = ChannelsLast.Of(randn(n, c, h * r, w * r));
        var ours = PixelShuffleLayers.Unshuffle(x, r);
        Assert.True(ChannelsLast.IsChannelsLast(ours));
        Assert.True(Same(ours, nn.functional.pixel_unshuffle(x, r)));
    }

    [Fact]
    public void Unshuffle_RefusesWhatItDoesNotTake_NamingShapeAndType()
    {
        using var scope = NewDisposeScope();
        var strided = randn(1, 4, 4, 4).transpose(2, 3); // neither contiguous nor channels-last
        var ex = Assert.Throws<ArgumentException>(() => PixelShuffleLayers.Unshuffle(strided, 2));
        Assert.Contains("[1, 4, 4, 4]", ex.Message);
        Assert.Throws<ArgumentException>(() => PixelShuffleLayers.Unshuffle(ChannelsLast.Of(randn(1, 4, 5, 4)), 2)); // 5 rows
        Assert.False(PixelShuffleLayers.UnshuffleApplies(ChannelsLast.Of(randn(1, 4, 4, 4)).to(ScalarType.Float64), 2));
    }

    [Fact]
    public void ForModel_TrainsAsLibtorchsPixelShuffle_AndLeavesOtherCallsToTheModule()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        nn.Module<Tensor, Tensor> Net() => nn.Sequential(nn.Conv2d(8, 32, 3, padding: 1), nn.PixelShuffle(2), nn.Conv2d(8, 3, 3, padding: 1));
        var plain = Net();
        var routed = Net();
        routed.load_state_dict(plain.state_dict());
        PixelShuffleLayers.ForModel(routed);
        var x = ChannelsLast.Of(randn(2, 8, 6, 5));
        var target = randn(2, 3, 12, 10);
        // The same convolutions on both sides (plain libtorch), so every value and gradient is the same bit for bit.
        var yr = routed.call(x);
        var yp = plain.call(x);
        Assert.True(Same(yr.detach(), yp.detach()));
        nn.functional.mse_loss(yr, target).backward();
        nn.functional.mse_loss(yp, target).backward();
        var pg = plain.named_parameters().ToDictionary(t => t.name, t => t.parameter.grad!);
        foreach (var (name, p) in routed.named_parameters()) Assert.True(Same(p.grad!, pg[name]), $"{name}: gradient differs");
        // Without a gradient, and for a contiguous input, the module's own call.
        using (no_grad()) Assert.True(Same(routed.call(x), plain.call(x)));
        var xc = randn(2, 8, 6, 5);
        Assert.True(Same(routed.call(xc).detach(), plain.call(xc).detach()));
    }

    [Fact]
    public void PixelShuffle_GradientReachesTheInput_AsLibtorchsBackward()
    {
        using var scope = NewDisposeScope();
        var x = ChannelsLast.Of(randn(2, 16, 5, 7));
        var g = ChannelsLast.Of(randn(2, 4, 10, 14));
        var a = x.detach().requires_grad_(true);
        var ya = PixelShuffleLayers.PixelShuffle(a, 2);
        ya.backward([g]);
        var b = x.detach().requires_grad_(true);
        nn.functional.pixel_shuffle(b, 2).backward([g]);
        Assert.True(Same(ya.detach(), nn.functional.pixel_shuffle(x, 2)));
        Assert.True(Same(a.grad!, b.grad!));
    }

    // Contiguous tensors: Shuffle and Unshuffle's row-interleaving paths.

    [Theory]
    // Factor 2 with widths that fill the SSE vectors and one that leaves a tail (5), factor 3, factor 1.
    [InlineData(2, 3, 6, 8, 2)]
    [InlineData(1, 2, 3, 5, 2)]
    [InlineData(2, 2, 4, 7, 3)]
    [InlineData(1, 3, 2, 2, 1)]
    public void ShuffleAndUnshuffle_AreLibtorchs_BitForBit_Contiguous(long n, long c, long h, long w, long r)
    {
        using var scope = NewDisposeScope();
        var x = randn(n, c * r * r, h, w);
        var shuffled = PixelShuffleLayers.Shuffle(x, r);
        Assert.True(shuffled.is_contiguous());
        Assert.True(Same(shuffled, nn.functional.pixel_shuffle(x, r)));
        var g = randn(n, c, h * r, w * r);
        var unshuffled = PixelShuffleLayers.Unshuffle(g, r);
        Assert.True(unshuffled.is_contiguous());
        Assert.True(Same(unshuffled, nn.functional.pixel_unshuffle(g, r)));
    }

    [Fact]
    public void Shuffle_RefusesWhatItDoesNotTake_NamingShape()
    {
        using var scope = NewDisposeScope();
        var ex = Assert.Throws<ArgumentException>(() => PixelShuffleLayers.Shuffle(randn(1, 6, 4, 4), 2)); // 6 channels: not a multiple of 4
        Assert.Contains("[1, 6, 4, 4]", ex.Message);
        Assert.False(PixelShuffleLayers.ShuffleApplies(ChannelsLast.Of(randn(1, 8, 4, 4)), 2)); // channels-last: libtorch's forward
        Assert.False(PixelShuffleLayers.ShuffleApplies(randn(1, 8, 4, 4).to(ScalarType.Float64), 2));
    }

    [Fact]
    public void ForModel_ContiguousNetwork_TrainsAndEvaluatesAsLibtorchsPixelShuffle()
    {
        using var scope = NewDisposeScope();
        manual_seed(4);
        nn.Module<Tensor, Tensor> Net() => nn.Sequential(nn.Conv2d(4, 16, 3, padding: 1), nn.PixelShuffle(2), nn.Conv2d(4, 3, 3, padding: 1));
        var plain = Net();
        var routed = Net();
        routed.load_state_dict(plain.state_dict());
        PixelShuffleLayers.ForModel(routed);
        var x = randn(2, 4, 6, 8);
        var target = randn(2, 3, 12, 16);
        var yr = routed.call(x);
        var yp = plain.call(x);
        Assert.True(Same(yr.detach(), yp.detach()));
        nn.functional.mse_loss(yr, target).backward();
        nn.functional.mse_loss(yp, target).backward();
        var pg = plain.named_parameters().ToDictionary(t => t.name, t => t.parameter.grad!);
        foreach (var (name, p) in routed.named_parameters()) Assert.True(Same(p.grad!, pg[name]), $"{name}: gradient differs");
        using (no_grad()) Assert.True(Same(routed.call(x), plain.call(x)));
    }
}
