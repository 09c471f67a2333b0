using Mcir.Abstractions.Components;
using Mcir.Core.Data;
using Mcir.Core.Data.Datasets;
using Mcir.Core.Data.Degradations;
using Mcir.Core.Runs;
using static Mcir.Core.Tests.Data.Datasets.DatasetTestImages;

namespace Mcir.Core.Tests.Data.Datasets;

public class DegradedFolderDatasetTests
{
    private static readonly GaussianNoiseDegradation Sigma25 = new(new GaussianNoiseOptions { Sigma = 25 });

    private static TempDir Folder(params (string Name, RgbImage Image)[] images)
    {
        var dir = new TempDir();
        foreach (var (name, image) in images) ImageIO.Write(Path.Combine(dir.Path, name + ".png"), image);
        return dir;
    }

    private static RgbImage Gray(int h, int w, float value) => new(h, w, Enumerable.Repeat(value, h * w * 3).ToArray());

    [Fact]
    public void TrainingSamplesAreAFunctionOfTheRandomState()
    {
        using var dir = Folder(("a", Random(40, 50, 1)), ("b", Random(45, 40, 2)));
        var ds = new DegradedFolderDataset(dir.Path, Sigma25, PairedDatasetOptions.Train(1, 32));

        var first = ds.Load(1, new Random(5));
        var again = ds.Load(1, new Random(5));
        var other = ds.Load(1, new Random(6));

        Assert.Equal((32, 32, 32, 32), (first.Lq.Height, first.Lq.Width, first.Gt.Height, first.Gt.Width));
        AssertSameImage(first.Gt, again.Gt);
        AssertSameImage(first.Lq, again.Lq);
        Assert.NotEqual(first.Lq.Pixels, other.Lq.Pixels);
        Assert.NotEqual(first.Lq.Pixels, first.Gt.Pixels);

        // Through the loader too: same seed, same batches.
        var a = new PairedBatchLoader(new RepeatedDataset(ds, 2), new PairedLoaderOptions { BatchSize = 2, Seed = 3, Prefetch = false });
        var b = new PairedBatchLoader(new RepeatedDataset(ds, 2), new PairedLoaderOptions { BatchSize = 2, Seed = 3, Prefetch = false });
        using var ba = a.LoadBatch(0, 1);
        using var bb = b.LoadBatch(0, 1);
        Assert.Equal(ba.Lq.data<float>().ToArray(), bb.Lq.data<float>().ToArray());
        Assert.Equal(ba.Gt.data<float>().ToArray(), bb.Gt.data<float>().ToArray());
    }

    [Fact]
    public void FixedSeedDegradesEachImageOnceSeededByItsName()
    {
        using var dir = Folder(("a", Gray(24, 24, 128)), ("b", Gray(24, 24, 128)));
        var options = new PairedDatasetOptions();
        var one = new DegradedFolderDataset(dir.Path, Sigma25, options, fixedSeed: 0);
        var two = new DegradedFolderDataset(dir.Path, Sigma25, options, fixedSeed: 0);
        var seeded = new DegradedFolderDataset(dir.Path, Sigma25, options, fixedSeed: 1);

        // The Random given to Load does not matter, the name and the seed do.
        AssertSameImage(one.Load(0, new Random(1)).Lq, two.Load(0, new Random(2)).Lq);
        Assert.NotEqual(one.Load(0, new Random(0)).Lq.Pixels, one.Load(1, new Random(0)).Lq.Pixels);
        Assert.NotEqual(one.Load(0, new Random(0)).Lq.Pixels, seeded.Load(0, new Random(0)).Lq.Pixels);
        Assert.Equal(DegradedFolderDataset.NameSeed(0, "a"), DegradedFolderDataset.NameSeed(0, "a"));
    }

    [Fact]
    public void GaussianNoiseHasZeroMeanAndSigmaOver255()
    {
        // Mid-gray: at sigma 25 the clamp to [0, 1] is 5 standard deviations away, so it does not bias the statistics.
        using var dir = Folder(("gray", Gray(96, 96, 128)));
        var ds = new DegradedFolderDataset(dir.Path, Sigma25, new PairedDatasetOptions(), fixedSeed: 0);

        var pair = ds.Load(0, new Random(0));
        var noise = pair.Lq.Pixels.Zip(pair.Gt.Pixels, (lq, gt) => (lq - gt) / 255.0).ToArray();
        double mean = noise.Average();
        double std = Math.Sqrt(noise.Sum(v => (v - mean) * (v - mean)) / (noise.Length - 1));

        double sigma = 25 / 255.0;
        Assert.InRange(mean, -4 * sigma / Math.Sqrt(noise.Length), 4 * sigma / Math.Sqrt(noise.Length));
        Assert.InRange(std, sigma * 0.97, sigma * 1.03);
        Assert.All(pair.Lq.Pixels, v => Assert.InRange(v, 0f, 255f)); // clipped (BasicSR's clip=True)
        Assert.Contains(pair.Lq.Pixels, v => v != MathF.Round(v)); // not rounded (rounds=False)
    }

    [Fact]
    public void BicubicDegradationEqualsTheHrFolderLr()
    {
        // Odd sizes: both mod-crop the image to the scale before resizing.
        using var dir = Folder(("a", Random(37, 50, 3)), ("b", Random(41, 29, 4)));
        var options = new PairedDatasetOptions { Scale = 2 };
        var hr = new HrFolderDataset(dir.Path, options);
        var degraded = new DegradedFolderDataset(dir.Path, new BicubicDownscaleDegradation(new BicubicDownscaleOptions { Scale = 2 }), options, fixedSeed: 0);

        for (int i = 0; i < hr.Count; i++)
        {
            var expected = hr.Load(i, new Random(0));
            var actual = degraded.Load(i, new Random(0));
            AssertSameImage(expected.Gt, actual.Gt);
            Assert.Equal((expected.Lq.Height, expected.Lq.Width), (actual.Lq.Height, actual.Lq.Width));
            // The degradation returns 8-bit levels / 255; back on the 0-255 scale they are the same levels.
            Assert.Equal(expected.Lq.Pixels, actual.Lq.Pixels.Select(static v => MathF.Round(v)).ToArray());
            Assert.All(actual.Lq.Pixels, v => Assert.True(Math.Abs(v - MathF.Round(v)) < 1e-3f));
        }
    }

    [Fact]
    public void DegradationThatChangesTheSizeNeedsTheMatchingScale()
    {
        using var dir = Folder(("a", Random(32, 32, 5)));
        var ds = new DegradedFolderDataset(dir.Path, new BicubicDownscaleDegradation(new BicubicDownscaleOptions { Scale = 2 }), new PairedDatasetOptions(), fixedSeed: 0);
        var e = Assert.Throws<McirException>(() => ds.Load(0, new Random(0)));
        Assert.Contains("scale mismatch", e.Message);
        Assert.Contains("degraded by 'bicubic'", e.Message);
    }

    [Fact]
    public void UnknownDegradationNameListsTheKnownOnes()
    {
        using var dir = Folder(("a", Random(32, 32, 6)));
        var registry = new DegradationRegistry([GaussianNoiseDegradation.Descriptor, BicubicDownscaleDegradation.Descriptor]);
        var section = new DatasetSection
        {
            Type = "degraded-folder", DatarootGt = dir.Path, Degradation = new DegradationSection { Name = "salt-and-pepper" },
        };

        var e = Assert.Throws<McirException>(() => RunComposition.CreateDataset(section, "data.train", training: true, registry));
        Assert.Contains("data.train.degradation.name 'salt-and-pepper' is not a registered degradation", e.Message);
        Assert.Contains("known: bicubic, gaussian-noise", e.Message);
        var k = Assert.Throws<KeyNotFoundException>(() => registry.Get("salt-and-pepper"));
        Assert.Contains("Known degradations: bicubic, gaussian-noise", k.Message);
    }

    [Fact]
    public void DegradationOptionsAreCheckedKeyByKey()
    {
        using var dir = Folder(("a", Random(32, 32, 7)));
        var registry = new DegradationRegistry([GaussianNoiseDegradation.Descriptor]);
        var section = new DatasetSection
        {
            Type = "degraded-folder", DatarootGt = dir.Path,
            Degradation = new DegradationSection { Name = "gaussian-noise", Options = new System.Text.Json.Nodes.JsonObject { ["sigam"] = 50 } },
        };

        var e = Assert.Throws<McirException>(() => RunComposition.CreateDataset(section, "data.test[0]", training: false, registry));
        Assert.Contains("'data.test[0].degradation.options.sigam'", e.Message);
        Assert.Contains("did you mean 'data.test[0].degradation.options.sigma'?", e.Message);
    }
}
