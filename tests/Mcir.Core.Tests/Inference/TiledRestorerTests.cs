using Mcir.Core.Inference;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Inference;

/// <summary>Three 3×3 convolutions (receptive radius 3 input pixels) and a PixelShuffle ×scale; random seeded weights.</summary>
internal sealed class SmallSrNet : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> _body;

    public SmallSrNet(int scale, long seed) : base(nameof(SmallSrNet))
    {
        manual_seed(seed);
        _body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding: 1), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding: 1), nn.ReLU(),
            nn.Conv2d(8, 3 * scale * scale, 3, padding: 1),
            nn.PixelShuffle(scale));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => _body.call(x);
}

/// <summary>Nearest-neighbour ×2 that refuses inputs whose sides are not multiples of 8 (like a window-8 network).</summary>
internal sealed class NeedsMultipleOf8 : nn.Module<Tensor, Tensor>
{
    public NeedsMultipleOf8() : base(nameof(NeedsMultipleOf8)) { }

    public override Tensor forward(Tensor x)
    {
        if (x.shape[2] % 8 != 0 || x.shape[3] % 8 != 0)
            throw new InvalidOperationException($"input {x.shape[2]}x{x.shape[3]} is not a multiple of 8");
        return x.repeat_interleave(2, 2).repeat_interleave(2, 3);
    }
}

/// <summary>
/// A ×2 nearest-neighbour network that declares (<see cref="Mcir.Abstractions.Models.IInputSizeMultiple"/>) and enforces a
/// multiple of 4, and keeps the inputs it saw.
/// </summary>
internal sealed class DeclaresMultipleOf4 : nn.Module<Tensor, Tensor>, Mcir.Abstractions.Models.IInputSizeMultiple
{
    public DeclaresMultipleOf4() : base(nameof(DeclaresMultipleOf4)) { }

    public List<Tensor> Inputs { get; } = [];

    public int InputSizeMultiple => 4;

    public override Tensor forward(Tensor x)
    {
        if (x.shape[2] % 4 != 0 || x.shape[3] % 4 != 0)
            throw new InvalidOperationException($"input {x.shape[2]}x{x.shape[3]} is not a multiple of 4");
        Inputs.Add(x.contiguous().clone().DetachFromDisposeScope());
        return x.repeat_interleave(2, 2).repeat_interleave(2, 3);
    }
}

/// <summary>Returns an output that is not an integer multiple of its input.</summary>
internal sealed class OddScaleNet : nn.Module<Tensor, Tensor>
{
    public OddScaleNet() : base(nameof(OddScaleNet)) { }
    public override Tensor forward(Tensor x) => x.narrow(2, 0, x.shape[2] - 1);
}

public class TiledRestorerTests
{
    private static double MaxAbsDiff(Tensor a, Tensor b)
    {
        Assert.Equal(a.shape, b.shape);
        using var d = (a - b).abs().max();
        return d.item<float>();
    }

    [Theory]
    [InlineData(1, 37, 53, 20, 12)]
    [InlineData(2, 37, 53, 20, 12)]
    [InlineData(2, 45, 29, 32, 16)] // default overlap; one tile high along the short side after clamping
    [InlineData(1, 50, 50, 17, 13)] // odd tile and overlap: many tiles, last ones shifted inward
    public void TiledEqualsWholeImageForAReceptiveFieldWithinTheCrossFadeMargin(int scale, int h, int w, int tile, int overlap)
    {
        using var scope = NewDisposeScope();
        using var net = new SmallSrNet(scale, seed: 7);
        manual_seed(11);
        var x = rand(2, 3, h, w);

        var whole = TiledRestorer.Restore(net, x);
        var tiled = TiledRestorer.Restore(net, x, new TileOptions { TileSize = tile, Overlap = overlap });

        Assert.Equal(new long[] { 2, 3, h * scale, w * scale }, tiled.shape);
        // The receptive radius (3) is at most overlap / 4, so the whole output agrees, borders included.
        double diff = MaxAbsDiff(whole, tiled);
        Assert.True(diff <= 1e-4, $"max |tiled - whole| = {diff:E3}");
        // and the tiles really were needed: a different network output per tile would show up here
        Assert.True(TiledRestorer.TileStarts(h, Math.Min(tile, h), overlap).Count * TiledRestorer.TileStarts(w, Math.Min(tile, w), overlap).Count > 1);
    }

    [Fact]
    public void ScaleIsInferredAndCheckedAgainstTheGivenOne()
    {
        using var scope = NewDisposeScope();
        using var net = new SmallSrNet(2, seed: 3);
        var x = rand(1, 3, 30, 30);
        var y = TiledRestorer.Restore(net, x, new TileOptions { TileSize = 16, Overlap = 8, Scale = 2 });
        Assert.Equal(new long[] { 1, 3, 60, 60 }, y.shape);
        var e = Assert.Throws<McirException>(() => TiledRestorer.Restore(net, x, new TileOptions { TileSize = 16, Overlap = 8, Scale = 3 }));
        Assert.Contains("expected scale 3", e.Message);
        using var odd = new OddScaleNet();
        Assert.Throws<McirException>(() => TiledRestorer.Restore(odd, x));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(20)]
    public void PadToMultipleCropsBackExactly(int tile)
    {
        using var scope = NewDisposeScope();
        using var net = new NeedsMultipleOf8();
        var x = rand(1, 3, 37, 53);
        Assert.Throws<InvalidOperationException>(() => TiledRestorer.Restore(net, x));

        var y = TiledRestorer.Restore(net, x, new TileOptions { TileSize = tile, Overlap = 8, PadMultiple = 8 });

        var expected = x.repeat_interleave(2, 2).repeat_interleave(2, 3);
        Assert.Equal(expected.shape, y.shape);
        // whole image: the crop is exact; tiles: cross-fading equal values is exact up to float rounding
        Assert.True(MaxAbsDiff(expected, y) <= (tile == 0 ? 0 : 1e-6));
    }

    [Fact]
    public void DeclaredMultipleIsPaddedAsBasicSRsSwinIRTest_WithoutAnyOption()
    {
        using var scope = NewDisposeScope();
        using var net = new DeclaresMultipleOf4();
        var x = arange(2 * 5 * 6, ScalarType.Float32).reshape(1, 2, 5, 6);
        var y = TiledRestorer.Restore(net, x);

        // torch 1.13: F.pad(torch.arange(60.).reshape(1, 2, 5, 6), (0, 2, 0, 3), 'reflect'), what BasicSR's
        // SwinIRModel.test does for window_size 4 (mod_pad_h 3, mod_pad_w 2)
        float[] expected =
        [
            0, 1, 2, 3, 4, 5, 4, 3, 6, 7, 8, 9, 10, 11, 10, 9, 12, 13, 14, 15, 16, 17, 16, 15, 18, 19, 20, 21, 22, 23, 22, 21,
            24, 25, 26, 27, 28, 29, 28, 27, 18, 19, 20, 21, 22, 23, 22, 21, 12, 13, 14, 15, 16, 17, 16, 15, 6, 7, 8, 9, 10, 11, 10, 9,
            30, 31, 32, 33, 34, 35, 34, 33, 36, 37, 38, 39, 40, 41, 40, 39, 42, 43, 44, 45, 46, 47, 46, 45, 48, 49, 50, 51, 52, 53, 52, 51,
            54, 55, 56, 57, 58, 59, 58, 57, 48, 49, 50, 51, 52, 53, 52, 51, 42, 43, 44, 45, 46, 47, 46, 45, 36, 37, 38, 39, 40, 41, 40, 39,
        ];
        var seen = Assert.Single(net.Inputs);
        Assert.Equal(new long[] { 1, 2, 8, 8 }, seen.shape);
        Assert.Equal(expected, seen.data<float>().ToArray()); // copies of the input's values: exact
        // the output is cropped to scale × (h, w): the top-left 10×12 of the 16×16 output
        Assert.Equal(new long[] { 1, 2, 10, 12 }, y.shape);
        Assert.Equal(0, MaxAbsDiff(x.repeat_interleave(2, 2).repeat_interleave(2, 3), y));
        seen.Dispose();

        // an input that is already a multiple is passed unchanged
        net.Inputs.Clear();
        var z = rand(1, 3, 8, 12);
        TiledRestorer.Restore(net, z);
        Assert.Equal(0, MaxAbsDiff(z, Assert.Single(net.Inputs)));
        net.Inputs[0].Dispose();
        Assert.Equal(4, TiledRestorer.InputMultipleOf(net));
        using var plain = new SmallSrNet(2, seed: 1);
        Assert.Equal(1, TiledRestorer.InputMultipleOf(plain));
    }

    [Fact]
    public void PadToMultipleOnTilesAgreesWithTheWholeImage()
    {
        using var scope = NewDisposeScope();
        using var net = new SmallSrNet(2, seed: 5);
        var x = rand(1, 3, 41, 35);
        // Reflection padding only changes pixels next to the padded border, so away from it whole == tiled.
        var whole = TiledRestorer.Restore(net, x, new TileOptions { PadMultiple = 8 });
        var tiled = TiledRestorer.Restore(net, x, new TileOptions { TileSize = 24, Overlap = 12, PadMultiple = 8 });
        Assert.Equal(new long[] { 1, 3, 82, 70 }, tiled.shape);
        // 24-pixel tiles need no padding; the padded whole image differs within the receptive radius (3 input = 6
        // output pixels) of the bottom and right borders only.
        Assert.True(MaxAbsDiff(whole.narrow(2, 0, 76).narrow(3, 0, 64), tiled.narrow(2, 0, 76).narrow(3, 0, 64)) <= 1e-4);
    }

    [Fact]
    public void TilesCoverTheImageAndTheLastOneIsShiftedInward()
    {
        foreach (var (length, tile, overlap) in new[] { (100, 32, 16), (33, 32, 16), (32, 32, 16), (10, 32, 16), (97, 17, 0), (64, 16, 15) })
        {
            var starts = TiledRestorer.TileStarts(length, Math.Min(tile, length), overlap);
            int n = Math.Min(tile, length);
            Assert.Equal(0, starts[0]);
            Assert.Equal(length, starts[^1] + n);
            for (int i = 1; i < starts.Count; i++)
            {
                Assert.True(starts[i] > starts[i - 1]);
                Assert.True(starts[i - 1] + n - starts[i] >= overlap, $"tiles {i - 1} and {i} of ({length}, {tile}, {overlap}) overlap by less than {overlap}");
            }
        }
    }

    [Fact]
    public void NeighbouringWindowsCrossFadeToOne()
    {
        const int n = 40, o = 16;
        var a = TiledRestorer.Window(n, o, rampStart: false, rampEnd: true);
        var b = TiledRestorer.Window(n, o, rampStart: true, rampEnd: false);
        // b starts where a's last o pixels begin
        for (int i = 0; i < o; i++)
            Assert.Equal(1.0, a[n - o + i] + b[i], 5);
        Assert.Equal(0f, b[0]);             // outer margin (o / 4 pixels) has no weight
        Assert.Equal(0f, b[o / 4 - 1]);
        Assert.True(b[o / 4] > 0);
        Assert.Equal(1f, b[o - o / 4]);     // full weight after the ramp
        Assert.All(a.Take(n - o), v => Assert.Equal(1f, v));
    }

    [Fact]
    public void AcceptsChwAndRestoresTrainingMode()
    {
        using var scope = NewDisposeScope();
        using var net = new SmallSrNet(1, seed: 2);
        net.train();
        var x = rand(3, 30, 31);
        var y = TiledRestorer.Restore(net, x, new TileOptions { TileSize = 16, Overlap = 8 });
        Assert.Equal(new long[] { 3, 30, 31 }, y.shape);
        Assert.True(net.training);
        Assert.False(y.requires_grad);
    }
}
