using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace Mcir.Core.Data;

/// <summary>Reads and writes images (PNG 8/16-bit, JPEG, BMP, TIFF, WebP) as <see cref="RgbImage"/>.</summary>
public static class ImageIO
{
    /// <summary>Reads an image file. Grayscale is replicated to RGB; alpha is dropped (OpenCV IMREAD_COLOR rule).</summary>
    public static RgbImage Read(string path)
    {
        using var image = Image.Load<Rgb24>(path);
        var pixels = new float[image.Height * image.Width * RgbImage.Channels];
        image.ProcessPixelRows(rows =>
        {
            for (int y = 0; y < rows.Height; y++)
            {
                var row = rows.GetRowSpan(y);
                int o = y * rows.Width * 3;
                for (int x = 0; x < row.Length; x++, o += 3)
                {
                    pixels[o] = row[x].R;
                    pixels[o + 1] = row[x].G;
                    pixels[o + 2] = row[x].B;
                }
            }
        });
        return new RgbImage(image.Height, image.Width, pixels);
    }
}
