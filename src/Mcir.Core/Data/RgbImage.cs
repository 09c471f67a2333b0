namespace Mcir.Core.Data;

/// <summary>
/// An RGB image held as interleaved HWC float32 samples on the 0–255 scale (BasicSR's uint8 convention).
/// 8-bit sources hold exact integers, so metrics and <c>x / 255f</c> tensor conversion reproduce BasicSR/NumPy bit
/// for bit; 16-bit sources keep their extra precision as fractional values (<c>v16 * 255 / 65535</c>).
/// </summary>
public sealed class RgbImage
{
    public const int Channels = 3;

    public RgbImage(int height, int width, float[] pixels, int sourceBitDepth = 8)
    {
        if (height <= 0 || width <= 0)
            throw new ArgumentOutOfRangeException(nameof(height), $"image size must be positive, got {height}x{width}");
        if (pixels.Length != checked(height * width * Channels))
            throw new ArgumentException($"expected {height}x{width}x{Channels} = {height * width * Channels} samples, got {pixels.Length}", nameof(pixels));
        Height = height;
        Width = width;
        Pixels = pixels;
        SourceBitDepth = sourceBitDepth;
    }

    public int Height { get; }
    public int Width { get; }

    /// <summary>HWC, RGB order, 0–255 scale.</summary>
    public float[] Pixels { get; }

    /// <summary>Bits per channel of the file this image was read from (8 or 16); 8 for computed images.</summary>
    public int SourceBitDepth { get; }

    public float this[int y, int x, int c] => Pixels[(y * Width + x) * Channels + c];

    /// <summary>A copy of the rectangle [top, top+height) × [left, left+width).</summary>
    public RgbImage Crop(int top, int left, int height, int width)
    {
        if (top < 0 || left < 0 || height <= 0 || width <= 0 || top + height > Height || left + width > Width)
            throw new ArgumentOutOfRangeException(nameof(top), $"crop ({top},{left}) {height}x{width} is outside the {Height}x{Width} image");
        var dst = new float[height * width * Channels];
        for (int y = 0; y < height; y++)
            Array.Copy(Pixels, ((top + y) * Width + left) * Channels, dst, y * width * Channels, width * Channels);
        return new RgbImage(height, width, dst, SourceBitDepth);
    }
}
