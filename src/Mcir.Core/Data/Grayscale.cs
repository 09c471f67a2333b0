namespace Mcir.Core.Data;

/// <summary>
/// One-channel images for 1-channel models. A gray image is held as an <see cref="RgbImage"/> with R = G = B, so crops,
/// flips, MATLAB bicubic and metrics work unchanged; <see cref="ImageTensor"/> takes one channel of it when the pipeline
/// has 1 channel, and <see cref="ImageIO.Write"/> writes it as a gray PNG with <see cref="ImageWriteOptions.Grayscale"/>.
/// </summary>
public static class Grayscale
{
    // OpenCV's fixed-point BT.601 luma weights (imgproc/src/color.hpp: R2Y 4899, G2Y 9617, B2Y 1868, yuv_shift 14).
    private const int R2Y = 4899, G2Y = 9617, B2Y = 1868, Shift = 14;

    /// <summary>
    /// The luma of <paramref name="image"/> as OpenCV's <c>cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)</c> computes it on 8-bit
    /// and 16-bit images: <c>Y = (R·4899 + G·9617 + B·1868 + 2^13) &gt;&gt; 14</c> on the integer samples (0.299, 0.587,
    /// 0.114 in 14-bit fixed point), replicated into the three channels. Gray files (R = G = B) come back unchanged,
    /// which is also what <c>cv2.imread(path, cv2.IMREAD_GRAYSCALE)</c> gives for them; for colour files that flag lets
    /// libpng/libjpeg convert with their own rounding, which can differ from this by one level.
    /// </summary>
    /// <param name="image">An 8-bit (integer 0–255 samples) or 16-bit (<c>v16 / 257</c>) image.</param>
    /// <returns>A new image with R = G = B = Y and the same <see cref="RgbImage.SourceBitDepth"/>.</returns>
    public static RgbImage FromRgb(RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var src = image.Pixels;
        var dst = new float[src.Length];
        bool sixteen = image.SourceBitDepth > 8;
        for (int i = 0; i < src.Length; i += 3)
        {
            float y;
            if (sixteen)
            {
                long r = ImageIO.To16(src[i]), g = ImageIO.To16(src[i + 1]), b = ImageIO.To16(src[i + 2]);
                y = (float)(((r * R2Y + g * G2Y + b * B2Y + (1 << (Shift - 1))) >> Shift) / 257.0);
            }
            else
            {
                int r = ImageIO.To8(src[i]), g = ImageIO.To8(src[i + 1]), b = ImageIO.To8(src[i + 2]);
                y = (r * R2Y + g * G2Y + b * B2Y + (1 << (Shift - 1))) >> Shift;
            }
            dst[i] = dst[i + 1] = dst[i + 2] = y;
        }
        return new RgbImage(image.Height, image.Width, dst, image.SourceBitDepth);
    }

    /// <summary>Reads <paramref name="path"/> with <see cref="ImageIO.Read"/>; with <paramref name="channels"/> 1 converts it by <see cref="FromRgb"/>.</summary>
    /// <param name="path">The image file.</param>
    /// <param name="channels">1 (gray) or 3 (RGB).</param>
    /// <param name="options">Read options.</param>
    public static RgbImage Read(string path, int channels, ImageReadOptions? options = null)
    {
        CheckChannels(channels);
        var image = ImageIO.Read(path, options);
        return channels == 1 ? FromRgb(image) : image;
    }

    /// <summary>Throws unless <paramref name="channels"/> is 1 or 3, the channel counts images are read with.</summary>
    public static void CheckChannels(int channels)
    {
        if (channels is not (1 or 3))
            throw new ArgumentOutOfRangeException(nameof(channels), channels, "images are read with 1 (gray) or 3 (RGB) channels");
    }
}
