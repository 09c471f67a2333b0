namespace Mcir.Core.Data;

/// <summary>
/// BasicSR's <c>mod_crop</c> (basicsr/data/transforms.py): keeps the top-left
/// <c>(h - h % scale) x (w - w % scale)</c> region so the image divides evenly by the SR scale.
/// </summary>
public static class ModCrop
{
    /// <summary>Size after mod-crop: <c>(h - h % scale, w - w % scale)</c>.</summary>
    public static (int Height, int Width) Size(int height, int width, int scale)
    {
        if (scale < 1)
            throw new ArgumentOutOfRangeException(nameof(scale), $"scale must be >= 1, got {scale}");
        return (height - height % scale, width - width % scale);
    }

    /// <summary><c>img[:h - h % scale, :w - w % scale]</c>; returns <paramref name="img"/> itself when nothing is cut.</summary>
    public static RgbImage Apply(RgbImage img, int scale)
    {
        ArgumentNullException.ThrowIfNull(img);
        var (h, w) = Size(img.Height, img.Width, scale);
        if (h == 0 || w == 0)
            throw new ArgumentException($"a {img.Height}x{img.Width} image is smaller than the scale {scale}", nameof(img));
        return h == img.Height && w == img.Width ? img : img.Crop(0, 0, h, w);
    }
}
