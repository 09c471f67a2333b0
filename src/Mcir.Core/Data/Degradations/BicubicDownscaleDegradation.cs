using Mcir.Abstractions.Components;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Data.Degradations;

/// <summary>Options of the <c>bicubic</c> degradation.</summary>
public sealed record BicubicDownscaleOptions
{
    /// <summary>Downscaling factor (an integer ≥ 1); the data set's <c>scale</c> must be the same. Default 4.</summary>
    public int Scale { get; init; } = 4;
}

/// <summary>
/// <c>bicubic</c>: the LR image exactly as <c>hr-folder</c> makes it (<see cref="MatlabResize.DownscaleForSr"/>):
/// mod-crop to the scale, MATLAB <c>imresize</c> by 1/scale with antialiasing, 8-bit rounding. No randomness.
/// </summary>
public sealed class BicubicDownscaleDegradation : IDegradation
{
    /// <summary>The registration of the engine's built-in <c>bicubic</c> degradation.</summary>
    public static DegradationDescriptor Descriptor { get; } = DegradationDescriptor.Of<BicubicDownscaleDegradation, BicubicDownscaleOptions>(
        "bicubic", "MATLAB bicubic downscaling by 1/scale with antialiasing, 8-bit rounding (as hr-folder)",
        new BicubicDownscaleOptions(), o => new BicubicDownscaleDegradation(o));

    /// <summary>Checks the options.</summary>
    /// <exception cref="ArgumentException">The scale is below 1.</exception>
    public BicubicDownscaleDegradation(BicubicDownscaleOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Scale < 1)
            throw new ArgumentException($"bicubic: scale must be >= 1, got {options.Scale}");
        Options = options;
    }

    /// <summary>The options.</summary>
    public BicubicDownscaleOptions Options { get; }

    /// <inheritdoc />
    public string Name => "bicubic";

    /// <inheritdoc />
    public Tensor Degrade(Tensor clean, Random rng)
    {
        int s = Options.Scale;
        var (hwc, height, width, c) = DegradationTensors.ToHwc(clean, Name);
        var (h, w) = ModCrop.Size(height, width, s);
        if (h == 0 || w == 0)
            throw new ArgumentException($"bicubic: a {height}x{width} image is smaller than the scale {s}");
        if (h != height || w != width)
            hwc = DegradationTensors.CropHwc(hwc, width, h, w, c);
        var lr = MatlabResize.Resize(hwc, h, w, c, 1.0 / s, antialiasing: true, out int oh, out int ow);
        for (int i = 0; i < lr.Length; i++) lr[i] = MatlabResize.QuantizeUnit(lr[i]) / 255f;
        return DegradationTensors.FromHwc(lr, oh, ow, c);
    }
}

/// <summary>Conversions between a degradation's CHW tensors and the HWC arrays of the engine's image code.</summary>
internal static class DegradationTensors
{
    /// <summary>The samples of a [C, H, W] tensor (C = 3, or 1 for gray data) as HWC float32.</summary>
    public static (float[] Hwc, int Height, int Width, int Channels) ToHwc(Tensor chw, string who)
    {
        ArgumentNullException.ThrowIfNull(chw);
        if (chw.dim() != 3 || chw.shape[0] is not (1 or RgbImage.Channels))
            throw new ArgumentException($"{who}: expected a [3, H, W] or [1, H, W] image tensor, got [{string.Join(", ", chw.shape)}]");
        using var hwc = chw.detach().to(ScalarType.Float32).cpu().permute(1, 2, 0).contiguous();
        return (hwc.data<float>().ToArray(), (int)chw.shape[1], (int)chw.shape[2], (int)chw.shape[0]);
    }

    /// <summary>A [C, H, W] float32 tensor from HWC samples (the caller owns it).</summary>
    public static Tensor FromHwc(float[] hwc, int height, int width, int channels = RgbImage.Channels)
    {
        using var t = torch.tensor(hwc, [height, width, channels], ScalarType.Float32);
        return t.permute(2, 0, 1).contiguous();
    }

    /// <summary>The top-left <paramref name="height"/> × <paramref name="width"/> region of an HWC array.</summary>
    public static float[] CropHwc(float[] hwc, int fullWidth, int height, int width, int c = RgbImage.Channels)
    {
        var dst = new float[height * width * c];
        for (int y = 0; y < height; y++)
            Array.Copy(hwc, y * fullWidth * c, dst, y * width * c, width * c);
        return dst;
    }
}
