using Mcir.Abstractions.Losses;
using Mcir.Abstractions.Models;
using static TorchSharp.torch;

namespace McirPlugin.Template.Tests;

public class RestorationNetTests
{
    [Fact]
    public void KeepsTheImageSize()
    {
        using var scope = NewDisposeScope();
        manual_seed(0);
        using var net = new RestorationNet(new RestorationNetOptions { Features = 8, Blocks = 2 });
        var y = net.call(rand(2, 3, 20, 13));
        Assert.Equal(new long[] { 2, 3, 20, 13 }, y.shape);
    }

    [Fact]
    public void TheCloneHasTheSameArchitecture()
    {
        using var net = new RestorationNet(new RestorationNetOptions { Features = 8, Blocks = 2 });
        using var clone = (RestorationNet)net.CloneArchitecture();
        var keys = net.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        var cloneKeys = clone.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Equal(keys.Keys.Order(), cloneKeys.Keys.Order());
        Assert.All(keys, kv => Assert.Equal(kv.Value, cloneKeys[kv.Key]));
        Assert.Contains("body.1.conv2.weight", keys.Keys);
    }

    [Fact]
    public void TheDescriptorIsRegisteredUnderItsName()
    {
        Assert.Equal("mcirtask-net", RestorationNet.Descriptor.Name);
        // conv 3->32, 4 blocks of two 32->32 convolutions, conv 32->3, each 3x3 with a bias.
        Assert.Equal((3 * 32 * 9 + 32) + 8 * (32 * 32 * 9 + 32) + (32 * 3 * 9 + 3), RestorationNet.Descriptor.ParameterCount);
    }
}

public class GradientL1LossTests
{
    [Fact]
    public void MatchesTheFormulaOnARamp()
    {
        using var scope = NewDisposeScope();
        // d = output - target = 0.1 * column index on a 1x1x2x4 image: mean|d| = 0.15, horizontal differences 0.1,
        // vertical differences 0; value = 0.15 + 0.5 * (0.1 + 0).
        var target = zeros(1, 1, 2, 4);
        var output = arange(4, dtype: ScalarType.Float32).mul(0.1f).expand(1, 1, 2, 4).contiguous();
        var result = new GradientL1Loss(new GradientL1Options()).Compute(new LossContext(output, target, target, null));
        Assert.Equal(0.2, result.Value.item<float>(), 5);
        Assert.Equal(0.15, result.Parts["l1"], 5);
        Assert.Equal(0.1, result.Parts["gradient"], 5);
    }

    [Fact]
    public void RejectsANegativeWeight() =>
        Assert.Throws<ArgumentException>(() => new GradientL1Loss(new GradientL1Options { Weight = -1 }));
}

public class BlockinessDegradationTests
{
    [Fact]
    public void AtFullStrengthEveryBlockIsItsMean()
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        var clean = rand(3, 10, 12);
        var y = BlockinessDegradation.Blockify(clean, 4, 1.0);
        Assert.Equal(clean.shape, y.shape);
        // The block of rows 0..3, columns 4..7 and the partial bottom-right block (rows 8..9, columns 8..11).
        Assert.True(y[.., 0..4, 4..8].allclose(clean[.., 0..4, 4..8].mean(new long[] { 1, 2 }, keepdim: true).expand(3, 4, 4), 1e-6, 1e-6));
        Assert.True(y[.., 8..10, 8..12].allclose(clean[.., 8..10, 8..12].mean(new long[] { 1, 2 }, keepdim: true).expand(3, 2, 4), 1e-6, 1e-6));
    }

    [Fact]
    public void TheSameSeedGivesTheSameImage()
    {
        using var scope = NewDisposeScope();
        var degradation = (BlockinessDegradation)BlockinessDegradation.Descriptor.CreateDefault();
        var clean = rand(3, 16, 16);
        var a = degradation.Degrade(clean, new Random(5));
        var b = degradation.Degrade(clean, new Random(5));
        Assert.True(a.allclose(b, rtol: 0, atol: 0), "same seed, same draws");
        Assert.False(a.allclose(clean));
    }
}
