using Mcir.Core.Data;
using Mcir.Core.Data.Datasets;
using Mcir.Core.Data.Degradations;
using Mcir.Core.Runs;

namespace Mcir.Core.Tests.Data.Datasets;

/// <summary>The 1-channel pipeline: reading as gray, tensors with one channel, degradations on them, gray PNGs.</summary>
public class GrayscaleTests
{
    private static RgbImage Pixels(int bitDepth, params (float R, float G, float B)[] px) =>
        new(1, px.Length, px.SelectMany(p => new[] { p.R, p.G, p.B }).ToArray(), bitDepth);

    [Fact]
    public void ColourIsConvertedWithOpenCvsFixedPointLuma()
    {
        // cv2.cvtColor of pure red/green/blue gives 76/150/29 (0.299, 0.587, 0.114 in 14-bit fixed point, rounded);
        // 0.299·200 + 0.587·100 + 0.114·50 = 124.2 → 124; gray values stay as they are.
        var gray = Grayscale.FromRgb(Pixels(8, (255, 0, 0), (0, 255, 0), (0, 0, 255), (200, 100, 50), (255, 255, 255), (37, 37, 37)));
        Assert.Equal(new float[] { 76, 150, 29, 124, 255, 37 }, Enumerable.Range(0, 6).Select(x => gray[0, x, 0]));
        Assert.All(Enumerable.Range(0, 6), x => Assert.Equal((gray[0, x, 0], gray[0, x, 0]), (gray[0, x, 1], gray[0, x, 2])));
        // 16 bit: (65535·4899 + 8192) >> 14 = 321064157 >> 14 = 19596 for red; gray 16-bit values unchanged (1234 / 257).
        var deep = Grayscale.FromRgb(Pixels(16, (255, 0, 0), (1234 / 257f, 1234 / 257f, 1234 / 257f)));
        Assert.Equal(19596, Math.Round(deep[0, 0, 0] * 257.0));
        Assert.Equal(1234, Math.Round(deep[0, 1, 0] * 257.0));
        Assert.Equal(16, deep.SourceBitDepth);
    }

    [Fact]
    public void GrayImagesBecomeOneChannelTensorsAndGrayPngs()
    {
        using var tmp = new TempDir();
        var img = Grayscale.FromRgb(DatasetTestImages.Random(6, 5, seed: 1));
        using var t = ImageTensor.ToTensor(img, channels: 1);
        Assert.Equal(new long[] { 1, 6, 5 }, t.shape);
        Assert.Equal(img[2, 3, 0] / 255f, t[0, 2, 3].item<float>());
        using var batch = ImageTensor.ToBatch([img, img], channels: 1);
        Assert.Equal(new long[] { 2, 1, 6, 5 }, batch.shape);
        DatasetTestImages.AssertSameImage(img, ImageTensor.ToImage(t));

        string path = Path.Combine(tmp.Path, "g.png");
        ImageIO.Write(path, img, new ImageWriteOptions { Grayscale = true });
        var bytes = File.ReadAllBytes(path);
        Assert.Equal(0, bytes[25]); // IHDR colour type 0: grayscale
        Assert.Equal(8, bytes[24]);
        DatasetTestImages.AssertSameImage(img, ImageIO.Read(path));
    }

    [Fact]
    public void DegradedFolderNoisesOneChannel()
    {
        using var tmp = new TempDir();
        ImageIO.Write(Path.Combine(tmp.Path, "c.png"), DatasetTestImages.Random(16, 16, seed: 2));
        var options = new PairedDatasetOptions { Channels = 1 };
        var ds = new DegradedFolderDataset(tmp.Path, new GaussianNoiseDegradation(new GaussianNoiseOptions { Sigma = 25 }), options, fixedSeed: 0);
        Assert.Equal(1, ds.Channels);
        var pair = ds.Load(0, new Random(0));
        var expectedGt = Grayscale.FromRgb(ImageIO.Read(Path.Combine(tmp.Path, "c.png")));
        DatasetTestImages.AssertSameImage(expectedGt, pair.Gt);
        // One noise value per pixel, replicated: the three channels of the noisy image are equal, and it differs from GT.
        for (int i = 0; i < pair.Lq.Pixels.Length; i += 3)
            Assert.Equal((pair.Lq.Pixels[i], pair.Lq.Pixels[i]), (pair.Lq.Pixels[i + 1], pair.Lq.Pixels[i + 2]));
        Assert.NotEqual(pair.Gt.Pixels, pair.Lq.Pixels);

        var bicubic = new DegradedFolderDataset(tmp.Path, new BicubicDownscaleDegradation(new BicubicDownscaleOptions { Scale = 2 }), options with { Scale = 2 }, fixedSeed: 0);
        var lr = bicubic.Load(0, new Random(0)).Lq;
        Assert.Equal(8, lr.Height);
        // The 1-channel resize equals channel 0 of MATLAB bicubic on the replicated image.
        var reference = MatlabResize.DownscaleForSr(expectedGt, 2);
        Assert.Equal(Enumerable.Range(0, 64).Select(i => reference.Pixels[i * 3]), Enumerable.Range(0, 64).Select(i => lr.Pixels[i * 3]));
    }

    [Fact]
    public void AChannelMismatchNamesTheDataSetAndTheModel()
    {
        var e = Assert.Throws<McirException>(() => RunComposition.DataChannels(new DatasetSection { Channels = 3 }, "data.train", 1, "model 'dncnn-light', model option 'channels'"));
        Assert.Contains("data.train.channels is 3", e.Message);
        Assert.Contains("model takes 1 input channel (model 'dncnn-light', model option 'channels')", e.Message);
        var four = Assert.Throws<McirException>(() => RunComposition.DataChannels(new DatasetSection(), "data.train", 4, "model option 'in_chans'"));
        Assert.Contains("takes 4 input channels (model option 'in_chans')", four.Message);
        Assert.Equal(1, RunComposition.DataChannels(new DatasetSection(), "data.train", 1, "x"));
    }

    private sealed record ChannelOptions(int InChans = 1, int Features = 8);

    [Fact]
    public void ModelChannelsComeFromTheOptions()
    {
        using var conv = TorchSharp.torch.nn.Conv2d(1, 1, 3);
        Assert.Equal(1, RunComposition.ModelInputChannels(conv, new ChannelOptions(), out string source));
        Assert.Equal("model option 'in_chans'", source);
        Assert.Equal(3, RunComposition.ModelInputChannels(conv, new { features = 2 }, out source));
        Assert.Contains("RGB assumed", source);
    }
}
