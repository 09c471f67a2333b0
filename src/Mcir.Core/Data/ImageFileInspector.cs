using System.Buffers.Binary;
using System.Text;

namespace Mcir.Core.Data;

/// <summary>The container formats <see cref="ImageIO"/> reads and writes.</summary>
public enum ImageFileFormat { Png, Jpeg, Bmp, Tiff, WebP }

/// <summary>What the container structure of an image file says, checked without decoding any pixels.</summary>
/// <param name="Format">The container format.</param>
/// <param name="BitsPerChannel">Bits per sample (8 or 16 for the formats read at 16 bits).</param>
/// <param name="HasAlpha">The file declares an alpha channel or transparency.</param>
/// <param name="Warnings">Tolerated defects, one line each starting with the path (empty when none).</param>
/// <param name="Repaired">The bytes to hand the decoder instead of the file's when a tolerated defect had to be
/// repaired (a PNG ancillary chunk with a wrong CRC dropped, a missing JPEG EOI appended); null = the file's bytes.</param>
internal readonly record struct ImageFileFacts(ImageFileFormat Format, int BitsPerChannel, bool HasAlpha,
    IReadOnlyList<string>? Warnings = null, byte[]? Repaired = null);

/// <summary>
/// Recognises the format from the file's magic bytes and walks the container structure so truncated and
/// structurally corrupt files are rejected even where the decoder would silently return partial pixels
/// (ImageSharp 2.1 does that for JPEG, BMP and WebP). Two defects that libpng and libjpeg (OpenCV's imread, hence
/// BasicSR's numbers) only warn about are tolerated with a warning and a repaired byte stream for the decoder: a PNG
/// ancillary chunk with a wrong CRC, and a JPEG whose scans are complete but whose EOI marker is missing. The rules
/// are documented in docs/image-io.md.
/// </summary>
internal static class ImageFileInspector
{
    private const string Expected = "expected a PNG, JPEG, BMP, TIFF or WebP image";

    private static readonly byte[] PngSignature = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    /// <param name="path">The file's path, for messages.</param>
    /// <param name="b">The file's bytes.</param>
    /// <param name="maxPixels">The size limit, checked before a JPEG without EOI is entropy-decoded to see whether its
    /// scans are complete (the only case where the walk decodes anything).</param>
    public static ImageFileFacts Inspect(string path, ReadOnlySpan<byte> b, long maxPixels = long.MaxValue)
    {
        ImageFileFormat? format = DetectFormat(b);
        if (format is null)
        {
            if (PrefixOfKnownSignature(b))
                throw new ImageReadException(path, ImageReadFailure.Truncated,
                    $"truncated image: only {b.Length} bytes, which is the start of an image signature; {Expected}");
            if (OtherFormat(b) is { } other)
                throw new ImageReadException(path, ImageReadFailure.UnsupportedFormat,
                    $"unsupported image format {other}; {Expected}");
            throw new ImageReadException(path, ImageReadFailure.UnknownFormat,
                $"not an image: unrecognised content starting with {Describe(b)}; {Expected}");
        }
        return format.Value switch
        {
            ImageFileFormat.Png => InspectPng(path, b),
            ImageFileFormat.Jpeg => InspectJpeg(path, b, maxPixels),
            ImageFileFormat.Bmp => InspectBmp(path, b),
            ImageFileFormat.Tiff => InspectTiff(path, b),
            _ => InspectWebP(path, b),
        };
    }

    public static ImageFileFormat? DetectFormat(ReadOnlySpan<byte> b)
    {
        if (b.StartsWith(PngSignature)) return ImageFileFormat.Png;
        if (b.Length >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return ImageFileFormat.Jpeg;
        if (b.Length >= 26 && b[0] == 'B' && b[1] == 'M') return ImageFileFormat.Bmp;
        if (b.Length >= 8 && (b.StartsWith("II*\0"u8) || b.StartsWith("MM\0*"u8) || b.StartsWith("II+\0"u8) || b.StartsWith("MM\0+"u8)))
            return ImageFileFormat.Tiff;
        if (b.Length >= 12 && b.StartsWith("RIFF"u8) && b.Slice(8, 4).SequenceEqual("WEBP"u8)) return ImageFileFormat.WebP;
        return null;
    }

    private static bool PrefixOfKnownSignature(ReadOnlySpan<byte> b)
    {
        if (b.Length == 0) return false;
        ReadOnlySpan<byte> jpeg = [0xFF, 0xD8, 0xFF];
        return (b.Length < PngSignature.Length && PngSignature.AsSpan().StartsWith(b))
            || (b.Length < 3 && jpeg.StartsWith(b))
            || (b.Length < 12 && b.Length >= 4 && b.StartsWith("RIFF"u8))
            || (b.Length < 8 && b.Length >= 4 && (b.StartsWith("II*\0"u8) || b.StartsWith("MM\0*"u8)));
    }

    private static string? OtherFormat(ReadOnlySpan<byte> b)
    {
        if (b.StartsWith("GIF87a"u8) || b.StartsWith("GIF89a"u8)) return "GIF";
        if (b.StartsWith(new byte[] { 0x76, 0x2F, 0x31, 0x01 })) return "OpenEXR";
        if (b.StartsWith("#?RADIANCE"u8) || b.StartsWith("#?RGBE"u8)) return "Radiance HDR";
        if (b.Length >= 3 && b[0] == 'P' && b[1] is >= (byte)'1' and <= (byte)'7' && b[2] is (byte)'\n' or (byte)'\r' or (byte)' ' or (byte)'\t')
            return "PNM/PAM (Netpbm)";
        if (b.StartsWith(new byte[] { 0, 0, 0, 0x0C, 0x6A, 0x50, 0x20, 0x20 }) || b.StartsWith(new byte[] { 0xFF, 0x4F, 0xFF, 0x51 }))
            return "JPEG 2000";
        if (b.Length >= 12 && b.Slice(4, 4).SequenceEqual("ftyp"u8))
        {
            string brand = Encoding.ASCII.GetString(b.Slice(8, 4));
            if (brand is "heic" or "heix" or "mif1" or "msf1" or "hevc") return "HEIF/HEIC";
            if (brand is "avif" or "avis") return "AVIF";
        }
        return null;
    }

    /// <summary>"bytes 68 65 6C 6C … (text: "hello…")" for an error message.</summary>
    private static string Describe(ReadOnlySpan<byte> b)
    {
        var head = b[..Math.Min(16, b.Length)];
        string hex = Convert.ToHexString(head);
        var sb = new StringBuilder("bytes ");
        for (int i = 0; i < hex.Length; i += 2) sb.Append(hex, i, 2).Append(' ');
        sb.Length--;
        if (b.Length > head.Length) sb.Append(" …");
        bool text = true;
        foreach (byte c in head) if (c is < 0x20 and not (byte)'\n' and not (byte)'\r' and not (byte)'\t' || c == 0x7F) { text = false; break; }
        if (text)
        {
            string s = Encoding.UTF8.GetString(head).Replace("\r", "\\r").Replace("\n", "\\n").Replace("\t", "\\t");
            sb.Append(" (looks like text: \"").Append(s).Append(b.Length > head.Length ? "…\")" : "\")");
        }
        return sb.ToString();
    }

    // ---------------------------------------------------------------- PNG
    // Rule: chunks are walked from the signature; every chunk must lie inside the file, IHDR must come first, at least
    // one IDAT must appear, and the walk must reach IEND. Bytes after IEND are ignored. A critical chunk (type starting
    // with an upper-case letter: IHDR, PLTE, IDAT, IEND, ...) must carry a correct CRC-32; an ancillary chunk (lower-case:
    // tEXt, gAMA, tRNS, eXIf, ...) with a wrong CRC is dropped with a warning, as libpng does by default
    // (PNG_CRC_WARN_DISCARD), so its content never reaches the decoder.

    private static ImageFileFacts InspectPng(string path, ReadOnlySpan<byte> b)
    {
        int pos = 8, bitDepth = 0, colorType = -1;
        bool sawIdat = false, sawTrns = false;
        List<(int Start, int Length)>? dropped = null;
        List<string>? warnings = null;
        while (true)
        {
            if (b.Length - pos < 12)
                throw new ImageReadException(path, ImageReadFailure.Truncated,
                    $"truncated PNG: file ends at byte {b.Length} {(pos == 8 ? "right after the signature" : $"after the chunk that ends at byte {pos}")}; expected further chunks up to IEND");
            uint length = BinaryPrimitives.ReadUInt32BigEndian(b[pos..]);
            string type = ChunkType(b.Slice(pos + 4, 4));
            if (length > int.MaxValue)
                throw new ImageReadException(path, ImageReadFailure.Corrupt, $"corrupt PNG: chunk '{type}' at byte {pos} declares an invalid length {length}");
            if ((long)pos + 12 + length > b.Length)
                throw new ImageReadException(path, ImageReadFailure.Truncated,
                    $"truncated PNG: chunk '{type}' at byte {pos} needs {12 + (long)length} bytes but the file ends after {b.Length - pos}; expected complete chunks up to IEND");
            var typeAndData = b.Slice(pos + 4, 4 + (int)length);
            uint stored = BinaryPrimitives.ReadUInt32BigEndian(b[(pos + 8 + (int)length)..]);
            uint computed = System.IO.Hashing.Crc32.HashToUInt32(typeAndData); // CRC-32 (ISO-HDLC), as PNG/zlib
            if (pos == 8 && type != "IHDR")
                throw new ImageReadException(path, ImageReadFailure.Corrupt, $"corrupt PNG: first chunk is '{type}'; expected IHDR");
            if (stored != computed)
            {
                // Ancillary = bit 5 of the first type byte set (lower case); a type that is not four letters is invalid.
                bool ancillary = type[0] is >= 'a' and <= 'z';
                if (!ancillary)
                    throw new ImageReadException(path, ImageReadFailure.Corrupt,
                        $"corrupt PNG: CRC mismatch in critical chunk '{type}' at byte {pos} (stored {stored:X8}, computed {computed:X8}); " +
                        "expected the CRC of every critical chunk (IHDR, PLTE, IDAT, IEND) to match its data");
                (dropped ??= []).Add((pos, 12 + (int)length));
                (warnings ??= []).Add(
                    $"{path}: PNG ancillary chunk '{type}' at byte {pos} has a wrong CRC (stored {stored:X8}, computed {computed:X8}); " +
                    "the chunk is ignored, as libpng (OpenCV) does");
                pos += 12 + (int)length;
                continue;
            }
            var data = typeAndData[4..];
            switch (type)
            {
                case "IHDR":
                    if (length != 13) throw new ImageReadException(path, ImageReadFailure.Corrupt, $"corrupt PNG: IHDR has {length} bytes; expected 13");
                    bitDepth = data[8];
                    colorType = data[9];
                    break;
                case "tRNS": sawTrns = true; break;
                case "IDAT": sawIdat = true; break;
                case "IEND":
                    if (!sawIdat) throw new ImageReadException(path, ImageReadFailure.Corrupt, "corrupt PNG: reached IEND without any IDAT chunk; expected image data");
                    return new ImageFileFacts(ImageFileFormat.Png, bitDepth, colorType is 4 or 6 || sawTrns,
                        warnings, dropped is null ? null : WithoutRanges(b, dropped));
            }
            pos += 12 + (int)length;
        }
    }

    /// <summary>A copy of <paramref name="b"/> without the given (ascending, disjoint) byte ranges.</summary>
    private static byte[] WithoutRanges(ReadOnlySpan<byte> b, List<(int Start, int Length)> ranges)
    {
        var result = new byte[b.Length - ranges.Sum(r => r.Length)];
        int from = 0, to = 0;
        foreach (var (start, length) in ranges)
        {
            b[from..start].CopyTo(result.AsSpan(to));
            to += start - from;
            from = start + length;
        }
        b[from..].CopyTo(result.AsSpan(to));
        return result;
    }

    private static string ChunkType(ReadOnlySpan<byte> t)
    {
        foreach (byte c in t) if (c is < (byte)'A' or > (byte)'z' or (> (byte)'Z' and < (byte)'a')) return "0x" + Convert.ToHexString(t);
        return Encoding.ASCII.GetString(t);
    }

    // ---------------------------------------------------------------- JPEG
    // Rule: markers are walked from SOI; every marker segment must lie inside the file, entropy-coded data after each
    // SOS is skipped to the next marker, and the walk should reach EOI (FFD9). Stray bytes between segments are skipped
    // like libjpeg does; bytes after EOI are ignored. A file that ends inside the entropy-coded data of a scan without
    // EOI is what libjpeg's file reader warns about ("Premature end of JPEG file") and still returns: it is read with a
    // warning when its scans are complete — the scans seen cover every coefficient of every component at full
    // precision (no progressive scan is missing) and libjpeg decodes the last scan to its last block without running
    // out of data — and the decoder gets the bytes with FFD9 appended. Otherwise (a cut scan, missing scans, a file
    // that ends in the headers or inside a segment) the file is truncated.

    private static ImageFileFacts InspectJpeg(string path, ReadOnlySpan<byte> b, long maxPixels)
    {
        int pos = 2, bits = 8, scans = 0;
        bool sawSof = false, sawSos = false, progressive = false;
        int width = 0, height = 0;
        byte[]? components = null;              // frame component ids, from SOF
        var coverage = new Dictionary<byte, ulong>(); // component id -> coefficients that reached full precision
        while (true)
        {
            int ff = b[pos..].IndexOf((byte)0xFF);
            if (ff < 0) throw JpegTruncated(path, b, scans);
            pos += ff;
            while (pos < b.Length && b[pos] == 0xFF) pos++; // fill bytes
            if (pos >= b.Length) throw JpegTruncated(path, b, scans);
            byte marker = b[pos++];
            if (marker == 0xD9)
            {
                if (!sawSof || !sawSos)
                    throw new ImageReadException(path, ImageReadFailure.Corrupt,
                        $"corrupt JPEG: EOI marker at byte {pos - 2} before any {(sawSof ? "scan (SOS)" : "frame header (SOF)")}; expected image data");
                return new ImageFileFacts(ImageFileFormat.Jpeg, bits, HasAlpha: false);
            }
            if (marker == 0x00 || marker == 0x01 || marker is >= 0xD0 and <= 0xD7) continue; // stuffing / TEM / RSTn: no length
            if (b.Length - pos < 2) throw JpegTruncated(path, b, scans);
            int length = BinaryPrimitives.ReadUInt16BigEndian(b[pos..]);
            if (length < 2)
                throw new ImageReadException(path, ImageReadFailure.Corrupt, $"corrupt JPEG: marker FF{marker:X2} at byte {pos - 2} has invalid length {length}");
            if (pos + length > b.Length)
                throw new ImageReadException(path, ImageReadFailure.Truncated,
                    $"truncated JPEG: segment FF{marker:X2} at byte {pos - 2} needs {length + 2} bytes but the file ends after {b.Length - pos + 2}; expected complete segments up to the EOI marker (FFD9)");
            var segment = b.Slice(pos + 2, length - 2);
            if (marker is >= 0xC0 and <= 0xCF && marker is not 0xC4 and not 0xC8 and not 0xCC)
            {
                sawSof = true;
                progressive = marker is 0xC2 or 0xCA;
                if (segment.Length >= 1) bits = segment[0];
                if (segment.Length >= 6)
                {
                    height = BinaryPrimitives.ReadUInt16BigEndian(segment[1..]);
                    width = BinaryPrimitives.ReadUInt16BigEndian(segment[3..]);
                    int n = segment[5];
                    if (segment.Length >= 6 + 3 * n)
                    {
                        components = new byte[n];
                        for (int i = 0; i < n; i++) components[i] = segment[6 + 3 * i];
                    }
                }
            }
            pos += length;
            if (marker == 0xDA)
            {
                sawSos = true;
                scans++;
                AddScanCoverage(segment, progressive, coverage);
                // Entropy-coded data: FF00 is a stuffed byte, FFD0–FFD7 are restart markers; anything else is a marker.
                while (true)
                {
                    int next = b[pos..].IndexOf((byte)0xFF);
                    if (next < 0) return JpegWithoutEoi(path, b, bits, scans, width, height, components, coverage, maxPixels);
                    pos += next;
                    int q = pos + 1;
                    while (q < b.Length && b[q] == 0xFF) q++;
                    if (q >= b.Length) return JpegWithoutEoi(path, b, bits, scans, width, height, components, coverage, maxPixels);
                    if (b[q] == 0x00 || b[q] is >= 0xD0 and <= 0xD7) { pos = q + 1; continue; }
                    pos = q - 1; // at the FF before the marker
                    break;
                }
            }
        }
    }

    /// <summary>Marks the coefficients a scan brings to full precision: all 64 of each component of a sequential scan;
    /// Ss..Se of a progressive scan whose successive-approximation low bit Al is 0 (ITU T.81 B.2.3, G.1.1).</summary>
    private static void AddScanCoverage(ReadOnlySpan<byte> sos, bool progressive, Dictionary<byte, ulong> coverage)
    {
        if (sos.Length < 1) return;
        int n = sos[0];
        if (sos.Length < 1 + 2 * n + 3) return;
        int ss = sos[1 + 2 * n], se = sos[2 + 2 * n], al = sos[3 + 2 * n] & 0x0F;
        ulong mask;
        if (!progressive) mask = ulong.MaxValue;
        else if (al != 0 || ss > se || se > 63) mask = 0;
        else mask = (se == 63 ? ulong.MaxValue : (1UL << (se + 1)) - 1) & ~((1UL << ss) - 1);
        for (int i = 0; i < n; i++)
        {
            byte id = sos[1 + 2 * i];
            coverage[id] = coverage.GetValueOrDefault(id) | mask;
        }
    }

    /// <summary>The file ends inside the entropy-coded data of scan <paramref name="scans"/> without EOI: read it with a
    /// warning if its scans are complete (see the rule above), else throw a truncation error saying which defect it is.</summary>
    private static ImageFileFacts JpegWithoutEoi(string path, ReadOnlySpan<byte> b, int bits, int scans, int width, int height,
        byte[]? components, Dictionary<byte, ulong> coverage, long maxPixels)
    {
        string where = $"the file ends at byte {b.Length} inside the compressed data of scan {scans}";
        const string Expected = "expected the rest of the JPEG data and the EOI marker (FFD9)";

        var incomplete = components?.Where(id => coverage.GetValueOrDefault(id) != ulong.MaxValue).ToArray();
        if (incomplete is { Length: > 0 })
            throw new ImageReadException(path, ImageReadFailure.Truncated,
                $"truncated JPEG: scans are missing — {where} without the EOI marker (FFD9), and the scans so far leave " +
                $"component{(incomplete.Length > 1 ? "s" : "")} {string.Join(", ", incomplete)} without every coefficient at full precision; {Expected}");

        if ((long)width * height > maxPixels)
            throw ImageIO.TooLarge(path, width, height, maxPixels);

        var check = LibJpegCheck.Run(b.ToArray());
        if (check.Failure is { } failure)
            throw new ImageReadException(path, ImageReadFailure.Truncated,
                $"truncated JPEG: {where} without the EOI marker (FFD9), and libjpeg cannot decode the data to tell whether the scan is complete ({failure.Message}); {Expected}",
                failure);
        if (check.ScanCut)
            throw new ImageReadException(path, ImageReadFailure.Truncated,
                $"truncated JPEG: the scan is cut — {where}, before the scan's last block (libjpeg: \"{check.HitMarkerText}\"); {Expected}");

        string defect = check.ExtraneousText is null
            ? "JPEG has no EOI marker (FFD9) after its last scan"
            : "JPEG has no EOI marker (FFD9) after its last scan, and bytes that are not JPEG data follow the scan";
        string libjpeg = string.Join(", ", check.Warnings.Select(w => $"\"{w}\""));
        string warning = $"{path}: {defect}; every scan is complete, so every pixel is read, as libjpeg (OpenCV) does" +
            (libjpeg.Length > 0 ? $" (libjpeg: {libjpeg})" : "");
        return new ImageFileFacts(ImageFileFormat.Jpeg, bits, HasAlpha: false, [warning], [.. b, 0xFF, 0xD9]);
    }

    /// <summary>
    /// Decodes the entropy-coded data with BitMiracle's LibJpeg.NET, a C# port of IJG libjpeg 6b (the library OpenCV's
    /// libjpeg-turbo derives from), and records its warnings: JWRN_HIT_MARKER ("premature end of data segment") means a
    /// scan ran out of data before its last block; JWRN_JPEG_EOF means only that EOI is missing.
    /// </summary>
    private sealed class LibJpegCheck : BitMiracle.LibJpeg.Classic.jpeg_error_mgr
    {
        private int _code;

        public List<string> Warnings { get; } = [];
        public bool ScanCut { get; private set; }
        public string? HitMarkerText { get; private set; }
        public string? ExtraneousText { get; private set; }
        public Exception? Failure { get; private set; }

        public static LibJpegCheck Run(byte[] bytes)
        {
            var check = new LibJpegCheck();
            var d = new BitMiracle.LibJpeg.Classic.jpeg_decompress_struct(check);
            try
            {
                d.jpeg_stdio_src(new MemoryStream(bytes, writable: false));
                d.jpeg_read_header(true);
                d.jpeg_read_coefficients(); // entropy decoding of every scan, no IDCT
                d.jpeg_finish_decompress();
            }
            catch (Exception e) when (e is not OutOfMemoryException) { check.Failure = e; }
            return check;
        }

        protected override string GetMessageText(int code)
        {
            _code = code;
            return base.GetMessageText(code);
        }

        public override void emit_message(int msg_level)
        {
            if (msg_level >= 0) return; // trace messages
            string text = format_message(); // sets _code
            Warnings.Add(text);
            switch ((BitMiracle.LibJpeg.Classic.J_MESSAGE_CODE)_code)
            {
                case BitMiracle.LibJpeg.Classic.J_MESSAGE_CODE.JWRN_HIT_MARKER: ScanCut = true; HitMarkerText ??= text; break;
                case BitMiracle.LibJpeg.Classic.J_MESSAGE_CODE.JWRN_EXTRANEOUS_DATA: ExtraneousText ??= text; break;
            }
        }

        public override void output_message() { }
    }

    private static ImageReadException JpegTruncated(string path, ReadOnlySpan<byte> b, int scans) =>
        new(path, ImageReadFailure.Truncated,
            $"truncated JPEG: file ends at byte {b.Length} {(scans > 0 ? $"after scan {scans}, between segments" : "inside the headers")} without the EOI marker (FFD9); expected a complete JPEG ending with FFD9");

    // ---------------------------------------------------------------- BMP
    // Rule: the headers must be inside the file; for uncompressed and bit-field BMPs the file must hold
    // pixel-data offset + row stride × |height| bytes. RLE-compressed BMPs are left to the decoder.

    private static ImageFileFacts InspectBmp(string path, ReadOnlySpan<byte> b)
    {
        uint offBits = BinaryPrimitives.ReadUInt32LittleEndian(b[10..]);
        uint infoSize = BinaryPrimitives.ReadUInt32LittleEndian(b[14..]);
        if (infoSize < 12 || 14L + infoSize > b.Length)
            throw new ImageReadException(path, b.Length < 14 + 40 ? ImageReadFailure.Truncated : ImageReadFailure.Corrupt,
                $"{(b.Length < 14 + 40 ? "truncated" : "corrupt")} BMP: info header of {infoSize} bytes does not fit in the {b.Length}-byte file; expected a complete BITMAPINFOHEADER");
        long width, height;
        int bpp;
        uint compression = 0;
        if (infoSize == 12)
        {
            width = BinaryPrimitives.ReadUInt16LittleEndian(b[18..]);
            height = BinaryPrimitives.ReadInt16LittleEndian(b[20..]);
            bpp = BinaryPrimitives.ReadUInt16LittleEndian(b[24..]);
        }
        else
        {
            if (infoSize < 40 && b.Length < 14 + 40)
                throw new ImageReadException(path, ImageReadFailure.Truncated, $"truncated BMP: {b.Length} bytes; expected at least a 40-byte info header");
            width = BinaryPrimitives.ReadInt32LittleEndian(b[18..]);
            height = BinaryPrimitives.ReadInt32LittleEndian(b[22..]);
            bpp = BinaryPrimitives.ReadUInt16LittleEndian(b[28..]);
            compression = BinaryPrimitives.ReadUInt32LittleEndian(b[30..]);
        }
        bool alpha = false;
        // Alpha mask: in a V3+ header (≥ 56 bytes) with BI_BITFIELDS, or after a 40-byte header with BI_ALPHABITFIELDS.
        if ((compression == 3 && infoSize >= 56 || compression == 6) && b.Length >= 70 && bpp is 16 or 32)
            alpha = BinaryPrimitives.ReadUInt32LittleEndian(b[66..]) != 0;
        if (compression is 0 or 3 or 6 && width > 0 && bpp is 1 or 4 or 8 or 16 or 24 or 32)
        {
            long stride = (width * bpp + 31) / 32 * 4;
            long need = offBits + stride * Math.Abs(height);
            if (need > b.Length)
                throw new ImageReadException(path, ImageReadFailure.Truncated,
                    $"truncated BMP: {width}x{Math.Abs(height)} at {bpp} bits per pixel needs {need} bytes (pixel data from byte {offBits}) but the file has {b.Length}");
        }
        return new ImageFileFacts(ImageFileFormat.Bmp, 8, alpha);
    }

    // ---------------------------------------------------------------- TIFF
    // Rule: the first IFD (the page that is read) and the values of all its tags must lie inside the file, and every
    // strip or tile listed in StripOffsets/StripByteCounts (TileOffsets/TileByteCounts) must end inside the file.

    private static ImageFileFacts InspectTiff(string path, ReadOnlySpan<byte> b)
    {
        bool le = b[0] == 'I';
        int fileLength = b.Length;
        bool big = (le ? BinaryPrimitives.ReadUInt16LittleEndian(b[2..]) : BinaryPrimitives.ReadUInt16BigEndian(b[2..])) == 43;
        int offSize = big ? 8 : 4;
        ulong Read(ReadOnlySpan<byte> s, int size) => size switch
        {
            1 => s[0],
            2 => le ? BinaryPrimitives.ReadUInt16LittleEndian(s) : BinaryPrimitives.ReadUInt16BigEndian(s),
            4 => le ? BinaryPrimitives.ReadUInt32LittleEndian(s) : BinaryPrimitives.ReadUInt32BigEndian(s),
            _ => le ? BinaryPrimitives.ReadUInt64LittleEndian(s) : BinaryPrimitives.ReadUInt64BigEndian(s),
        };
        ImageReadException Trunc(string what) => new(path, ImageReadFailure.Truncated,
            $"truncated TIFF: {what} extends past the end of the {fileLength}-byte file; expected the first page's directory and all its strips/tiles inside the file");

        if (big && b.Length < 16) throw Trunc("the BigTIFF header");
        ulong ifd = big ? Read(b[8..], 8) : Read(b[4..], 4);
        if (ifd < 8 || ifd + (ulong)(big ? 8 : 2) > (ulong)b.Length) throw Trunc($"the first image directory (byte {ifd})");
        ulong count = Read(b[(int)ifd..], big ? 8 : 2);
        int entrySize = big ? 20 : 12;
        ulong entriesStart = ifd + (ulong)(big ? 8 : 2);
        if (count > 100_000 || entriesStart + count * (ulong)entrySize + (ulong)offSize > (ulong)b.Length) throw Trunc($"the image directory at byte {ifd} with {count} entries");

        var values = new Dictionary<int, ulong[]>();
        for (ulong i = 0; i < count; i++)
        {
            var e = b.Slice((int)(entriesStart + i * (ulong)entrySize), entrySize);
            int tag = (int)Read(e, 2);
            int type = (int)Read(e[2..], 2);
            int size = type switch { 1 or 2 or 6 or 7 => 1, 3 or 8 => 2, 4 or 9 or 11 or 13 => 4, 5 or 10 or 12 or 16 or 17 or 18 => 8, _ => 0 };
            if (size == 0) continue; // unknown type: readers skip it
            ulong n = Read(e[4..], big ? 8 : 4);
            if (n > (ulong)b.Length) throw Trunc($"the values of tag {tag} ({n} entries)");
            ulong bytes = n * (ulong)size;
            var field = e[(big ? 12 : 8)..];
            ReadOnlySpan<byte> src;
            if (bytes <= (ulong)offSize) src = field[..(int)bytes];
            else
            {
                ulong at = Read(field, offSize);
                if (at + bytes > (ulong)b.Length) throw Trunc($"the values of tag {tag} (bytes {at}–{at + bytes})");
                src = b.Slice((int)at, (int)bytes);
            }
            if (tag is not (258 or 338 or 273 or 279 or 324 or 325) || size is not (1 or 2 or 4 or 8) || type is 2 or 5 or 10 or 11 or 12) continue;
            var arr = new ulong[n];
            for (int k = 0; k < (int)n; k++) arr[k] = Read(src[(k * size)..], size);
            values[tag] = arr;
        }

        void CheckBlocks(int offsetsTag, int countsTag, string kind)
        {
            if (!values.TryGetValue(offsetsTag, out var offs) || !values.TryGetValue(countsTag, out var lens)) return;
            for (int i = 0; i < Math.Min(offs.Length, lens.Length); i++)
                if (offs[i] + lens[i] > (ulong)fileLength)
                    throw Trunc($"{kind} {i + 1} of {offs.Length} (bytes {offs[i]}–{offs[i] + lens[i]})");
        }
        CheckBlocks(273, 279, "strip");
        CheckBlocks(324, 325, "tile");
        if (!values.ContainsKey(273) && !values.ContainsKey(324))
            throw new ImageReadException(path, ImageReadFailure.Corrupt, "corrupt TIFF: the first image directory has no StripOffsets or TileOffsets; expected image data");

        int bits = values.TryGetValue(258, out var bps) && bps.Length > 0 ? (int)bps.Max() : 1;
        bool alpha = values.TryGetValue(338, out var extra) && extra.Any(v => v is 1 or 2);
        return new ImageFileFacts(ImageFileFormat.Tiff, bits, alpha);
    }

    // ---------------------------------------------------------------- WebP
    // Rule: the file must hold the whole RIFF payload its header declares, every chunk must fit inside it, and an
    // image chunk (VP8 or VP8L) must be present.

    private static ImageFileFacts InspectWebP(string path, ReadOnlySpan<byte> b)
    {
        long riffEnd = 8L + BinaryPrimitives.ReadUInt32LittleEndian(b[4..]);
        if (riffEnd > b.Length)
            throw new ImageReadException(path, ImageReadFailure.Truncated,
                $"truncated WebP: RIFF header declares {riffEnd} bytes but the file has {b.Length}; expected the complete RIFF payload");
        long pos = 12;
        bool alpha = false, image = false;
        while (pos + 8 <= riffEnd)
        {
            string fourcc = Encoding.ASCII.GetString(b.Slice((int)pos, 4));
            long size = BinaryPrimitives.ReadUInt32LittleEndian(b[((int)pos + 4)..]);
            if (pos + 8 + size > riffEnd)
                throw new ImageReadException(path, ImageReadFailure.Truncated,
                    $"truncated WebP: chunk '{fourcc}' at byte {pos} needs {8 + size} bytes but only {riffEnd - pos} remain in the RIFF payload");
            var data = b.Slice((int)pos + 8, (int)size);
            switch (fourcc)
            {
                case "VP8X": if (size >= 1 && (data[0] & 0x10) != 0) alpha = true; break;
                case "ALPH": alpha = true; break;
                case "VP8L":
                    image = true;
                    if (size >= 5 && ((BinaryPrimitives.ReadUInt32LittleEndian(data[1..]) >> 28) & 1) != 0) alpha = true;
                    break;
                case "VP8 ": image = true; break;
                case "ANMF": image = true; break;
            }
            pos += 8 + size + (size & 1);
        }
        if (!image)
            throw new ImageReadException(path, ImageReadFailure.Corrupt, "corrupt WebP: no image data chunk (VP8, VP8L or ANMF); expected one");
        return new ImageFileFacts(ImageFileFormat.WebP, 8, alpha);
    }
}
