using Mcir.Core.Data;
using Mcir.Core.Metrics;

namespace Mcir.Core.Tests.Metrics;

public class ImageQualityTests
{
    public static TheoryData<string, int> Cases => MetricsFixtures.CaseData();

    /// <summary>BasicSR's fixture metrics compare hr_mod (mod-cropped HR) with the bicubic PNG, crop_border = scale.</summary>
    private static (RgbImage HrMod, RgbImage Bic) Pair(string image, int scale) =>
        (ModCrop.Apply(MetricsFixtures.Hr(image), scale), MetricsFixtures.Bic(image, scale));

    private static double ExpectedValue(string image, int scale, string key) =>
        MetricsFixtures.Scale(image, scale).GetProperty(key).GetDouble();

    [Theory]
    [MemberData(nameof(Cases))]
    public void PsnrRgbMatchesBasicSr(string image, int scale)
    {
        var (hr, bic) = Pair(image, scale);
        Assert.Equal(ExpectedValue(image, scale, "psnr_rgb"), ImageQuality.Psnr(hr, bic, scale, testYChannel: false), 1e-6);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void PsnrYMatchesBasicSr(string image, int scale)
    {
        var (hr, bic) = Pair(image, scale);
        Assert.Equal(ExpectedValue(image, scale, "psnr_y"), ImageQuality.Psnr(hr, bic, scale, testYChannel: true), 1e-6);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void SsimRgbMatchesBasicSr(string image, int scale)
    {
        var (hr, bic) = Pair(image, scale);
        Assert.Equal(ExpectedValue(image, scale, "ssim_rgb"), ImageQuality.Ssim(hr, bic, scale, testYChannel: false), 1e-8);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void SsimYMatchesBasicSr(string image, int scale)
    {
        var (hr, bic) = Pair(image, scale);
        Assert.Equal(ExpectedValue(image, scale, "ssim_y"), ImageQuality.Ssim(hr, bic, scale, testYChannel: true), 1e-8);
    }

    [Theory]
    [InlineData("TwoWings_c201x255", 4, false)]
    [InlineData("TwoWings_c201x255", 4, true)]
    [InlineData("LadyBird_tl252", 3, false)]
    public void SeparableSsimEqualsDirect2DWindow(string image, int scale, bool y)
    {
        var (hr, bic) = Pair(image, scale);
        var (a, b, h, w, c) = ImageQuality.Prepare(hr, bic, scale, y);
        for (int ch = 0; ch < c; ch++)
        {
            double sep = ImageQuality.SsimPlane(a, b, h, w, ch, separable: true);
            double direct = ImageQuality.SsimPlane(a, b, h, w, ch, separable: false);
            Assert.True(Math.Abs(sep - direct) <= 1e-10, $"channel {ch}: separable {sep:R} vs 2-D {direct:R}");
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void IdenticalImagesGiveInfinitePsnrAndUnitSsim(bool y)
    {
        var hr = MetricsFixtures.Hr("LadyBird_c201x255");
        var copy = new RgbImage(hr.Height, hr.Width, (float[])hr.Pixels.Clone());
        Assert.Equal(double.PositiveInfinity, ImageQuality.Psnr(hr, copy, 4, y));
        Assert.Equal(double.PositiveInfinity, ImageQuality.Psnr(hr, hr, 0, y));
        Assert.Equal(1.0, ImageQuality.Ssim(hr, copy, 4, y), 1e-12);
        Assert.Equal(1.0, ImageQuality.Ssim(hr, hr, 0, y), 1e-12);
    }

    [Fact]
    public void MismatchedSizesThrowNamingBothSizes()
    {
        var a = new RgbImage(20, 30, new float[20 * 30 * 3]);
        var b = new RgbImage(20, 31, new float[20 * 31 * 3]);
        var e1 = Assert.Throws<ArgumentException>(() => ImageQuality.Psnr(a, b, 0, false));
        Assert.Contains("20x30", e1.Message);
        Assert.Contains("20x31", e1.Message);
        var e2 = Assert.Throws<ArgumentException>(() => ImageQuality.Ssim(a, b, 2, true));
        Assert.Contains("20x30", e2.Message);
        Assert.Contains("20x31", e2.Message);
    }

    [Fact]
    public void RejectsBorderThatLeavesNothing()
    {
        var a = new RgbImage(20, 30, new float[20 * 30 * 3]);
        Assert.Throws<ArgumentOutOfRangeException>(() => ImageQuality.Psnr(a, a, 10, false));
        Assert.Throws<ArgumentOutOfRangeException>(() => ImageQuality.Psnr(a, a, -1, false));
        Assert.Throws<ArgumentException>(() => ImageQuality.Ssim(a, a, 5, false));   // 10x20 left: below the 11x11 window
    }

    [Fact]
    public void PsnrOfKnownDifference()
    {
        // Every sample off by 1: mse = 1, PSNR = 20 log10(255).
        var a = new RgbImage(8, 8, Enumerable.Repeat(100f, 192).ToArray());
        var b = new RgbImage(8, 8, Enumerable.Repeat(101f, 192).ToArray());
        Assert.Equal(20 * Math.Log10(255), ImageQuality.Psnr(a, b, 0, false), 1e-12);
    }

    [Fact]
    public void YOfBlackAndWhiteIsStudioRange()
    {
        Assert.Equal(16f, ColorConversion.RgbToY(0, 0, 0), 1e-4f);
        Assert.Equal(235f, ColorConversion.RgbToY(255, 255, 255), 1e-3f);
        // The red weight is 65.481, the blue weight 24.966 (RGB input; BasicSR's BGR order is mapped).
        Assert.Equal(16 + 65.481f, ColorConversion.RgbToY(255, 0, 0), 1e-3f);
        Assert.Equal(16 + 24.966f, ColorConversion.RgbToY(0, 0, 255), 1e-3f);
    }
}
