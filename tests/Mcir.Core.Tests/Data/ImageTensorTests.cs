using Mcir.Core.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Data;

public class ImageTensorTests
{
    private static RgbImage AllLevels()
    {
        // 16 x 16 pixels; R runs through all 256 levels, G and B are permutations of them.
        var px = new float[16 * 16 * 3];
        for (int i = 0; i < 256; i++)
        {
            px[i * 3] = i;
            px[i * 3 + 1] = (i * 7 + 3) % 256;
            px[i * 3 + 2] = 255 - i;
        }
        return new RgbImage(16, 16, px);
    }

    [Fact]
    public void ToTensorIsChwPixelOver255fBitwise()
    {
        var img = AllLevels();
        using var t = ImageTensor.ToTensor(img);
        Assert.Equal(new long[] { 3, 16, 16 }, t.shape);
        Assert.Equal(ScalarType.Float32, t.dtype);
        float[] data = t.data<float>().ToArray();
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 16; x++)
                for (int c = 0; c < 3; c++)
                {
                    float expected = img[y, x, c] / 255f; // NumPy: img.astype(np.float32) / 255.
                    float actual = data[(c * 16 + y) * 16 + x];
                    Assert.Equal(BitConverter.SingleToInt32Bits(expected), BitConverter.SingleToInt32Bits(actual));
                }
        Assert.Equal(0f, data[0]);
        Assert.Equal(1f, data[255]);
    }

    [Fact]
    public void EightBitImageRoundTripsThroughTensor()
    {
        var img = AllLevels();
        using var t = ImageTensor.ToTensor(img);
        var back = ImageTensor.ToImage(t);
        Assert.Equal(img.Pixels, back.Pixels);
        Assert.Equal(8, back.SourceBitDepth);
    }

    [Fact]
    public void ToBatchStacksImages()
    {
        var a = AllLevels();
        var b = new RgbImage(16, 16, a.Pixels.Select(v => 255 - v).ToArray());
        using var batch = ImageTensor.ToBatch([a, b]);
        Assert.Equal(new long[] { 2, 3, 16, 16 }, batch.shape);
        using var ta = ImageTensor.ToTensor(a);
        using var tb = ImageTensor.ToTensor(b);
        using var b0 = batch[0];
        using var b1 = batch[1];
        Assert.Equal(ta.data<float>().ToArray(), b0.data<float>().ToArray());
        Assert.Equal(tb.data<float>().ToArray(), b1.data<float>().ToArray());
    }

    [Fact]
    public void ToBatchRejectsMixedSizesAndEmptyLists()
    {
        var a = new RgbImage(4, 5, new float[60]);
        var b = new RgbImage(5, 4, new float[60]);
        var e = Assert.Throws<ArgumentException>(() => ImageTensor.ToBatch([a, a, b]));
        Assert.Contains("image 2 is 5x4", e.Message);
        Assert.Contains("image 0 is 4x5", e.Message);
        Assert.Throws<ArgumentException>(() => ImageTensor.ToBatch([]));
    }

    [Fact]
    public void ToImageRoundsHalfToEvenAndClampsLikeTensor2img()
    {
        // Chosen so that v * 255f is exactly x.5 in float32: the rounding mode decides the result.
        float[] values = [0.5f / 255f, 1.5f / 255f, 2.5f / 255f, 3.5f / 255f, 127.5f / 255f, 254.5f / 255f, -0.25f, 1.75f, 1f, 0f, 0.3f / 255f, 0.7f / 255f];
        float[] expected = [0, 2, 2, 4, 128, 254, 0, 255, 255, 0, 0, 1];
        foreach (float v in values[..6]) Assert.Equal(MathF.Floor(v * 255f) + 0.5f, v * 255f); // really halves
        int n = values.Length / 3;
        // [3, 1, n] tensor whose CHW order is exactly `values`.
        using var t = torch.tensor(values, [3, 1, n]);
        var img = ImageTensor.ToImage(t);
        Assert.Equal((1, n), (img.Height, img.Width));
        for (int c = 0; c < 3; c++)
            for (int x = 0; x < n; x++)
                Assert.Equal(expected[c * n + x], img[0, x, c]);
        Assert.Equal(0.5f / 255f, t[0, 0, 0].item<float>()); // input not modified
    }

    [Fact]
    public void ToImageAcceptsBatchOfOneAndOtherFloatTypes()
    {
        var img = AllLevels();
        using var t = ImageTensor.ToTensor(img);
        using var t4 = t.unsqueeze(0);
        Assert.Equal(img.Pixels, ImageTensor.ToImage(t4).Pixels);
        using var t64 = t.to(ScalarType.Float64);
        Assert.Equal(img.Pixels, ImageTensor.ToImage(t64).Pixels);
    }

    [Fact]
    public void ToImageRejectsBadShapesNaNAndIntegerTensors()
    {
        using var batch = torch.zeros(2, 3, 4, 4);
        Assert.Contains("[2,3,4,4]", Assert.Throws<ArgumentException>(() => ImageTensor.ToImage(batch)).Message);
        using var two = torch.zeros(2, 4, 4); // 1 (gray) or 3 (RGB) channels only
        Assert.Throws<ArgumentException>(() => ImageTensor.ToImage(two));
        using var nan = torch.zeros(3, 2, 2);
        nan[1, 1, 0] = torch.tensor(float.NaN);
        Assert.Contains("NaN", Assert.Throws<ArgumentException>(() => ImageTensor.ToImage(nan)).Message);
        using var ints = torch.zeros(3, 2, 2, ScalarType.Int32);
        Assert.Throws<ArgumentException>(() => ImageTensor.ToImage(ints));
    }

    [Fact]
    public void ToImageDoesNotLeakTensors()
    {
        // The per-thread count: the process-wide one also moves with tests running in parallel.
        using var t = torch.rand(1, 3, 8, 8);
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 5; i++) ImageTensor.ToImage(t);
        Assert.Equal(before, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void FromUnitFloatUsesTheSameRounding()
    {
        float[] hwc = [0.5f / 255f, 1.5f / 255f, 2.5f / 255f, -1f, 2f, 0.5f];
        var img = ImageTensor.FromUnitFloat(hwc, 1, 2);
        Assert.Equal(new float[] { 0, 2, 2, 0, 255, 128 }, img.Pixels);
        Assert.Throws<ArgumentException>(() => ImageTensor.FromUnitFloat(hwc, 2, 2));
    }
}
