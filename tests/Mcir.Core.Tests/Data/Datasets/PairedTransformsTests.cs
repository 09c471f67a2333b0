using Mcir.Core.Data;
using Mcir.Core.Data.Datasets;
using static Mcir.Core.Tests.Data.Datasets.DatasetTestImages;

namespace Mcir.Core.Tests.Data.Datasets;

public class PairedTransformsTests
{
    /// <summary>2x3 image whose pixel (y, x) has R = 10·y + x.</summary>
    private static RgbImage Small()
    {
        var px = new float[2 * 3 * 3];
        for (int y = 0; y < 2; y++)
            for (int x = 0; x < 3; x++)
            {
                int i = (y * 3 + x) * 3;
                px[i] = 10 * y + x;
                px[i + 1] = 100 + 10 * y + x;
                px[i + 2] = 200 + 10 * y + x;
            }
        return new RgbImage(2, 3, px);
    }

    private static float[,] Red(RgbImage img)
    {
        var r = new float[img.Height, img.Width];
        for (int y = 0; y < img.Height; y++)
            for (int x = 0; x < img.Width; x++)
                r[y, x] = img[y, x, 0];
        return r;
    }

    [Fact]
    public void AugmentOperationsAreBasicSrs()
    {
        var img = Small(); // rows: [0 1 2], [10 11 12]
        Assert.Equal(new float[,] { { 2, 1, 0 }, { 12, 11, 10 } }, Red(PairedTransforms.Apply(img, new AugmentFlags(true, false, false))));
        Assert.Equal(new float[,] { { 10, 11, 12 }, { 0, 1, 2 } }, Red(PairedTransforms.Apply(img, new AugmentFlags(false, true, false))));
        // BasicSR's rot90 flag is img.transpose(1, 0, 2).
        Assert.Equal(new float[,] { { 0, 10 }, { 1, 11 }, { 2, 12 } }, Red(PairedTransforms.Apply(img, new AugmentFlags(false, false, true))));
        // vflip then transpose = clockwise rotation by 90° (np.rot90(img, -1)).
        Assert.Equal(new float[,] { { 10, 0 }, { 11, 1 }, { 12, 2 } }, Red(PairedTransforms.Apply(img, new AugmentFlags(false, true, true))));
        // hflip, vflip, transpose in this order: (img[::-1, ::-1]).transpose = anti-transpose.
        Assert.Equal(new float[,] { { 12, 2 }, { 11, 1 }, { 10, 0 } }, Red(PairedTransforms.Apply(img, new AugmentFlags(true, true, true))));
        // All channels move together.
        var t = PairedTransforms.Apply(img, new AugmentFlags(true, false, true));
        for (int y = 0; y < t.Height; y++)
            for (int x = 0; x < t.Width; x++)
            {
                Assert.Equal(t[y, x, 0] + 100, t[y, x, 1]);
                Assert.Equal(t[y, x, 0] + 200, t[y, x, 2]);
            }
        Assert.Same(img, PairedTransforms.Apply(img, AugmentFlags.None));
    }

    [Fact]
    public void TheEightFlagCombinationsAreTheEightDistinctOrientations()
    {
        var img = Small();
        var seen = new HashSet<string>();
        foreach (bool h in new[] { false, true })
            foreach (bool v in new[] { false, true })
                foreach (bool t in new[] { false, true })
                {
                    var o = PairedTransforms.Apply(img, new AugmentFlags(h, v, t));
                    seen.Add($"{o.Height}x{o.Width}:{string.Join(",", o.Pixels)}");
                }
        Assert.Equal(8, seen.Count);
    }

    [Theory]
    [InlineData(2, 48)]
    [InlineData(3, 48)]
    [InlineData(4, 96)]
    [InlineData(1, 20)]
    public void CropIsAlignedBetweenLqAndGt(int scale, int gtSize)
    {
        var (lq, gt) = CoordinatePair(40, 50, scale);
        var rng = new Random(5);
        var positions = new HashSet<(float, float)>();
        for (int k = 0; k < 20; k++)
        {
            var (gtPatch, lqPatch) = PairedTransforms.PairedRandomCrop(gt, lq, gtSize, scale, rng);
            Assert.Equal((gtSize / scale, gtSize / scale), (lqPatch.Height, lqPatch.Width));
            Assert.Equal((gtSize, gtSize), (gtPatch.Height, gtPatch.Width));
            AssertAligned(lqPatch, gtPatch, scale);
            // The GT patch starts at the top-left corner of an LQ block.
            Assert.Equal(0f, gtPatch[0, 0, 2]);
            positions.Add((lqPatch[0, 0, 0], lqPatch[0, 0, 1]));
        }
        Assert.True(positions.Count > 10, "the crop position should vary");
    }

    [Fact]
    public void CropReachesEveryPositionIncludingTheLastOne()
    {
        var (lq, gt) = CoordinatePair(5, 4, 2);
        var rng = new Random(1);
        var tops = new HashSet<float>();
        var lefts = new HashSet<float>();
        for (int k = 0; k < 200; k++)
        {
            var (_, l) = PairedTransforms.PairedRandomCrop(gt, lq, 6, 2, rng);
            tops.Add(l[0, 0, 0]);
            lefts.Add(l[0, 0, 1]);
        }
        Assert.Equal(new float[] { 0, 1, 2 }, tops.Order());
        Assert.Equal(new float[] { 0, 1 }, lefts.Order());
    }

    [Fact]
    public void AugmentTransformsLqAndGtIdentically()
    {
        var (lq, gt) = CoordinatePair(6, 6, 3);
        var rng = new Random(11);
        var seen = new HashSet<AugmentFlags>();
        for (int k = 0; k < 64; k++)
        {
            var (g, l, flags) = PairedTransforms.Augment(gt, lq, rng, hflip: true, rotation: true);
            seen.Add(flags);
            AssertAligned(l, g, 3);
            AssertSameImage(PairedTransforms.Apply(lq, flags), l);
            AssertSameImage(PairedTransforms.Apply(gt, flags), g);
        }
        Assert.Equal(8, seen.Count);
    }

    [Fact]
    public void CropThenAugmentOnANonSquareImageStaysAligned()
    {
        var (lq, gt) = CoordinatePair(30, 45, 4);
        var rng = new Random(3);
        for (int k = 0; k < 32; k++)
        {
            var (g, l) = PairedTransforms.PairedRandomCrop(gt, lq, 64, 4, rng);
            var (g2, l2, _) = PairedTransforms.Augment(g, l, rng, true, true);
            AssertAligned(l2, g2, 4);
        }
    }

    [Fact]
    public void DisabledOptionsDrawNothing()
    {
        var rng = new Random(2);
        Assert.Equal(AugmentFlags.None, PairedTransforms.DrawAugment(rng, hflip: false, rotation: false));
        Assert.Equal(new Random(2).Next(), rng.Next());
        for (int k = 0; k < 20; k++)
        {
            var f = PairedTransforms.DrawAugment(rng, hflip: true, rotation: false);
            Assert.False(f.VFlip || f.Transpose);
        }
    }

    [Fact]
    public void SameSeedSameCropsAndFlipsOtherSeedOthers()
    {
        var (lq, gt) = CoordinatePair(40, 40, 2);
        string Run(int seed)
        {
            var rng = new Random(seed);
            var parts = new List<string>();
            for (int k = 0; k < 10; k++)
            {
                var (g, l) = PairedTransforms.PairedRandomCrop(gt, lq, 16, 2, rng);
                var (_, l2, f) = PairedTransforms.Augment(g, l, rng, true, true);
                parts.Add($"{l[0, 0, 0]},{l[0, 0, 1]},{f},{l2[0, 0, 0]}");
            }
            return string.Join(";", parts);
        }
        Assert.Equal(Run(42), Run(42));
        Assert.NotEqual(Run(42), Run(43));
    }

    [Fact]
    public void TooSmallImageIsAnErrorNamingTheFile()
    {
        var (lq, gt) = CoordinatePair(20, 30, 4);
        var e = Assert.Throws<McirException>(() =>
            PairedTransforms.PairedRandomCrop(gt, lq, 96, 4, new Random(0), "/data/gt/0042.png", "/data/lq/0042.png"));
        Assert.Contains("/data/gt/0042.png", e.Message);
        Assert.Contains("too small", e.Message);
        Assert.Contains("20x30", e.Message);
        Assert.Contains("24x24", e.Message);
    }

    [Fact]
    public void ScaleMismatchIsAnErrorNamingBothFiles()
    {
        var (lq, _) = CoordinatePair(20, 30, 4);
        var (_, gt3) = CoordinatePair(20, 30, 3);
        var e = Assert.Throws<McirException>(() =>
            PairedTransforms.PairedRandomCrop(gt3, lq, 16, 4, new Random(0), "gt/a.png", "lq/a.png"));
        Assert.Contains("gt/a.png", e.Message);
        Assert.Contains("lq/a.png", e.Message);
        Assert.Contains("60x90", e.Message);
        Assert.Contains("80x120", e.Message);
    }

    [Fact]
    public void GtSizeMustBeAMultipleOfTheScale()
    {
        var (lq, gt) = CoordinatePair(20, 20, 4);
        Assert.Throws<ArgumentOutOfRangeException>(() => PairedTransforms.PairedRandomCrop(gt, lq, 50, 4, new Random(0)));
        Assert.Contains("multiple", Assert.Throws<ArgumentException>(() => new PairedDatasetOptions { Scale = 4, GtSize = 50 }.Validate()).Message);
    }
}
