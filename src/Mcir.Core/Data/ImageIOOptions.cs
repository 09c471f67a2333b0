namespace Mcir.Core.Data;

/// <summary>What <see cref="ImageIO.Read(string, ImageReadOptions?)"/> does with an alpha channel.</summary>
public enum AlphaHandling
{
    /// <summary>Discard alpha and keep the stored RGB values unchanged (no compositing) — OpenCV's IMREAD_COLOR, which BasicSR uses.</summary>
    Drop,
    /// <summary>Throw <see cref="ImageReadException"/> (<see cref="ImageReadFailure.HasAlpha"/>) when the file declares an alpha channel.</summary>
    Error,
}

/// <summary>Options for <see cref="ImageIO.Read(string, ImageReadOptions?)"/>.</summary>
public sealed record ImageReadOptions
{
    /// <summary>The default options.</summary>
    public static ImageReadOptions Default { get; } = new();

    /// <summary>
    /// Largest accepted width × height, checked from the file header before any pixel data is decoded
    /// (decompression-bomb guard). Default 100,000,000 (e.g. 10000 × 10000).
    /// </summary>
    public long MaxPixels { get; init; } = 100_000_000;

    /// <summary>Alpha channel handling; default <see cref="AlphaHandling.Drop"/>.</summary>
    public AlphaHandling Alpha { get; init; } = AlphaHandling.Drop;

    /// <summary>
    /// Rotate/flip according to the EXIF Orientation tag, as OpenCV's IMREAD_COLOR does. Default true; set false to
    /// get the pixels in stored order.
    /// </summary>
    public bool ApplyExifOrientation { get; init; } = true;

    /// <summary>
    /// Receives one line per defect that the reader tolerates the way libpng/libjpeg (OpenCV's <c>imread</c>, hence
    /// BasicSR) do: a PNG ancillary chunk with a wrong CRC (the chunk is ignored), a JPEG whose scans are complete but
    /// whose EOI marker is missing or followed by junk bytes. The line starts with the file's path and names the defect;
    /// it is sent only after the file was read successfully. Default null: the line is written to standard error as
    /// <c>warning: &lt;line&gt;</c>, once per distinct line per process.
    /// </summary>
    public Action<string>? Warning { get; init; }
}

/// <summary>Options for <see cref="ImageIO.Write(string, RgbImage, ImageWriteOptions?)"/>.</summary>
public sealed record ImageWriteOptions
{
    /// <summary>The default options.</summary>
    public static ImageWriteOptions Default { get; } = new();

    /// <summary>
    /// Bits per channel of the written file: 8 (default, all formats) or 16 (PNG only; sample = round(v × 257), i.e.
    /// the exact inverse of the 16-bit read rule).
    /// </summary>
    public int BitDepth { get; init; } = 8;

    /// <summary>
    /// Write one channel (the first; the image is a gray one held with R = G = B, see <see cref="Grayscale"/>): a
    /// grayscale PNG (8- or 16-bit), JPEG, BMP or TIFF, as <c>cv2.imwrite</c> writes a 2-D array. Default false (RGB).
    /// WebP has no gray mode and stays RGB.
    /// </summary>
    public bool Grayscale { get; init; }

    /// <summary>JPEG quality 1–100; default 95 (OpenCV's imwrite default).</summary>
    public int JpegQuality { get; init; } = 95;
}
