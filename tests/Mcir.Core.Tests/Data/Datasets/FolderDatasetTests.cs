using Mcir.Core.Data;
using Mcir.Core.Data.Datasets;
using static Mcir.Core.Tests.Data.Datasets.DatasetTestImages;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Data.Datasets;

public class FolderDatasetTests
{
    private static (TempDir Dir, string Gt, string Lq) PairedFolders(int scale, params (string Name, int LqH, int LqW)[] images)
    {
        var dir = new TempDir();
        string gtDir = dir.Sub("gt"), lqDir = dir.Sub("lq");
        foreach (var (name, h, w) in images)
        {
            var (lq, gt) = CoordinatePair(h, w, scale);
            ImageIO.Write(Path.Combine(gtDir, name + ".png"), gt);
            ImageIO.Write(Path.Combine(lqDir, name + ".png"), lq);
        }
        return (dir, gtDir, lqDir);
    }

    [Fact]
    public void PairedFolderPairsByNameAndCropsAligned()
    {
        var (dir, gtDir, lqDir) = PairedFolders(4, ("0001", 30, 40), ("0002", 25, 25), ("0003", 40, 30));
        using var _ = dir;
        var ds = new PairedFolderDataset(gtDir, lqDir, PairedDatasetOptions.Train(4, 64));
        Assert.Equal(3, ds.Count);
        Assert.Equal(["0001", "0002", "0003"], Enumerable.Range(0, 3).Select(ds.NameOf));
        Assert.EndsWith(Path.Combine("gt", "0002.png"), ds.PathsOf(1).Gt);
        var rng = new Random(9);
        for (int k = 0; k < 12; k++)
        {
            var s = ds.Load(k % 3, rng);
            Assert.Equal(ds.NameOf(k % 3), s.Name);
            Assert.Equal((16, 16, 64, 64), (s.Lq.Height, s.Lq.Width, s.Gt.Height, s.Gt.Width));
            AssertAligned(s.Lq, s.Gt, 4);
        }
    }

    [Fact]
    public void SampleTensorsAreChwUnitValues()
    {
        var (dir, gtDir, lqDir) = PairedFolders(2, ("a", 10, 12));
        using var _ = dir;
        var ds = new PairedFolderDataset(gtDir, lqDir, new PairedDatasetOptions { Scale = 2 });
        using var scope = NewDisposeScope();
        using var sample = ds.Load(0, new Random(0)).ToSample();
        Assert.Equal(new long[] { 3, 10, 12 }, sample.Lq.shape);
        Assert.Equal(new long[] { 3, 20, 24 }, sample.Gt.shape);
        Assert.Equal("a", sample.Name);
        // LQ pixel (y=3, x=5): R = 3, G = 5.
        Assert.Equal(3f / 255f, sample.Lq[0, 3, 5].item<float>());
        Assert.Equal(5f / 255f, sample.Lq[1, 3, 5].item<float>());
    }

    [Fact]
    public void EvaluationModeKeepsWholeImagesAndModCropsTheGt()
    {
        var dir = new TempDir();
        using var _ = dir;
        string gtDir = dir.Sub("gt"), lqDir = dir.Sub("lq");
        var (lq, gt) = CoordinatePair(10, 12, 3);
        // GT two pixels taller and one wider than 3 × LQ, as a benchmark HR image that was not mod-cropped.
        var bigGt = new RgbImage(32, 37, new float[32 * 37 * 3]);
        for (int y = 0; y < 30; y++)
            Array.Copy(gt.Pixels, y * 36 * 3, bigGt.Pixels, y * 37 * 3, 36 * 3);
        ImageIO.Write(Path.Combine(gtDir, "img.png"), bigGt);
        ImageIO.Write(Path.Combine(lqDir, "img.png"), lq);
        var ds = new PairedFolderDataset(gtDir, lqDir, new PairedDatasetOptions { Scale = 3 });
        var s = ds.Load(0, new Random(0));
        AssertSameImage(lq, s.Lq);
        AssertSameImage(gt, s.Gt);
    }

    [Fact]
    public void MismatchedSizesAreAnErrorNamingTheFiles()
    {
        var dir = new TempDir();
        using var _ = dir;
        string gtDir = dir.Sub("gt"), lqDir = dir.Sub("lq");
        var (lq, _) = CoordinatePair(20, 20, 4);
        var (_, gt2) = CoordinatePair(20, 20, 2);
        ImageIO.Write(Path.Combine(gtDir, "bad.png"), gt2);
        ImageIO.Write(Path.Combine(lqDir, "bad.png"), lq);
        foreach (var options in new[] { PairedDatasetOptions.Train(4, 32), new PairedDatasetOptions { Scale = 4 } })
        {
            var ds = new PairedFolderDataset(gtDir, lqDir, options);
            var e = Assert.Throws<McirException>(() => ds.Load(0, new Random(0)));
            Assert.Contains(Path.Combine(gtDir, "bad.png"), e.Message);
            Assert.Contains(Path.Combine(lqDir, "bad.png"), e.Message);
            Assert.Contains("40x40", e.Message);
            Assert.Contains("80x80", e.Message);
        }
    }

    [Fact]
    public void TooSmallImageIsAnErrorNamingTheFile()
    {
        var (dir, gtDir, lqDir) = PairedFolders(2, ("big", 40, 40), ("tiny", 10, 40));
        using var _ = dir;
        var ds = new PairedFolderDataset(gtDir, lqDir, PairedDatasetOptions.Train(2, 48));
        ds.Load(0, new Random(0));
        var e = Assert.Throws<McirException>(() => ds.Load(1, new Random(0)));
        Assert.Contains(Path.Combine(gtDir, "tiny.png"), e.Message);
        Assert.Contains("too small", e.Message);
    }

    [Fact]
    public void DifferentNameSetsAreAnError()
    {
        var (dir, gtDir, lqDir) = PairedFolders(2, ("a", 8, 8), ("b", 8, 8));
        using var _ = dir;
        File.Delete(Path.Combine(lqDir, "b.png"));
        var e = Assert.Throws<McirException>(() => new PairedFolderDataset(gtDir, lqDir, new PairedDatasetOptions { Scale = 2 }));
        Assert.Contains("b.png", e.Message);
    }

    [Fact]
    public void CachedImagesGiveTheSameSamples()
    {
        var (dir, gtDir, lqDir) = PairedFolders(2, ("a", 16, 16), ("b", 20, 18));
        using var _ = dir;
        var plain = new PairedFolderDataset(gtDir, lqDir, PairedDatasetOptions.Train(2, 16));
        var cached = new PairedFolderDataset(gtDir, lqDir, PairedDatasetOptions.Train(2, 16) with { CacheImages = true });
        for (int i = 0; i < 2; i++)
        {
            cached.Load(i, new Random(1)); // fill the cache
            var a = plain.Load(i, new Random(i + 5));
            var b = cached.Load(i, new Random(i + 5));
            AssertSameImage(a.Lq, b.Lq);
            AssertSameImage(a.Gt, b.Gt);
        }
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void HrFolderLrIsDownscaleForSrOfTheFile(int scale)
    {
        var dir = new TempDir();
        using var _ = dir;
        string hrDir = dir.Sub("hr");
        var hr1 = DatasetTestImages.Random(37, 41, seed: 1);
        var hr2 = DatasetTestImages.Random(24, 30, seed: 2);
        ImageIO.Write(Path.Combine(hrDir, "one.png"), hr1);
        ImageIO.Write(Path.Combine(hrDir, "two.png"), hr2);
        var ds = new HrFolderDataset(hrDir, new PairedDatasetOptions { Scale = scale });
        Assert.Equal(2, ds.Count);
        Assert.Equal(["one", "two"], new[] { ds.NameOf(0), ds.NameOf(1) });
        foreach (var (i, hr) in new[] { (0, hr1), (1, hr2) })
        {
            var s = ds.Load(i, new Random(0));
            var fromFile = ImageIO.Read(ds.PathOf(i));
            AssertSameImage(MatlabResize.DownscaleForSr(fromFile, scale), s.Lq);
            AssertSameImage(ModCrop.Apply(fromFile, scale), s.Gt);
            AssertSameImage(ModCrop.Apply(hr, scale), s.Gt);
            Assert.Equal((s.Lq.Height * scale, s.Lq.Width * scale), (s.Gt.Height, s.Gt.Width));
        }
    }

    [Fact]
    public void HrFolderComputesTheLrOnceAndCachesIt()
    {
        var dir = new TempDir();
        using var _ = dir;
        string hrDir = dir.Sub("hr");
        string path = Path.Combine(hrDir, "x.png");
        ImageIO.Write(path, DatasetTestImages.Random(32, 32, seed: 3));
        var ds = new HrFolderDataset(hrDir, new PairedDatasetOptions { Scale = 2 });
        var first = ds.Load(0, new Random(0));
        // Replace the file by another image of the same size: the cached LR stays, the GT is read again.
        var other = DatasetTestImages.Random(32, 32, seed: 4);
        ImageIO.Write(path, other);
        var second = ds.Load(0, new Random(0));
        Assert.Same(first.Lq, second.Lq);
        AssertSameImage(other, second.Gt);
    }

    [Fact]
    public void HrFolderCropsAndAugmentsAligned()
    {
        var dir = new TempDir();
        using var _ = dir;
        string hrDir = dir.Sub("hr");
        ImageIO.Write(Path.Combine(hrDir, "x.png"), DatasetTestImages.Random(50, 60, seed: 5));
        var ds = new HrFolderDataset(hrDir, PairedDatasetOptions.Train(2, 20));
        var full = ds.Load(0, new Random(0)); // warm the cache
        var evalDs = new HrFolderDataset(hrDir, new PairedDatasetOptions { Scale = 2 });
        var whole = evalDs.Load(0, new Random(0));
        var rng = new Random(8);
        for (int k = 0; k < 10; k++)
        {
            var s = ds.Load(0, rng);
            Assert.Equal((10, 10, 20, 20), (s.Lq.Height, s.Lq.Width, s.Gt.Height, s.Gt.Width));
            // The LQ patch occurs in some orientation of the whole LR, and the GT patch at scale × that place.
            Assert.True(FindsAlignedPlacement(whole.Lq, whole.Gt, s.Lq, s.Gt, 2), "patch pair not found at an aligned position");
        }
        Assert.NotNull(full);
    }

    private static bool FindsAlignedPlacement(RgbImage lr, RgbImage hr, RgbImage lqPatch, RgbImage gtPatch, int scale)
    {
        foreach (bool h in new[] { false, true })
            foreach (bool v in new[] { false, true })
                foreach (bool t in new[] { false, true })
                {
                    var f = new AugmentFlags(h, v, t);
                    var lo = PairedTransforms.Apply(lr, f);
                    var ho = PairedTransforms.Apply(hr, f);
                    for (int y = 0; y + lqPatch.Height <= lo.Height; y++)
                        for (int x = 0; x + lqPatch.Width <= lo.Width; x++)
                            if (lo.Crop(y, x, lqPatch.Height, lqPatch.Width).Pixels.SequenceEqual(lqPatch.Pixels)
                                && ho.Crop(y * scale, x * scale, gtPatch.Height, gtPatch.Width).Pixels.SequenceEqual(gtPatch.Pixels))
                                return true;
                }
        return false;
    }
}
