using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Data;

/// <summary>
/// Conversions between <see cref="RgbImage"/> (HWC, 0–255) and TorchSharp tensors (CHW, [0, 1]) that reproduce
/// BasicSR bit for bit: <c>img2tensor(img.astype(np.float32) / 255.)</c> and
/// <c>tensor2img(t, rgb2bgr=False, out_type=np.uint8, min_max=(0, 1))</c>.
/// </summary>
public static class ImageTensor
{
    /// <summary>
    /// float32 [C, H, W] with each sample = pixel / 255f (IEEE float32 division, identical to NumPy's
    /// <c>img.astype(np.float32) / 255.</c>). <paramref name="channels"/> 3 (default): R, G, B; 1: the first channel only
    /// (a gray image held with R = G = B, see <see cref="Grayscale"/>). The caller owns (and must dispose) the returned tensor.
    /// </summary>
    public static Tensor ToTensor(RgbImage img, Device? device = null, int channels = 3)
    {
        ArgumentNullException.ThrowIfNull(img);
        Grayscale.CheckChannels(channels);
        var chw = new float[(long)channels * img.Height * img.Width];
        FillChw(img, chw, 0, channels);
        return MakeTensor(chw, [channels, img.Height, img.Width], device);
    }

    /// <summary>float32 [N, C, H, W] of <see cref="ToTensor"/> values (C = <paramref name="channels"/>, 3 or 1); all images must have the same size.</summary>
    public static Tensor ToBatch(IReadOnlyList<RgbImage> images, Device? device = null, int channels = 3)
    {
        Grayscale.CheckChannels(channels);
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0) throw new ArgumentException("cannot make a batch from 0 images", nameof(images));
        int h = images[0].Height, w = images[0].Width;
        for (int i = 1; i < images.Count; i++)
            if (images[i].Height != h || images[i].Width != w)
                throw new ArgumentException(
                    $"all images in a batch must have the same size: image 0 is {h}x{w} (HxW) but image {i} is {images[i].Height}x{images[i].Width}", nameof(images));
        long per = (long)channels * h * w;
        var data = new float[per * images.Count];
        for (int i = 0; i < images.Count; i++) FillChw(images[i], data, per * i, channels);
        return MakeTensor(data, [images.Count, channels, h, w], device);
    }

    /// <summary>
    /// BasicSR <c>tensor2img</c> with min_max=(0, 1), out_type=uint8: accepts [C, H, W] or [1, C, H, W] with C = 3, or
    /// C = 1 (a gray image, returned with R = G = B), of any floating dtype on any device; converts to float32, clamps to [0, 1], multiplies by 255 in float32 and rounds half to even.
    /// The result holds integer values 0–255 (<see cref="RgbImage.SourceBitDepth"/> 8). The input tensor is not modified
    /// or disposed. NaN samples are rejected (NumPy's NaN→uint8 cast is undefined).
    /// </summary>
    public static RgbImage ToImage(Tensor t)
    {
        ArgumentNullException.ThrowIfNull(t);
        long[] shape = t.shape;
        bool ok = (shape.Length == 3 && shape[0] is 1 or 3) || (shape.Length == 4 && shape[0] == 1 && shape[1] is 1 or 3);
        if (!ok)
            throw new ArgumentException($"expected a [C,H,W] or [1,C,H,W] tensor with C = 3 (RGB) or 1 (gray), got [{string.Join(",", shape)}]", nameof(t));
        int channels = (int)shape[^3];
        if (!t.is_floating_point())
            throw new ArgumentException($"expected a floating-point tensor with values in [0,1], got {t.dtype}", nameof(t));
        int h = checked((int)shape[^2]), w = checked((int)shape[^1]);
        float[] chw;
        using (NewDisposeScope())
        {
            var x = t.detach().reshape(channels, h, w).to(ScalarType.Float32).cpu().contiguous();
            chw = x.data<float>().ToArray();
        }
        int plane = h * w;
        var hwc = new float[3L * plane];
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < plane; i++)
                hwc[i * 3 + c] = channels == 1 && c > 0 ? hwc[i * 3] : UnitToByteValue(chw[c * plane + i], i, c, w);
        return new RgbImage(h, w, hwc);
    }

    /// <summary>
    /// The unquantised samples of a [C, H, W] or [1, C, H, W] tensor (C = 3, or 1 replicated to R = G = B) as HWC RGB
    /// float32 clamped to [0, 1] — what float evaluation protocols score (FFA-Net, DehazeFormer), where
    /// <see cref="ToImage"/> rounds to 8 bits. The input tensor is not modified or disposed.
    /// </summary>
    public static float[] ToUnitFloat(Tensor t)
    {
        ArgumentNullException.ThrowIfNull(t);
        long[] shape = t.shape;
        bool ok = (shape.Length == 3 && shape[0] is 1 or 3) || (shape.Length == 4 && shape[0] == 1 && shape[1] is 1 or 3);
        if (!ok || !t.is_floating_point())
            throw new ArgumentException($"expected a floating-point [C,H,W] or [1,C,H,W] tensor with C = 3 (RGB) or 1 (gray), got {t.dtype} [{string.Join(",", shape)}]", nameof(t));
        int channels = (int)shape[^3];
        int h = checked((int)shape[^2]), w = checked((int)shape[^1]);
        float[] chw;
        using (NewDisposeScope())
            chw = t.detach().reshape(channels, h, w).to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
        int plane = h * w;
        var hwc = new float[3L * plane];
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < plane; i++)
                hwc[i * 3 + c] = Math.Clamp(chw[(channels == 1 ? 0 : c) * plane + i], 0f, 1f);
        return hwc;
    }

    /// <summary>
    /// An 8-bit-valued image from HWC RGB floats in [0, 1], with the same clamp/×255/round-half-even rule as
    /// <see cref="ToImage"/>.
    /// </summary>
    public static RgbImage FromUnitFloat(float[] hwc, int height, int width)
    {
        ArgumentNullException.ThrowIfNull(hwc);
        if (height <= 0 || width <= 0 || hwc.Length != (long)height * width * 3)
            throw new ArgumentException($"expected {height}x{width}x3 = {(long)height * width * 3} samples, got {hwc.Length}", nameof(hwc));
        var dst = new float[hwc.Length];
        for (int k = 0; k < hwc.Length; k++) dst[k] = UnitToByteValue(hwc[k], k / 3, k % 3, width);
        return new RgbImage(height, width, dst);
    }

    /// <summary>round_half_even(clamp(v, 0, 1) × 255f) in float32, as NumPy does for <c>(img * 255.0).round()</c> on a float32 array.</summary>
    private static float UnitToByteValue(float v, int pixel, int channel, int width)
    {
        if (float.IsNaN(v))
            throw new ArgumentException($"NaN sample at (y={pixel / width}, x={pixel % width}, c={channel}); cannot convert to an image");
        float scaled = Math.Clamp(v, 0f, 1f) * 255f;
        return MathF.Round(scaled, MidpointRounding.ToEven);
    }

    private static void FillChw(RgbImage img, float[] dst, long offset, int channels)
    {
        float[] src = img.Pixels;
        int plane = img.Height * img.Width;
        if (channels == 1)
        {
            for (int i = 0; i < plane; i++) dst[offset + i] = src[i * 3] / 255f;
            return;
        }
        for (int i = 0; i < plane; i++)
        {
            dst[offset + i] = src[i * 3] / 255f;
            dst[offset + plane + i] = src[i * 3 + 1] / 255f;
            dst[offset + 2L * plane + i] = src[i * 3 + 2] / 255f;
        }
    }

    private static Tensor MakeTensor(float[] data, long[] shape, Device? device)
    {
        var t = torch.tensor(data, shape, ScalarType.Float32);
        if (device is null || device.type == DeviceType.CPU) return t;
        using (t) return t.to(device);
    }
}
