using System.Buffers.Binary;
using System.Text;
using Mcir.Core.Data;
using Mcir.Core.IO;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace Mcir.Core.Tests.Data;

public sealed class ImageIOTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mcir-imageio-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); }
        catch (IOException) { }
    }

    private string P(string name) => Path.Combine(_dir, name);

    /// <summary>A deterministic noisy 8-bit image (exact integers 0–255, includes 0 and 255).</summary>
    private static RgbImage Noise(int h = 12, int w = 17, int seed = 1)
    {
        var rnd = new Random(seed);
        var px = new float[h * w * 3];
        for (int i = 0; i < px.Length; i++) px[i] = rnd.Next(256);
        px[0] = 0; px[1] = 255;
        return new RgbImage(h, w, px);
    }

    /// <summary>A smooth 8-bit image (JPEG-friendly).</summary>
    private static RgbImage Smooth(int h = 32, int w = 48)
    {
        var px = new float[h * w * 3];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int o = (y * w + x) * 3;
                px[o] = 40 + 4 * x;
                px[o + 1] = 30 + 5 * y;
                px[o + 2] = 128;
            }
        return new RgbImage(h, w, px);
    }

    private byte[] PngBytes(RgbImage? img = null)
    {
        string p = P($"src-{Guid.NewGuid():N}.png");
        ImageIO.Write(p, img ?? Noise());
        return File.ReadAllBytes(p);
    }

    private static ImageReadException ReadFails(string path, ImageReadFailure failure, ImageReadOptions? options = null)
    {
        var e = Assert.Throws<ImageReadException>(() => ImageIO.Read(path, options));
        Assert.StartsWith(path + ":", e.Message);
        Assert.Equal(path, e.FilePath);
        Assert.Equal(failure, e.Failure);
        return e;
    }

    private string[] TempLeftovers() => Directory.GetFiles(_dir, "*.tmp", SearchOption.AllDirectories);

    // ------------------------------------------------------------------ round trips

    [Theory]
    [InlineData(".png")]
    [InlineData(".bmp")]
    [InlineData(".tif")]
    [InlineData(".tiff")]
    [InlineData(".webp")]
    [InlineData(".PNG")]
    public void LosslessFormatsRoundTripExactly(string ext)
    {
        var img = Noise();
        string p = P("img" + ext);
        ImageIO.Write(p, img);
        var back = ImageIO.Read(p, new ImageReadOptions { Alpha = AlphaHandling.Error }); // written files are opaque
        Assert.Equal(img.Height, back.Height);
        Assert.Equal(img.Width, back.Width);
        Assert.Equal(8, back.SourceBitDepth);
        Assert.Equal(img.Pixels, back.Pixels);
        Assert.Empty(TempLeftovers());
    }

    [Theory]
    [InlineData(".jpg")]
    [InlineData(".jpeg")]
    public void JpegRoundTripIsClose(string ext)
    {
        var img = Smooth();
        string p = P("img" + ext);
        ImageIO.Write(p, img, new ImageWriteOptions { JpegQuality = 95 });
        Assert.True(File.ReadAllBytes(p) is [0xFF, 0xD8, ..]);
        var back = ImageIO.Read(p);
        Assert.Equal((img.Height, img.Width), (back.Height, back.Width));
        double mae = img.Pixels.Zip(back.Pixels, (a, b) => Math.Abs(a - b)).Average();
        Assert.True(mae < 2.0, $"mean abs error {mae}");
        Assert.All(back.Pixels, v => Assert.Equal(MathF.Round(v), v)); // 8-bit integers
    }

    [Fact]
    public void LowerJpegQualityGivesSmallerFile()
    {
        var img = Noise(32, 32);
        ImageIO.Write(P("q95.jpg"), img);
        ImageIO.Write(P("q20.jpg"), img, new ImageWriteOptions { JpegQuality = 20 });
        Assert.True(new FileInfo(P("q20.jpg")).Length < new FileInfo(P("q95.jpg")).Length);
    }

    [Fact]
    public void Png16RoundTripsFractionalValuesExactly()
    {
        var px = new float[4 * 5 * 3];
        for (int i = 0; i < px.Length; i++) px[i] = (float)((i * 1237 % 65536) / 257.0);
        var img = new RgbImage(4, 5, px, sourceBitDepth: 16);
        string p = P("deep.png");
        ImageIO.Write(p, img, new ImageWriteOptions { BitDepth = 16 });
        var back = ImageIO.Read(p);
        Assert.Equal(16, back.SourceBitDepth);
        Assert.Equal(img.Pixels, back.Pixels);
        // IHDR bit depth byte (signature 8 + length 4 + type 4 + width 4 + height 4) is 16.
        Assert.Equal(16, File.ReadAllBytes(p)[24]);
    }

    [Fact]
    public void Png16IsReadAtFullPrecision()
    {
        // Written by ImageSharp's own encoder (not ImageIO.Write), so this tests the reader alone.
        using var src = new Image<Rgb48>(3, 2);
        var expected = new float[2 * 3 * 3];
        for (int y = 0; y < 2; y++)
            for (int x = 0; x < 3; x++)
            {
                int k = 10 + 40 * (y * 3 + x); // 8-bit level k
                ushort r = (ushort)(257 * k + 1), g = (ushort)(257 * k + 128), b = (ushort)(257 * k);
                src[x, y] = new Rgb48(r, g, b);
                int o = (y * 3 + x) * 3;
                expected[o] = (float)(r / 257.0);
                expected[o + 1] = (float)(g / 257.0);
                expected[o + 2] = k;
            }
        string p = P("src16.png");
        src.Save(p, new PngEncoder { BitDepth = PngBitDepth.Bit16, ColorType = PngColorType.Rgb });

        var img = ImageIO.Read(p);
        Assert.Equal(16, img.SourceBitDepth);
        Assert.Equal(expected, img.Pixels);
        Assert.Equal(10f + 1f / 257f, img[0, 0, 0], 5);   // 257k+1 → k + 1/257, not rounded to k
        Assert.Equal(10f + 128f / 257f, img[0, 0, 1], 5);
        Assert.NotEqual(MathF.Round(img[0, 0, 0]), img[0, 0, 0]);
    }

    [Theory]
    [InlineData("rgb16.png")]
    [InlineData("rgb16.tif")]
    public void SixteenBitFilesFromImageMagickAreReadAtFullPrecision(string name)
    {
        // TestData/images/rgb16.{png,tif}: 2x1, every pixel #0102A0B0FFFE, made with ImageMagick 6:
        //   convert -size 2x1 xc:'#0102A0B0FFFE' -depth 16 [-define png:color-type=2] rgb16.{png,tif}
        var img = ImageIO.Read(Path.Combine(AppContext.BaseDirectory, "TestData", "images", name));
        Assert.Equal((1, 2, 16), (img.Height, img.Width, img.SourceBitDepth));
        float[] px = [(float)(0x0102 / 257.0), (float)(0xA0B0 / 257.0), (float)(0xFFFE / 257.0)];
        Assert.Equal(px.Concat(px).ToArray(), img.Pixels);
    }

    [Fact]
    public void ExifOrientationIsAppliedUnlessDisabled()
    {
        // 3 wide x 2 high, stored with EXIF Orientation 6 ("rotate 90° clockwise to display").
        using var src = new Image<Rgb24>(3, 2);
        for (int y = 0; y < 2; y++) for (int x = 0; x < 3; x++) src[x, y] = new Rgb24((byte)(10 * (y * 3 + x)), 0, 0);
        src.Metadata.ExifProfile = new SixLabors.ImageSharp.Metadata.Profiles.Exif.ExifProfile();
        src.Metadata.ExifProfile.SetValue(SixLabors.ImageSharp.Metadata.Profiles.Exif.ExifTag.Orientation, (ushort)6);
        string p = P("rotated.png");
        src.Save(p, new PngEncoder { ColorType = PngColorType.Rgb });

        var stored = ImageIO.Read(p, new ImageReadOptions { ApplyExifOrientation = false });
        Assert.Equal((2, 3), (stored.Height, stored.Width));
        Assert.Equal(10f, stored[0, 1, 0]);

        var shown = ImageIO.Read(p);
        Assert.Equal((3, 2), (shown.Height, shown.Width));
        // Rotating 90° clockwise puts the stored bottom-left pixel (value 30) at the top-left and the stored
        // top-left pixel (value 0) at the top-right.
        Assert.Equal(30f, shown[0, 0, 0]);
        Assert.Equal(0f, shown[0, 1, 0]);
        Assert.Equal(20f, shown[2, 1, 0]);
    }

    [Fact]
    public void GrayscalePngIsReplicatedToRgb()
    {
        using var gray = new Image<L8>(4, 3);
        for (int y = 0; y < 3; y++) for (int x = 0; x < 4; x++) gray[x, y] = new L8((byte)(y * 80 + x * 7));
        string p = P("gray.png");
        gray.Save(p, new PngEncoder { ColorType = PngColorType.Grayscale, BitDepth = PngBitDepth.Bit8 });
        Assert.Equal(0, File.ReadAllBytes(p)[25]); // IHDR colour type 0 = grayscale

        var img = ImageIO.Read(p);
        Assert.Equal(8, img.SourceBitDepth);
        for (int y = 0; y < 3; y++)
            for (int x = 0; x < 4; x++)
                for (int c = 0; c < 3; c++)
                    Assert.Equal(y * 80 + x * 7, img[y, x, c]);
    }

    [Fact]
    public void Grayscale16PngIsReplicatedAtFullPrecision()
    {
        using var gray = new Image<L16>(2, 1);
        gray[0, 0] = new L16(257 * 3 + 1);
        gray[1, 0] = new L16(65535);
        string p = P("gray16.png");
        gray.Save(p, new PngEncoder { ColorType = PngColorType.Grayscale, BitDepth = PngBitDepth.Bit16 });
        var img = ImageIO.Read(p);
        Assert.Equal(16, img.SourceBitDepth);
        Assert.Equal(new[] { (float)(772 / 257.0), (float)(772 / 257.0), (float)(772 / 257.0), 255f, 255f, 255f }, img.Pixels);
    }

    private string RgbaPng()
    {
        using var rgba = new Image<Rgba32>(3, 2);
        byte[] alphas = [0, 1, 127, 128, 254, 255];
        for (int i = 0; i < 6; i++) rgba[i % 3, i / 3] = new Rgba32((byte)(10 + i), (byte)(100 + i), (byte)(200 + i), alphas[i]);
        string p = P("rgba.png");
        rgba.Save(p, new PngEncoder { ColorType = PngColorType.RgbWithAlpha, BitDepth = PngBitDepth.Bit8 });
        Assert.Equal(6, File.ReadAllBytes(p)[25]); // IHDR colour type 6 = RGBA
        return p;
    }

    [Fact]
    public void RgbaPngDropsAlphaAndKeepsRgbUnchanged()
    {
        var img = ImageIO.Read(RgbaPng());
        for (int i = 0; i < 6; i++)
        {
            Assert.Equal(10 + i, img[i / 3, i % 3, 0]);
            Assert.Equal(100 + i, img[i / 3, i % 3, 1]);
            Assert.Equal(200 + i, img[i / 3, i % 3, 2]); // no compositing, even where alpha is 0
        }
    }

    [Fact]
    public void RgbaPngWithAlphaErrorThrows()
    {
        string p = RgbaPng();
        var e = ReadFails(p, ImageReadFailure.HasAlpha, new ImageReadOptions { Alpha = AlphaHandling.Error });
        Assert.Contains("alpha", e.Message);
        // An opaque file passes the same option.
        ImageIO.Write(P("rgb.png"), Noise());
        ImageIO.Read(P("rgb.png"), new ImageReadOptions { Alpha = AlphaHandling.Error });
    }

    [Fact]
    public void CmykJpegDecodesToTheExpectedColours()
    {
        // TestData/images/cmyk.jpg: 16x8, Adobe APP14 CMYK, made with ImageMagick 6:
        //   convert -size 8x8 xc:'rgb(200,100,50)' -size 8x8 xc:'rgb(30,60,220)' +append -colorspace CMYK \
        //           -sampling-factor 1x1 -quality 95 -strip cmyk.jpg
        string p = Path.Combine(AppContext.BaseDirectory, "TestData", "images", "cmyk.jpg");
        var bytes = File.ReadAllBytes(p);
        Assert.Equal("Adobe", Encoding.ASCII.GetString(bytes, 6, 5));
        var img = ImageIO.Read(p);
        Assert.Equal((8, 16), (img.Height, img.Width));
        float[] left = [200, 100, 50], right = [30, 60, 220];
        for (int y = 0; y < 8; y++)
            for (int c = 0; c < 3; c++)
            {
                Assert.InRange(img[y, 2, c], left[c] - 4, left[c] + 4);
                Assert.InRange(img[y, 13, c], right[c] - 4, right[c] + 4);
            }
    }

    [Fact]
    public void FormatComesFromContentNotExtension()
    {
        var img = Noise();
        ImageIO.Write(P("real.bmp"), img);
        File.Copy(P("real.bmp"), P("named.png"));
        Assert.Equal(img.Pixels, ImageIO.Read(P("named.png")).Pixels);
    }

    // ------------------------------------------------------------------ read errors

    [Fact]
    public void MissingFileThrows()
    {
        var e = ReadFails(P("nope.png"), ImageReadFailure.NotFound);
        Assert.Contains("not found", e.Message);
    }

    [Fact]
    public void EmptyFileThrows()
    {
        File.WriteAllBytes(P("empty.png"), []);
        var e = ReadFails(P("empty.png"), ImageReadFailure.Empty);
        Assert.Contains("0 bytes", e.Message);
    }

    [Fact]
    public void TextFileRenamedPngThrows()
    {
        File.WriteAllText(P("notes.png"), "hello, this is not an image\n");
        var e = ReadFails(P("notes.png"), ImageReadFailure.UnknownFormat);
        Assert.Contains("not an image", e.Message);
        Assert.Contains("hello", e.Message);
        Assert.Contains("PNG, JPEG, BMP, TIFF or WebP", e.Message);
    }

    [Fact]
    public void GifIsReportedAsUnsupported()
    {
        File.WriteAllBytes(P("anim.png"), "GIF89a\x01\0\x01\0\0\0\0;"u8.ToArray());
        var e = ReadFails(P("anim.png"), ImageReadFailure.UnsupportedFormat);
        Assert.Contains("GIF", e.Message);
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.9)]
    [InlineData(-12)] // cut inside IEND: the chunk walk does not reach a complete IEND
    [InlineData(-1)]
    public void TruncatedPngThrows(double cut)
    {
        byte[] png = PngBytes();
        int n = cut > 0 ? (int)(png.Length * cut) : png.Length + (int)cut;
        File.WriteAllBytes(P("cut.png"), png[..n]);
        var e = ReadFails(P("cut.png"), ImageReadFailure.Truncated);
        Assert.Contains("truncated PNG", e.Message);
    }

    [Fact]
    public void PngWithCorruptBytesInTheMiddleThrows()
    {
        byte[] png = PngBytes();
        for (int i = png.Length / 2; i < png.Length / 2 + 8; i++) png[i] ^= 0x5A;
        File.WriteAllBytes(P("bad.png"), png);
        var e = ReadFails(P("bad.png"), ImageReadFailure.Corrupt);
        Assert.Contains("CRC mismatch", e.Message);
    }

    [Theory]
    [InlineData(0.3)]
    [InlineData(0.8)]
    // A JPEG that lacks only the EOI marker is read with a warning, as libjpeg does: ImageDefectTests.
    public void TruncatedJpegThrows(double cut)
    {
        string src = P("full.jpg");
        ImageIO.Write(src, Noise(40, 40));
        byte[] jpg = File.ReadAllBytes(src);
        Assert.True(jpg is [.., 0xFF, 0xD9]);
        int n = cut > 0 ? (int)(jpg.Length * cut) : jpg.Length + (int)cut;
        File.WriteAllBytes(P("cut.jpg"), jpg[..n]);
        var e = ReadFails(P("cut.jpg"), ImageReadFailure.Truncated);
        Assert.Contains("truncated JPEG", e.Message);
        Assert.Contains("EOI", e.Message);
    }

    [Theory]
    [InlineData(".bmp", "truncated BMP")]
    [InlineData(".webp", "truncated WebP")]
    [InlineData(".tif", "truncated TIFF")]
    public void TruncatedBmpWebpTiffThrow(string ext, string expected)
    {
        string src = P("full" + ext);
        ImageIO.Write(src, Noise(40, 40));
        byte[] bytes = File.ReadAllBytes(src);
        // TIFF from ImageSharp stores pixel strips before the directory: cut into the directory and, separately, into strips.
        foreach (int n in new[] { bytes.Length / 2, bytes.Length - 3 })
        {
            string p = P($"cut{n}{ext}");
            File.WriteAllBytes(p, bytes[..n]);
            var e = ReadFails(p, ImageReadFailure.Truncated);
            Assert.Contains(expected, e.Message);
        }
    }

    [Fact]
    public void ImageOverMaxPixelsThrowsWithSizeLimitAndOptionName()
    {
        string p = P("big.png");
        ImageIO.Write(p, Noise(30, 40));
        var e = ReadFails(p, ImageReadFailure.TooLarge, new ImageReadOptions { MaxPixels = 1000 });
        Assert.Contains("40x30", e.Message);
        Assert.Contains("1,000", e.Message);
        Assert.Contains("ImageReadOptions.MaxPixels", e.Message);
        Assert.Equal(30, ImageIO.Read(p, new ImageReadOptions { MaxPixels = 1200 }).Height);
    }

    [Fact]
    public void PixelLimitIsCheckedBeforeDecoding()
    {
        // A structurally valid PNG whose IHDR claims 200000 x 100000 but whose IDAT holds almost nothing:
        // decoding would fail (or allocate 60 GB); the header check must reject it first, with the default limit.
        var ms = new MemoryStream();
        ms.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(ihdr, 200_000);
        BinaryPrimitives.WriteUInt32BigEndian(ihdr.AsSpan(4), 100_000);
        ihdr[8] = 8; ihdr[9] = 2;
        WriteChunk(ms, "IHDR", ihdr);
        WriteChunk(ms, "IDAT", [0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
        WriteChunk(ms, "IEND", []);
        File.WriteAllBytes(P("bomb.png"), ms.ToArray());
        var e = ReadFails(P("bomb.png"), ImageReadFailure.TooLarge);
        Assert.Contains("200000x100000", e.Message);
        Assert.Contains("100,000,000", e.Message);
    }

    private static void WriteChunk(Stream s, string type, byte[] data)
    {
        var buf = new byte[12 + data.Length];
        BinaryPrimitives.WriteUInt32BigEndian(buf, (uint)data.Length);
        Encoding.ASCII.GetBytes(type).CopyTo(buf, 4);
        data.CopyTo(buf, 8);
        BinaryPrimitives.WriteUInt32BigEndian(buf.AsSpan(8 + data.Length), Crc32(buf.AsSpan(4, 4 + data.Length)));
        s.Write(buf);
    }

    private static uint Crc32(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            c ^= b;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
        }
        return ~c;
    }

    // ------------------------------------------------------------------ writing

    [Fact]
    public void WriteClampsAndRoundsHalfToEven()
    {
        float[] values = [-3f, 0.5f, 1.5f, 2.5f, 3.4999f, 254.5f, 300f, 127.5f, 128.5f];
        float[] expected = [0f, 0f, 2f, 2f, 3f, 254f, 255f, 128f, 128f];
        var img = new RgbImage(1, 3, values);
        string p = P("round.png");
        ImageIO.Write(p, img);
        Assert.Equal(expected, ImageIO.Read(p).Pixels);
    }

    [Fact]
    public void UnknownExtensionFailsAndLeavesExistingFileUntouched()
    {
        string p = P("out.gif");
        byte[] original = "previous content"u8.ToArray();
        File.WriteAllBytes(p, original);
        var e = Assert.Throws<ArgumentException>(() => ImageIO.Write(p, Noise()));
        Assert.Contains("'.gif'", e.Message);
        Assert.Contains(".png, .jpg, .jpeg, .bmp, .tif, .tiff, .webp", e.Message);
        Assert.Equal(original, File.ReadAllBytes(p));
        Assert.Empty(TempLeftovers());
        Assert.Single(Directory.GetFiles(_dir));
    }

    [Fact]
    public void NaNImageIsNotWrittenAndExistingFileIsUntouched()
    {
        string p = P("nan.png");
        ImageIO.Write(p, Noise());
        byte[] original = File.ReadAllBytes(p);
        var px = new float[2 * 2 * 3];
        px[7] = float.NaN;
        var e = Assert.Throws<ArgumentException>(() => ImageIO.Write(p, new RgbImage(2, 2, px)));
        Assert.Contains("NaN", e.Message);
        Assert.Equal(original, File.ReadAllBytes(p));
        Assert.Empty(TempLeftovers());
    }

    [Fact]
    public void SixteenBitIsRejectedForNonPng()
    {
        var e = Assert.Throws<ArgumentException>(() => ImageIO.Write(P("x.jpg"), Noise(), new ImageWriteOptions { BitDepth = 16 }));
        Assert.Contains("16-bit", e.Message);
        Assert.Empty(Directory.GetFiles(_dir));
    }

    [Fact]
    public void WriteReplacesAnExistingFile()
    {
        string p = P("img.png");
        File.WriteAllText(p, "old");
        ImageIO.Write(p, Noise());
        Assert.Equal(Noise().Pixels, ImageIO.Read(p).Pixels);
        Assert.Single(Directory.GetFiles(_dir));
    }

    [Fact]
    public void AtomicWriteFailureLeavesExistingFileAndNoTempFile()
    {
        string p = P("result.json");
        AtomicFile.WriteAllText(p, "{\"psnr\": 30.1}");
        byte[] original = File.ReadAllBytes(p);
        var e = Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(p, s =>
        {
            s.Write("{\"psnr\": 3"u8); // partial content, then failure
            s.Flush();
            throw new InvalidOperationException("serializer failed");
        }));
        Assert.Equal("serializer failed", e.Message);
        Assert.Equal(original, File.ReadAllBytes(p));
        Assert.Empty(TempLeftovers());
        Assert.Single(Directory.GetFiles(_dir, "*", SearchOption.AllDirectories));
    }

    [Fact]
    public void AtomicWriteCreatesFolderAndReplacesContent()
    {
        string p = Path.Combine(_dir, "sub", "dir", "a.txt");
        AtomicFile.WriteAllText(p, "one");
        AtomicFile.WriteAllText(p, "two ü");
        Assert.Equal("two ü", File.ReadAllText(p));
        Assert.Equal("two ü"u8.ToArray(), File.ReadAllBytes(p)); // UTF-8, no BOM
        AtomicFile.WriteAllBytes(p, [1, 2, 3]);
        Assert.Equal(new byte[] { 1, 2, 3 }, File.ReadAllBytes(p));
        Assert.Empty(TempLeftovers());
    }

    [Fact]
    public void AtomicWriteIntoUnwritableFolderFailsWithoutTouchingTheFile()
    {
        if (OperatingSystem.IsWindows() || Environment.UserName == "root") return; // root ignores directory permissions
        string sub = Directory.CreateDirectory(P("ro")).FullName;
        string p = Path.Combine(sub, "img.png");
        ImageIO.Write(p, Noise());
        byte[] original = File.ReadAllBytes(p);
        File.SetUnixFileMode(sub, UnixFileMode.UserRead | UnixFileMode.UserExecute);
        try
        {
            Assert.Throws<UnauthorizedAccessException>(() => ImageIO.Write(p, Noise(seed: 2)));
            Assert.Equal(original, File.ReadAllBytes(p));
            Assert.Empty(TempLeftovers());
        }
        finally
        {
            File.SetUnixFileMode(sub, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }
}
