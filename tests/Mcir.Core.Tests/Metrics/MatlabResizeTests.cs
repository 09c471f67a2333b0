using Mcir.Core.Data;

namespace Mcir.Core.Tests.Metrics;

public class MatlabResizeTests
{
    public static TheoryData<string, int> Cases => MetricsFixtures.CaseData();

    private static void AssertPixelsEqual(RgbImage expected, RgbImage actual, string what)
    {
        Assert.Equal((expected.Height, expected.Width), (actual.Height, actual.Width));
        int mismatches = 0, first = -1;
        for (int i = 0; i < expected.Pixels.Length; i++)
            if (expected.Pixels[i] != actual.Pixels[i])
            {
                mismatches++;
                if (first < 0) first = i;
            }
        Assert.True(mismatches == 0,
            $"{what}: {mismatches} of {expected.Pixels.Length} samples differ; first at (y={first / 3 / expected.Width}, " +
            $"x={first / 3 % expected.Width}, c={first % 3}): expected {(first >= 0 ? expected.Pixels[first] : 0)}, " +
            $"got {(first >= 0 ? actual.Pixels[first] : 0)}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ModCropGivesTheReferenceShape(string image, int scale)
    {
        var hr = MetricsFixtures.Hr(image);
        int[] shape = MetricsFixtures.Ints(MetricsFixtures.Scale(image, scale).GetProperty("hr_mod_shape_hwc"));
        var mod = ModCrop.Apply(hr, scale);
        Assert.Equal(shape[0], mod.Height);
        Assert.Equal(shape[1], mod.Width);
        Assert.Equal(0, mod.Height % scale);
        Assert.Equal(0, mod.Width % scale);
        // Top-left anchored: every kept sample equals the original.
        for (int y = 0; y < mod.Height; y += 17)
            for (int x = 0; x < mod.Width; x += 13)
                for (int c = 0; c < 3; c++)
                    Assert.Equal(hr[y, x, c], mod[y, x, c]);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void DownscaleForSrReproducesLrPng(string image, int scale)
    {
        var expected = MetricsFixtures.Lr(image, scale);
        int[] shape = MetricsFixtures.Ints(MetricsFixtures.Scale(image, scale).GetProperty("lr_shape_hwc"));
        var lr = MatlabResize.DownscaleForSr(MetricsFixtures.Hr(image), scale);
        Assert.Equal(shape[0], lr.Height);
        Assert.Equal(shape[1], lr.Width);
        AssertPixelsEqual(expected, lr, $"lr {image} x{scale}");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void UpscaleReproducesBicPngFromLrPng(string image, int scale)
    {
        var expected = MetricsFixtures.Bic(image, scale);
        var bic = MatlabResize.UpscaleBicubic(MetricsFixtures.Lr(image, scale), scale);
        AssertPixelsEqual(expected, bic, $"bic {image} x{scale}");
        // Resize(RgbImage, s) is the same call.
        AssertPixelsEqual(expected, MatlabResize.Resize(MetricsFixtures.Lr(image, scale), scale), $"bic {image} x{scale} (Resize)");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void FloatSumsMatchReference(string image, int scale)
    {
        var e = MetricsFixtures.Scale(image, scale);
        var hrMod = ModCrop.Apply(MetricsFixtures.Hr(image), scale);
        float[] lr = MatlabResize.ResizeToUnitFloat(hrMod, 1.0 / scale, true, out _, out _);
        // expected.json sums/min/max were taken after tensor2img clamped the array to [0, 1] (README caveat).
        Assert.Equal(e.GetProperty("lr_float_sum").GetDouble(), MetricsFixtures.ClampedSum(lr), 1e-6);
        Assert.Equal(e.GetProperty("lr_float_min").GetDouble(), Math.Clamp(lr.Min(), 0f, 1f), 0.0);
        Assert.Equal(e.GetProperty("lr_float_max").GetDouble(), Math.Clamp(lr.Max(), 0f, 1f), 0.0);
        float[] bic = MatlabResize.ResizeToUnitFloat(MetricsFixtures.Lr(image, scale), scale, true, out _, out _);
        Assert.Equal(e.GetProperty("bic_float_sum").GetDouble(), MetricsFixtures.ClampedSum(bic), 1e-6);
    }

    [Fact]
    public void DownscaleFloatMatchesNpy()
    {
        var npy = MetricsFixtures.Expected.GetProperty("float_npy");
        var down = npy.GetProperty("down");
        float[] expected = MetricsFixtures.NpyFloats(down.GetProperty("file").GetString()!, out long[] shape);
        Assert.Equal(MetricsFixtures.Ints(down.GetProperty("shape_hwc")).Select(i => (long)i), shape);

        var hr = ModCrop.Apply(MetricsFixtures.Hr("LadyBird_tl252"), 4);
        float[] actual = MatlabResize.ResizeToUnitFloat(hr, 1.0 / 4, true, out int oh, out int ow);
        Assert.Equal((63, 63), (oh, ow));
        AssertClose(expected, actual, 1e-5, "x1/4 float");
        Assert.Equal(down.GetProperty("sum").GetDouble(), MetricsFixtures.ClampedSum(actual), 1e-6);
    }

    [Theory]
    [InlineData("imresize_LadyBird_tl252_x4_up_float_rows0-63_cols0-63.npy")]
    [InlineData("imresize_LadyBird_tl252_x4_up_float_rows188-251_cols188-251.npy")]
    public void UpscaleFloatWindowMatchesNpy(string file)
    {
        var npy = MetricsFixtures.Expected.GetProperty("float_npy");
        int[] win = MetricsFixtures.Ints(npy.GetProperty("up_windows").GetProperty(file));   // [r0, r1, c0, c1]
        float[] expected = MetricsFixtures.NpyFloats(file, out long[] shape);
        Assert.Equal(new long[] { win[1] - win[0], win[3] - win[2], 3 }, shape);

        float[] full = MatlabResize.ResizeToUnitFloat(MetricsFixtures.Lr("LadyBird_tl252", 4), 4, true, out int oh, out int ow);
        Assert.Equal(MetricsFixtures.Ints(npy.GetProperty("up_full_shape_hwc")).Take(2), new[] { oh, ow });
        var window = new float[expected.Length];
        int o = 0;
        for (int y = win[0]; y < win[1]; y++)
            for (int x = win[2]; x < win[3]; x++)
                for (int c = 0; c < 3; c++)
                    window[o++] = full[(y * ow + x) * 3 + c];
        AssertClose(expected, window, 1e-5, file);
        Assert.Equal(npy.GetProperty("up_full_sum").GetDouble(), MetricsFixtures.ClampedSum(full), 1e-6);
    }

    /// <summary>
    /// Stronger than the 1e-5 checks above: the float32 operation order reproduces PyTorch/BLAS exactly, so the raw
    /// outputs are bit-identical to the reference arrays.
    /// </summary>
    [Fact]
    public void FloatOutputsAreBitIdenticalToNpy()
    {
        var npy = MetricsFixtures.Expected.GetProperty("float_npy");
        float[] down = MetricsFixtures.NpyFloats(npy.GetProperty("down").GetProperty("file").GetString()!, out _);
        float[] actualDown = MatlabResize.ResizeToUnitFloat(ModCrop.Apply(MetricsFixtures.Hr("LadyBird_tl252"), 4), 0.25, true, out _, out _);
        Assert.Equal(down, actualDown);

        float[] full = MatlabResize.ResizeToUnitFloat(MetricsFixtures.Lr("LadyBird_tl252", 4), 4, true, out _, out int ow);
        foreach (var win in npy.GetProperty("up_windows").EnumerateObject())
        {
            int[] r = MetricsFixtures.Ints(win.Value);
            float[] expected = MetricsFixtures.NpyFloats(win.Name, out _);
            var actual = new List<float>();
            for (int y = r[0]; y < r[1]; y++)
                for (int x = r[2]; x < r[3]; x++)
                    for (int c = 0; c < 3; c++)
                        actual.Add(full[(y * ow + x) * 3 + c]);
            Assert.Equal(expected, actual);
        }
    }

    private static void AssertClose(float[] expected, float[] actual, double tol, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double maxDiff = 0;
        int at = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = Math.Abs((double)expected[i] - actual[i]);
            if (d > maxDiff) { maxDiff = d; at = i; }
        }
        Assert.True(maxDiff <= tol, $"{what}: max |diff| {maxDiff:E3} at flat index {at} (expected {expected[at]}, got {actual[at]})");
    }

    [Fact]
    public void OutputSizeIsCeilOfScaledSize()
    {
        Assert.Equal((84, 84), MatlabResize.OutputSize(252, 252, 1.0 / 3));
        Assert.Equal((67, 85), MatlabResize.OutputSize(201, 255, 1.0 / 3));
        Assert.Equal((50, 63), MatlabResize.OutputSize(200, 252, 1.0 / 4));
        Assert.Equal((3, 4), MatlabResize.OutputSize(5, 7, 0.5));
        Assert.Equal((201, 255), MatlabResize.OutputSize(67, 85, 3));
    }

    [Fact]
    public void ConstantImageStaysConstant()
    {
        var img = new RgbImage(9, 14, Enumerable.Repeat(200f, 9 * 14 * 3).ToArray());
        var down = MatlabResize.Resize(img, 0.5);
        Assert.Equal((5, 7), (down.Height, down.Width));
        Assert.All(down.Pixels, v => Assert.Equal(200f, v));
        var up = MatlabResize.Resize(img, 3);
        Assert.Equal((27, 42), (up.Height, up.Width));
        Assert.All(up.Pixels, v => Assert.Equal(200f, v));
    }

    [Fact]
    public void QuantizeRoundsHalfToEvenAfterClamping()
    {
        Assert.Equal(0f, MatlabResize.QuantizeUnit(-0.3f));
        Assert.Equal(255f, MatlabResize.QuantizeUnit(1.7f));
        Assert.Equal(128f, MatlabResize.QuantizeUnit(128f / 255f));
        int ties = 0;
        for (int k = 0; k < 255; k++)
        {
            float v = (k + 0.5f) / 255f;
            if (v * 255f != k + 0.5f) continue;   // only exact float32 ties
            ties++;
            Assert.Equal(k % 2 == 0 ? k : k + 1, MatlabResize.QuantizeUnit(v));
        }
        Assert.True(ties > 10, $"only {ties} exact ties found");
    }

    [Fact]
    public void RejectsBadArguments()
    {
        var img = new RgbImage(4, 4, new float[48]);
        Assert.Throws<ArgumentOutOfRangeException>(() => MatlabResize.Resize(img, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => MatlabResize.Resize(img, double.NaN));
        Assert.Throws<ArgumentException>(() => MatlabResize.Resize(new float[47], 4, 4, 3, 2, true, out _, out _));
        Assert.Throws<ArgumentOutOfRangeException>(() => ModCrop.Apply(img, 0));
        Assert.Throws<ArgumentException>(() => ModCrop.Apply(img, 5));
    }
}
