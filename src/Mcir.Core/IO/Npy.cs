using System.Buffers.Binary;
using System.Text;
using System.Text.RegularExpressions;
using static TorchSharp.torch;

namespace Mcir.Core.IO;

/// <summary>
/// Reads NumPy .npy files (format 1.x/2.x, little-endian, C order; float32, float64, int64, uint8) into tensors.
/// Used for reference arrays exported from PyTorch/NumPy.
/// </summary>
public static partial class Npy
{
    public static Tensor Load(string path)
    {
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new InvalidDataException($"{path}: cannot read .npy file: {e.Message}", e); }
        return Parse(bytes, path);
    }

    public static Tensor Parse(byte[] bytes, string name = "<npy>")
    {
        if (bytes.Length < 10 || bytes[0] != 0x93 || Encoding.ASCII.GetString(bytes, 1, 5) != "NUMPY")
            throw new InvalidDataException($"{name}: not a .npy file (missing \\x93NUMPY magic)");
        int major = bytes[6];
        int headerLen, offset;
        if (major == 1) { headerLen = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8)); offset = 10; }
        else if (major is 2 or 3) { headerLen = checked((int)BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8))); offset = 12; }
        else throw new InvalidDataException($"{name}: unsupported .npy format version {major}");
        if (offset + headerLen > bytes.Length) throw new InvalidDataException($"{name}: truncated .npy header");
        string header = Encoding.Latin1.GetString(bytes, offset, headerLen);
        string descr = HeaderField(header, "descr", name);
        if (HeaderField(header, "fortran_order", name) != "False")
            throw new InvalidDataException($"{name}: Fortran-order arrays are not supported (expected C order)");
        long[] shape = ParseShape(HeaderField(header, "shape", name), name);
        long count = shape.Aggregate(1L, (a, b) => a * b);
        int dataStart = offset + headerLen;
        (ScalarType type, int size) = descr switch
        {
            "<f4" => (ScalarType.Float32, 4),
            "<f8" => (ScalarType.Float64, 8),
            "<i8" => (ScalarType.Int64, 8),
            "|u1" => (ScalarType.Byte, 1),
            _ => throw new InvalidDataException($"{name}: unsupported dtype '{descr}' (expected <f4, <f8, <i8 or |u1)"),
        };
        if (bytes.Length - dataStart != count * size)
            throw new InvalidDataException($"{name}: expected {count * size} data bytes for shape ({string.Join(", ", shape)}), found {bytes.Length - dataStart}");
        var t = empty(shape, type);
        bytes.AsSpan(dataStart).CopyTo(t.bytes);
        return t;
    }

    private static string HeaderField(string header, string key, string name)
    {
        var m = Regex.Match(header, $"'{key}'\\s*:\\s*('(?<v>[^']*)'|(?<v>\\([^)]*\\))|(?<v>True|False))");
        if (!m.Success) throw new InvalidDataException($"{name}: .npy header lacks '{key}'");
        return m.Groups["v"].Value;
    }

    private static long[] ParseShape(string s, string name) =>
        s.Trim('(', ')').Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
         .Select(p => long.TryParse(p, out var v) ? v : throw new InvalidDataException($"{name}: bad shape '{s}'"))
         .ToArray();
}
