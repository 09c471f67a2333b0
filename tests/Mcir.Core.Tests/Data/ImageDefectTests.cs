using System.Buffers.Binary;
using System.Text;
using BitMiracle.LibJpeg.Classic;
using Mcir.Core.Data;
using Mcir.Core.Metrics;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;

namespace Mcir.Core.Tests.Data;

/// <summary>
/// Defects that libpng and libjpeg (OpenCV's imread, hence BasicSR's numbers) only warn about are read with a warning
/// and the pixels of the intact file; the defects they cannot read past stay errors that say which defect it is.
/// </summary>
public sealed class ImageDefectTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("mcir-defects-").FullName;
    private readonly List<string> _warnings = [];

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); }
        catch (IOException) { }
    }

    private string P(string name) => Path.Combine(_dir, name);

    private static string Case(string name) => Path.Combine(AppContext.BaseDirectory, "TestData", "images", "defects", name);

    private ImageReadOptions Collect => new() { Warning = _warnings.Add };

    private string Write(string name, byte[] bytes)
    {
        File.WriteAllBytes(P(name), bytes);
        return P(name);
    }

    private static ImageReadException ReadFails(string path, ImageReadFailure failure)
    {
        var e = Assert.Throws<ImageReadException>(() => ImageIO.Read(path, new ImageReadOptions { Warning = _ => Assert.Fail("no warning expected") }));
        Assert.StartsWith(path + ":", e.Message);
        Assert.Equal(failure, e.Failure);
        return e;
    }

    private static RgbImage Noise(int h, int w, int seed = 3)
    {
        var rnd = new Random(seed);
        var px = new float[h * w * 3];
        for (int i = 0; i < px.Length; i++) px[i] = rnd.Next(256);
        return new RgbImage(h, w, px);
    }

    // ------------------------------------------------------------------ PNG

    /// <summary>(start, type, length) of every chunk.</summary>
    private static List<(int Start, string Type, int Length)> Chunks(byte[] png)
    {
        var list = new List<(int, string, int)>();
        for (int pos = 8; pos < png.Length;)
        {
            int length = (int)BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(pos));
            list.Add((pos, Encoding.ASCII.GetString(png, pos + 4, 4), length));
            pos += 12 + length;
        }
        return list;
    }

    /// <summary>Flips one bit of the stored CRC of the first chunk of type <paramref name="type"/>.</summary>
    private static byte[] WithBadCrc(byte[] png, string type)
    {
        var (start, _, length) = Chunks(png).First(c => c.Type == type);
        byte[] bad = (byte[])png.Clone();
        bad[start + 8 + length + 3] ^= 0x01;
        return bad;
    }

    private static byte[] Chunk(string type, byte[] data)
    {
        var buf = new byte[12 + data.Length];
        BinaryPrimitives.WriteUInt32BigEndian(buf, (uint)data.Length);
        Encoding.ASCII.GetBytes(type).CopyTo(buf, 4);
        data.CopyTo(buf, 8);
        BinaryPrimitives.WriteUInt32BigEndian(buf.AsSpan(8 + data.Length), System.IO.Hashing.Crc32.HashToUInt32(buf.AsSpan(4, 4 + data.Length)));
        return buf;
    }

    [Fact]
    public void PngTextChunkWithBadCrcIsIgnoredWithAWarning()
    {
        string okPath = P("ok.png");
        ImageIO.Write(okPath, Noise(9, 13));
        byte[] ok = File.ReadAllBytes(okPath);
        int afterIhdr = 8 + 25;
        byte[] text = Chunk("tEXt", Encoding.Latin1.GetBytes("Comment\0made by hand"));
        text[^1] ^= 0xFF;
        string bad = Write("bad_text.png", [.. ok[..afterIhdr], .. text, .. ok[afterIhdr..]]);

        var img = ImageIO.Read(bad, Collect);

        Assert.Equal(ImageIO.Read(okPath).Pixels, img.Pixels);
        string w = Assert.Single(_warnings);
        Assert.StartsWith(bad + ": ", w);
        Assert.Contains("ancillary chunk 'tEXt' at byte 33 has a wrong CRC", w);
        Assert.Contains("ignored", w);
    }

    [Fact]
    public void PngExifChunkWithBadCrcIsDroppedNotApplied()
    {
        // A bad-CRC ancillary chunk must not reach the decoder (libpng discards it): with a wrong CRC on the eXIf
        // chunk the stored orientation 6 is not applied; the intact file (the control) is rotated.
        using var src = new Image<Rgb24>(3, 2);
        for (int y = 0; y < 2; y++) for (int x = 0; x < 3; x++) src[x, y] = new Rgb24((byte)(10 * (y * 3 + x)), 7, 9);
        src.Metadata.ExifProfile = new ExifProfile();
        src.Metadata.ExifProfile.SetValue(ExifTag.Orientation, (ushort)6);
        string okPath = P("rotated.png");
        src.Save(okPath, new PngEncoder { ColorType = PngColorType.Rgb });
        byte[] ok = File.ReadAllBytes(okPath);
        Assert.Contains(Chunks(ok), c => c.Type == "eXIf");
        string bad = Write("rotated_bad_exif.png", WithBadCrc(ok, "eXIf"));

        var intact = ImageIO.Read(okPath, Collect);
        Assert.Equal((3, 2), (intact.Height, intact.Width));
        Assert.Empty(_warnings);

        var img = ImageIO.Read(bad, Collect);
        Assert.Equal((2, 3), (img.Height, img.Width));
        Assert.Equal(ImageIO.Read(okPath, new ImageReadOptions { ApplyExifOrientation = false }).Pixels, img.Pixels);
        Assert.Contains("ancillary chunk 'eXIf'", Assert.Single(_warnings));
    }

    [Fact]
    public void PngTrnsChunkWithBadCrcNoLongerCountsAsAlpha()
    {
        string okPath = P("opaque.png");
        ImageIO.Write(okPath, Noise(5, 6));
        byte[] ok = File.ReadAllBytes(okPath);
        byte[] trns = Chunk("tRNS", [0, 1, 0, 2, 0, 3]);
        trns[^2] ^= 0x10;
        string bad = Write("bad_trns.png", [.. ok[..33], .. trns, .. ok[33..]]);

        // AlphaHandling.Error would reject the file if the (discarded) transparency chunk were taken into account.
        var img = ImageIO.Read(bad, new ImageReadOptions { Alpha = AlphaHandling.Error, Warning = _warnings.Add });

        Assert.Equal(ImageIO.Read(okPath).Pixels, img.Pixels);
        Assert.Contains("'tRNS'", Assert.Single(_warnings));
    }

    [Theory]
    [InlineData("IHDR")]
    [InlineData("IDAT")]
    [InlineData("IEND")]
    public void PngCriticalChunkWithBadCrcStaysAnError(string type)
    {
        string okPath = P("ok.png");
        ImageIO.Write(okPath, Noise(9, 13));
        string bad = Write($"bad_{type}.png", WithBadCrc(File.ReadAllBytes(okPath), type));

        var e = ReadFails(bad, ImageReadFailure.Corrupt);
        Assert.Contains($"CRC mismatch in critical chunk '{type}'", e.Message);
    }

    [Fact]
    public void PngWithAPaletteChunkWithBadCrcStaysAnError()
    {
        using var pal = new Image<Rgb24>(4, 4);
        for (int y = 0; y < 4; y++) for (int x = 0; x < 4; x++) pal[x, y] = new Rgb24((byte)(60 * x), (byte)(60 * y), 5);
        string okPath = P("palette.png");
        pal.Save(okPath, new PngEncoder { ColorType = PngColorType.Palette });
        string bad = Write("bad_plte.png", WithBadCrc(File.ReadAllBytes(okPath), "PLTE"));

        Assert.Contains("critical chunk 'PLTE'", ReadFails(bad, ImageReadFailure.Corrupt).Message);
    }

    // ------------------------------------------------------------------ JPEG

    private byte[] Jpeg(RgbImage img, string name = "full.jpg")
    {
        ImageIO.Write(P(name), img);
        byte[] jpg = File.ReadAllBytes(P(name));
        Assert.True(jpg is [.., 0xFF, 0xD9]);
        return jpg;
    }

    /// <summary>(first byte of the entropy-coded data, offset of the marker after it) of every scan.</summary>
    private static List<(int Start, int End)> Scans(byte[] jpg)
    {
        var scans = new List<(int, int)>();
        for (int pos = 2; jpg[pos + 1] != 0xD9;)
        {
            Assert.Equal(0xFF, jpg[pos]);
            byte marker = jpg[pos + 1];
            pos += 2 + BinaryPrimitives.ReadUInt16BigEndian(jpg.AsSpan(pos + 2));
            if (marker != 0xDA) continue;
            int start = pos;
            while (!(jpg[pos] == 0xFF && jpg[pos + 1] != 0 && jpg[pos + 1] is < 0xD0 or > 0xD7)) pos++;
            scans.Add((start, pos));
        }
        return scans;
    }

    private static int ScanStart(byte[] jpg) => Scans(jpg)[0].Start;

    [Theory]
    [InlineData(2)] // FF D9 dropped
    [InlineData(1)] // only D9 dropped: the file ends with the marker's FF
    public void JpegWithoutEoiIsReadWithEveryPixelAndAWarning(int dropped)
    {
        byte[] full = Jpeg(Noise(40, 56));
        string complete = Write("complete.jpg", full);
        string noEoi = Write("no_eoi.jpg", full[..^dropped]);

        var img = ImageIO.Read(noEoi, Collect);

        // Same decoder, same entropy-coded data (plus the appended EOI): exactly the intact file's pixels.
        Assert.Equal(ImageIO.Read(complete).Pixels, img.Pixels);
        string w = Assert.Single(_warnings);
        Assert.StartsWith(noEoi + ": ", w);
        Assert.Contains("no EOI marker (FFD9)", w);
        Assert.Contains("every scan is complete", w);
        Assert.DoesNotContain("not JPEG data", w);
    }

    [Fact]
    public void JpegWithoutEoiButWithTrailingJunkIsReadWithAWarning()
    {
        byte[] full = Jpeg(Noise(40, 56));
        byte[] junk = Enumerable.Range(0, 300).Select(i => (byte)(i * 7 % 251)).ToArray(); // no FF byte
        string path = Write("junk.jpg", [.. full[..^2], .. junk]);

        var img = ImageIO.Read(path, Collect);

        Assert.Equal(ImageIO.Read(Write("complete.jpg", full)).Pixels, img.Pixels);
        string w = Assert.Single(_warnings);
        Assert.StartsWith(path + ": ", w);
        Assert.Contains("no EOI marker (FFD9)", w);
        Assert.Contains("bytes that are not JPEG data follow the scan", w);
    }

    [Theory]
    [InlineData(0.2)]
    [InlineData(0.5)]
    [InlineData(0.9)]
    public void JpegWithACutScanStaysAnErrorThatSaysSo(double fraction)
    {
        byte[] full = Jpeg(Noise(40, 56));
        int start = ScanStart(full);
        int n = start + (int)((full.Length - 2 - start) * fraction);
        string path = Write("cut.jpg", full[..n]);

        var e = ReadFails(path, ImageReadFailure.Truncated);
        Assert.Contains("truncated JPEG: the scan is cut", e.Message);
        Assert.Contains($"ends at byte {n} inside the compressed data of scan 1", e.Message);
        Assert.DoesNotContain("scans are missing", e.Message);
    }

    [Fact]
    public void JpegCutInsideTheHeadersStaysAnError()
    {
        byte[] full = Jpeg(Noise(16, 16));
        string path = Write("head.jpg", full[..(ScanStart(full) - 6)]);
        Assert.Contains("truncated JPEG", ReadFails(path, ImageReadFailure.Truncated).Message);
    }

    /// <summary>A progressive JPEG (libjpeg's default progression: 10 scans for YCbCr) written with LibJpeg.NET.</summary>
    private static byte[] ProgressiveJpeg(RgbImage img)
    {
        var c = new jpeg_compress_struct(new jpeg_error_mgr());
        var ms = new MemoryStream();
        c.jpeg_stdio_dest(ms);
        c.Image_width = img.Width;
        c.Image_height = img.Height;
        c.Input_components = 3;
        c.In_color_space = J_COLOR_SPACE.JCS_RGB;
        c.jpeg_set_defaults();
        c.jpeg_set_quality(90, true);
        c.jpeg_simple_progression();
        c.jpeg_start_compress(true);
        var row = new byte[1][] { new byte[img.Width * 3] };
        for (int y = 0; y < img.Height; y++)
        {
            for (int i = 0; i < row[0].Length; i++) row[0][i] = (byte)img.Pixels[y * img.Width * 3 + i];
            c.jpeg_write_scanlines(row, 1);
        }
        c.jpeg_finish_compress();
        return ms.ToArray();
    }

    [Fact]
    public void ProgressiveJpegWithoutEoiIsReadButMissingScansStayAnError()
    {
        byte[] full = ProgressiveJpeg(Noise(24, 40));
        Assert.Equal(0xC2, full[Enumerable.Range(2, full.Length - 3).First(i => full[i] == 0xFF && full[i + 1] is 0xC0 or 0xC1 or 0xC2) + 1]);
        var intact = ImageIO.Read(Write("progressive.jpg", full));

        var img = ImageIO.Read(Write("progressive_no_eoi.jpg", full[..^2]), Collect);
        Assert.Equal(intact.Pixels, img.Pixels);
        Assert.Contains("no EOI marker", Assert.Single(_warnings));

        // Cut right after the data of the second-to-last scan: every scan present is complete, but the last
        // refinement scan is missing, so the pixels would not be the intact file's.
        var scans = Scans(full);
        Assert.True(scans.Count > 2, $"{scans.Count} scans");
        string missing = Write("progressive_missing.jpg", full[..scans[^2].End]);
        var e = ReadFails(missing, ImageReadFailure.Truncated);
        Assert.Contains($"truncated JPEG: scans are missing — the file ends at byte {scans[^2].End} inside the compressed data of scan {scans.Count - 1}", e.Message);

        // Cut inside the last scan: all scans are there, the last one is cut.
        string cut = Write("progressive_cut.jpg", full[..((scans[^1].Start + scans[^1].End) / 2)]);
        Assert.Contains($"the scan is cut — the file ends at byte {(scans[^1].Start + scans[^1].End) / 2} inside the compressed data of scan {scans.Count}",
            ReadFails(cut, ImageReadFailure.Truncated).Message);
    }

    [Fact]
    public void JpegWithoutEoiOverThePixelLimitIsRejectedBeforeDecoding()
    {
        byte[] full = Jpeg(Noise(40, 56));
        string path = Write("no_eoi.jpg", full[..^2]);
        var e = Assert.Throws<ImageReadException>(() => ImageIO.Read(path, new ImageReadOptions { MaxPixels = 1000 }));
        Assert.Equal(ImageReadFailure.TooLarge, e.Failure);
        Assert.Contains("56x40", e.Message);
    }

    // ------------------------------------------------------------------ the field cases (C2-10, C2-11)

    [Fact]
    public void CaseBadTextCrcPngReadsAsOkPngWithAWarning()
    {
        string bad = Case("bad_text_crc.png");
        var img = ImageIO.Read(bad, Collect);
        Assert.Equal(ImageIO.Read(Case("ok.png")).Pixels, img.Pixels);
        string w = Assert.Single(_warnings);
        Assert.StartsWith(bad + ": PNG ancillary chunk 'tEXt' at byte 33 has a wrong CRC", w);
    }

    [Fact]
    public void CaseBadTextCrcPngScoresInfinitePsnrAgainstOkPng()
    {
        string gt = Directory.CreateDirectory(P("gt")).FullName, restored = Directory.CreateDirectory(P("restored")).FullName;
        File.Copy(Case("ok.png"), Path.Combine(gt, "x.png"));
        File.Copy(Case("bad_text_crc.png"), Path.Combine(restored, "x.png"));

        var report = FolderEvaluation.Evaluate(gt, restored, new MetricsProtocol(), _warnings.Add);

        Assert.Equal(double.PositiveInfinity, Assert.Single(report.Images).Psnr);
        Assert.Equal(1.0, report.Images[0].Ssim, 12);
        Assert.Contains(Path.Combine(restored, "x.png") + ": PNG ancillary chunk 'tEXt'", Assert.Single(_warnings));
    }

    [Fact]
    public void CaseBadIdatCrcPngStaysAnError()
    {
        var e = ReadFails(Case("bad_idat_crc.png"), ImageReadFailure.Corrupt);
        Assert.Contains("CRC mismatch in critical chunk 'IDAT'", e.Message);
    }

    [Theory]
    [InlineData("no_eoi.jpg", false)]
    [InlineData("no_eoi_trailer.jpg", true)]
    public void CaseJpegsWithoutEoiReadEveryPixelOfFullJpg(string name, bool junk)
    {
        var img = ImageIO.Read(Case(name), Collect);

        Assert.Equal(ImageIO.Read(Case("full.jpg")).Pixels, img.Pixels);
        Assert.Equal((48, 64), (img.Height, img.Width));
        string w = Assert.Single(_warnings);
        Assert.StartsWith(Case(name) + ": JPEG has no EOI marker (FFD9)", w);
        Assert.Equal(junk, w.Contains("bytes that are not JPEG data"));
        if (junk) Assert.Contains("200 extraneous bytes", w); // libjpeg's own count of the junk bytes
    }

    [Fact]
    public void CaseJpegsWithoutEoiScoreAsFullJpgAgainstTheReference()
    {
        string gt = Directory.CreateDirectory(P("gt")).FullName;
        File.Copy(Case("reference.png"), Path.Combine(gt, "x.png"));
        var scores = new List<ImageScore>();
        foreach (var name in new[] { "full.jpg", "no_eoi.jpg", "no_eoi_trailer.jpg" })
        {
            string restored = Directory.CreateDirectory(P("r_" + name)).FullName;
            File.Copy(Case(name), Path.Combine(restored, "x.jpg"));
            scores.Add(Assert.Single(FolderEvaluation.Evaluate(gt, restored, new MetricsProtocol(), _warnings.Add).Images));
        }
        Assert.True(scores[0].Psnr is > 30 and < 100, $"PSNR {scores[0].Psnr}"); // quality 95 against its source
        Assert.Equal(scores[0], scores[1]);
        Assert.Equal(scores[0], scores[2]);
        Assert.Equal(2, _warnings.Count);
    }

    [Fact]
    public void CaseCutScanJpegStaysAnErrorThatSaysTheScanIsCut()
    {
        var e = ReadFails(Case("cut_scan.jpg"), ImageReadFailure.Truncated);
        Assert.Contains("truncated JPEG: the scan is cut", e.Message);
        Assert.Contains("ends at byte 1075 inside the compressed data of scan 1", e.Message);
        Assert.DoesNotContain("no EOI marker", e.Message);
    }
}
