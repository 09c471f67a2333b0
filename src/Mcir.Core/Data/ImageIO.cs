using Mcir.Core.IO;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace Mcir.Core.Data;

/// <summary>
/// Reads and writes images (PNG 8/16-bit, JPEG incl. CMYK/YCCK, BMP, TIFF, WebP) as <see cref="RgbImage"/>.
/// The rules are summarised in docs/image-io.md.
/// </summary>
public static class ImageIO
{
    /// <summary>File extensions <see cref="Write"/> accepts (lower case, with the dot).</summary>
    public static IReadOnlyList<string> WritableExtensions { get; } = [".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"];

    // Only the five supported formats: GIF/TGA/PBM files are rejected instead of being silently decoded.
    private static readonly Configuration Decoders = new(
        new PngConfigurationModule(), new JpegConfigurationModule(), new BmpConfigurationModule(),
        new TiffConfigurationModule(), new WebpConfigurationModule());

    /// <summary>
    /// Reads an image file into an HWC RGB <see cref="RgbImage"/> on the 0–255 scale.
    /// </summary>
    /// <remarks>
    /// <para>The format comes from the file content (magic bytes), not the extension: PNG (1–16 bit, any colour type),
    /// JPEG (baseline/progressive, grayscale, YCbCr, RGB, CMYK and YCCK — Adobe-inverted CMYK as written by Photoshop and
    /// ImageMagick is converted naively without an ICC profile, like libjpeg/OpenCV), BMP, TIFF (first page) and WebP
    /// (lossy and lossless, first frame). GIF, EXR, HEIF etc. are rejected as unsupported.</para>
    /// <para>Conversion rules (OpenCV <c>IMREAD_COLOR</c>, which BasicSR uses, except for 16-bit precision):
    /// grayscale is replicated to R = G = B; alpha (an alpha channel or a PNG tRNS transparency) is dropped and the stored
    /// RGB values are kept unchanged, no compositing — or rejected with <see cref="AlphaHandling.Error"/>; 8-bit and
    /// lower-depth sources give exact integers 0–255 (1/2/4-bit values scaled to the full range); 16-bit sources
    /// (PNG, TIFF) are read at full precision as <c>v16 × 255 / 65535</c> (= v16 / 257, fractional) with
    /// <see cref="RgbImage.SourceBitDepth"/> = 16; the EXIF orientation is applied unless
    /// <see cref="ImageReadOptions.ApplyExifOrientation"/> is false.</para>
    /// <para>Validation, before any pixel is decoded: the container structure is walked so truncated files are
    /// rejected even where the decoder would silently return partial pixels — PNG: every chunk inside the file, a
    /// correct CRC on every critical chunk, up to IEND; JPEG: every segment inside the file, up to the EOI marker; BMP:
    /// the uncompressed pixel array inside the file; TIFF: the first directory and all its strips/tiles inside the file;
    /// WebP: the RIFF payload and all chunks inside the file. Two defects libpng/libjpeg (OpenCV) read past are read with
    /// a warning to <see cref="ImageReadOptions.Warning"/>: a PNG ancillary chunk with a wrong CRC (the chunk is dropped
    /// before decoding) and a JPEG without EOI whose scans are complete (checked by decoding the entropy-coded data with
    /// LibJpeg.NET; EOI is appended for the decoder; junk after the scan is ignored). A cut JPEG scan or missing
    /// progressive scans stay <see cref="ImageReadFailure.Truncated"/>. Then the header size is checked against
    /// <see cref="ImageReadOptions.MaxPixels"/>. Any decoder failure is reported as corrupt data. JPEG, BMP, TIFF and
    /// WebP have no checksums, so corrupted compressed bytes inside a structurally complete file may still decode.</para>
    /// <para>JPEG pixels come from ImageSharp's decoder, which can differ from libjpeg-turbo (OpenCV/PIL) by a few
    /// levels; use PNG for bit-exact comparisons with Python.</para>
    /// </remarks>
    /// <exception cref="ImageReadException">The file is missing, empty, unreadable, not a supported image, truncated or
    /// corrupt, larger than <see cref="ImageReadOptions.MaxPixels"/>, or has alpha while <see cref="ImageReadOptions.Alpha"/>
    /// is <see cref="AlphaHandling.Error"/>. The message starts with <paramref name="path"/>.</exception>
    public static RgbImage Read(string path, ImageReadOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        options ??= ImageReadOptions.Default;
        if (options.MaxPixels <= 0)
            throw new ArgumentOutOfRangeException(nameof(options), $"{nameof(ImageReadOptions.MaxPixels)} must be positive, got {options.MaxPixels}");

        byte[] bytes = ReadBytes(path);
        ImageFileFacts facts = ImageFileInspector.Inspect(path, bytes, options.MaxPixels);
        string name = FormatName(facts.Format);
        bytes = facts.Repaired ?? bytes;

        IImageInfo? info;
        try { info = Image.Identify(Decoders, bytes, out _); }
        catch (Exception e) when (e is not OutOfMemoryException)
        { throw new ImageReadException(path, ImageReadFailure.Corrupt, $"corrupt {name}: cannot read the header ({e.Message}); expected a valid {name} header", e); }
        if (info is null)
            throw new ImageReadException(path, ImageReadFailure.Corrupt, $"corrupt {name}: the decoder does not recognise the header; expected a valid {name} file");

        long pixels = (long)info.Width * info.Height;
        if (pixels > options.MaxPixels) throw TooLarge(path, info.Width, info.Height, options.MaxPixels);
        if (info.Width <= 0 || info.Height <= 0)
            throw new ImageReadException(path, ImageReadFailure.Corrupt, $"corrupt {name}: header gives size {info.Width}x{info.Height}; expected a positive size");
        if (facts.HasAlpha && options.Alpha == AlphaHandling.Error)
            throw new ImageReadException(path, ImageReadFailure.HasAlpha,
                $"{name} has an alpha channel (or transparency), but {nameof(ImageReadOptions)}.{nameof(ImageReadOptions.Alpha)} is {nameof(AlphaHandling.Error)}; " +
                $"expected an opaque RGB or grayscale image (use {nameof(AlphaHandling)}.{nameof(AlphaHandling.Drop)} to discard alpha)");

        RgbImage image;
        try
        {
            image = facts.BitsPerChannel > 8
                ? Decode<Rgb48>(bytes, options, 16, static (in Rgb48 p, Span<float> o) =>
                {
                    o[0] = (float)(p.R / 257.0);
                    o[1] = (float)(p.G / 257.0);
                    o[2] = (float)(p.B / 257.0);
                })
                : Decode<Rgb24>(bytes, options, 8, static (in Rgb24 p, Span<float> o) =>
                {
                    o[0] = p.R;
                    o[1] = p.G;
                    o[2] = p.B;
                });
        }
        catch (Exception e) when (e is not (OutOfMemoryException or ImageReadException))
        {
            throw new ImageReadException(path, ImageReadFailure.Corrupt,
                $"corrupt {name}: the decoder failed ({e.Message}); expected valid {name} data in a format variant ImageSharp supports", e);
        }
        foreach (string warning in facts.Warnings ?? []) (options.Warning ?? WarnOnStandardError)(warning);
        return image;
    }

    /// <summary>The <see cref="ImageReadFailure.TooLarge"/> error for a <paramref name="width"/> × <paramref name="height"/> image.</summary>
    internal static ImageReadException TooLarge(string path, long width, long height, long maxPixels) =>
        new(path, ImageReadFailure.TooLarge,
            $"image is {width}x{height} = {width * height:N0} pixels, over the limit of {maxPixels:N0} pixels; " +
            $"raise {nameof(ImageReadOptions)}.{nameof(ImageReadOptions.MaxPixels)} if this image is legitimate");

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> Warned = new();

    // The default warning sink (ImageReadOptions.Warning = null): standard error, each distinct line once per process,
    // so a dataset that re-reads a file every epoch does not repeat it.
    private static void WarnOnStandardError(string warning)
    {
        if (Warned.TryAdd(warning, true)) Console.Error.WriteLine($"warning: {warning}");
    }

    private delegate void PixelCopy<TPixel>(in TPixel p, Span<float> rgb);

    private static RgbImage Decode<TPixel>(byte[] bytes, ImageReadOptions options, int bitDepth, PixelCopy<TPixel> copy)
        where TPixel : unmanaged, IPixel<TPixel>
    {
        using var image = Image.Load<TPixel>(Decoders, bytes);
        if (options.ApplyExifOrientation && image.Metadata.ExifProfile?.GetValue(ExifTag.Orientation) is { } o && o.Value is not (0 or 1))
            image.Mutate(x => x.AutoOrient());
        int h = image.Height, w = image.Width;
        var pixels = new float[(long)h * w * RgbImage.Channels];
        image.ProcessPixelRows(rows =>
        {
            for (int y = 0; y < rows.Height; y++)
            {
                var row = rows.GetRowSpan(y);
                var dst = pixels.AsSpan(y * w * 3, w * 3);
                for (int x = 0; x < row.Length; x++) copy(in row[x], dst.Slice(x * 3, 3));
            }
        });
        return new RgbImage(h, w, pixels, bitDepth);
    }

    private static byte[] ReadBytes(string path)
    {
        if (Directory.Exists(path))
            throw new ImageReadException(path, ImageReadFailure.NotFound, "is a folder; expected an image file");
        if (!File.Exists(path))
            throw new ImageReadException(path, ImageReadFailure.NotFound,
                $"file not found{(Directory.Exists(Path.GetDirectoryName(Path.GetFullPath(path))) ? "" : " (its folder does not exist either)")}; expected an image file");
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (FileNotFoundException e) { throw new ImageReadException(path, ImageReadFailure.NotFound, "file not found; expected an image file", e); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new ImageReadException(path, ImageReadFailure.Unreadable, $"cannot read the file ({e.Message}); expected a readable image file", e); }
        if (bytes.Length == 0)
            throw new ImageReadException(path, ImageReadFailure.Empty, "empty file (0 bytes); expected image data");
        return bytes;
    }

    private static string FormatName(ImageFileFormat f) => f switch
    {
        ImageFileFormat.Png => "PNG",
        ImageFileFormat.Jpeg => "JPEG",
        ImageFileFormat.Bmp => "BMP",
        ImageFileFormat.Tiff => "TIFF",
        _ => "WebP",
    };

    /// <summary>
    /// Writes <paramref name="image"/> to <paramref name="path"/>, choosing the encoder from the extension:
    /// .png (8-bit RGB, or 16-bit with <see cref="ImageWriteOptions.BitDepth"/> = 16), .jpg/.jpeg (quality
    /// <see cref="ImageWriteOptions.JpegQuality"/>, 4:2:0), .bmp (24-bit), .tif/.tiff (8-bit RGB), .webp (lossless).
    /// </summary>
    /// <remarks>
    /// Samples are clamped to [0, 255] and rounded half to even (8-bit), or written as round-half-even(v × 257) (16-bit PNG,
    /// the inverse of the read rule, so 16-bit images round-trip exactly). The write is atomic
    /// (<see cref="AtomicFile.Write"/>): on any failure an existing file at <paramref name="path"/> is left untouched and no
    /// temporary file remains.
    /// </remarks>
    /// <exception cref="ArgumentException">Unknown extension, invalid options, or NaN samples; nothing is written.</exception>
    public static void Write(string path, RgbImage image, ImageWriteOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(image);
        options ??= ImageWriteOptions.Default;
        string ext = Path.GetExtension(path).ToLowerInvariant();
        if (!WritableExtensions.Contains(ext))
            throw new ArgumentException(
                $"{path}: unknown image extension {(ext.Length == 0 ? "(none)" : $"'{ext}'")}; supported: {string.Join(", ", WritableExtensions)}", nameof(path));
        if (options.BitDepth is not (8 or 16))
            throw new ArgumentException($"{path}: {nameof(ImageWriteOptions.BitDepth)} must be 8 or 16, got {options.BitDepth}", nameof(options));
        if (options.BitDepth == 16 && ext != ".png")
            throw new ArgumentException($"{path}: 16-bit output is supported only for .png, not '{ext}'", nameof(options));
        if (options.JpegQuality is < 1 or > 100)
            throw new ArgumentException($"{path}: {nameof(ImageWriteOptions.JpegQuality)} must be 1–100, got {options.JpegQuality}", nameof(options));
        int nan = Array.FindIndex(image.Pixels, float.IsNaN);
        if (nan >= 0)
        {
            int p = nan / 3;
            throw new ArgumentException($"{path}: image has a NaN sample at (y={p / image.Width}, x={p % image.Width}, c={nan % 3}); nothing was written", nameof(image));
        }

        bool gray = options.Grayscale;
        IImageEncoder encoder = ext switch
        {
            ".png" => new PngEncoder
            {
                ColorType = gray ? PngColorType.Grayscale : PngColorType.Rgb,
                BitDepth = options.BitDepth == 16 ? PngBitDepth.Bit16 : PngBitDepth.Bit8,
            },
            ".jpg" or ".jpeg" => new JpegEncoder { Quality = options.JpegQuality, ColorType = gray ? JpegColorType.Luminance : JpegColorType.YCbCrRatio420 },
            ".bmp" => new BmpEncoder { BitsPerPixel = gray ? BmpBitsPerPixel.Pixel8 : BmpBitsPerPixel.Pixel24 },
            ".tif" or ".tiff" => new TiffEncoder { BitsPerPixel = gray ? TiffBitsPerPixel.Bit8 : TiffBitsPerPixel.Bit24, Compression = SixLabors.ImageSharp.Formats.Tiff.Constants.TiffCompression.Deflate },
            _ => new WebpEncoder { FileFormat = WebpFileFormatType.Lossless },
        };

        using Image img = gray
            ? (options.BitDepth == 16 ? ToImage(image, (r, _, _) => new L16(To16(r))) : ToImage(image, (r, _, _) => new L8(To8(r))))
            : options.BitDepth == 16 ? ToImage16(image) : ToImage8(image);
        AtomicFile.Write(path, s => img.Save(s, encoder));
    }

    private static Image<Rgb24> ToImage8(RgbImage src) => ToImage(src, (r, g, b) => new Rgb24(To8(r), To8(g), To8(b)));

    private static Image<Rgb48> ToImage16(RgbImage src) => ToImage(src, (r, g, b) => new Rgb48(To16(r), To16(g), To16(b)));

    private static Image<TPixel> ToImage<TPixel>(RgbImage src, Func<float, float, float, TPixel> pixel)
        where TPixel : unmanaged, IPixel<TPixel>
    {
        var img = new Image<TPixel>(src.Width, src.Height);
        float[] px = src.Pixels;
        img.ProcessPixelRows(rows =>
        {
            for (int y = 0; y < rows.Height; y++)
            {
                var row = rows.GetRowSpan(y);
                int o = y * src.Width * 3;
                for (int x = 0; x < row.Length; x++, o += 3)
                    row[x] = pixel(px[o], px[o + 1], px[o + 2]);
            }
        });
        return img;
    }

    /// <summary>Clamp to [0, 255] and round half to even.</summary>
    internal static byte To8(float v) => (byte)MathF.Round(Math.Clamp(v, 0f, 255f), MidpointRounding.ToEven);

    /// <summary>Clamp to [0, 255], scale by 257 (= 65535 / 255) and round half to even.</summary>
    internal static ushort To16(float v) => (ushort)Math.Round(Math.Clamp(v, 0f, 255f) * 257.0, MidpointRounding.ToEven);
}
