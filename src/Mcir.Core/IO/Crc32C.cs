using System.Numerics;

namespace Mcir.Core.IO;

/// <summary>
/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF) over .NET's
/// <see cref="BitOperations.Crc32C(uint, byte)"/> (SSE4.2/ARM CRC instructions where present). Used for TFRecord framing
/// (TensorBoard event files), which also stores the checksum <see cref="Mask">masked</see>.
/// Check value: CRC-32C("123456789") = 0xE3069283.
/// </summary>
public static class Crc32C
{
    private const uint MaskDelta = 0xA282EAD8u;

    /// <summary>The CRC-32C of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => Append(0, data);

    /// <summary>
    /// Continues a CRC: <c>Append(Compute(a), b) == Compute(a + b)</c>. Start from 0 for an empty prefix.
    /// </summary>
    public static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        uint c = ~crc;
        while (data.Length >= 8)
        {
            c = BitOperations.Crc32C(c, System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[8..];
        }
        foreach (byte b in data) c = BitOperations.Crc32C(c, b);
        return ~c;
    }

    /// <summary>
    /// The masked form stored in TFRecord files (as in LevelDB): rotate right by 15 bits, then add 0xA282EAD8
    /// (mod 2^32). Masking keeps a CRC of data that itself contains CRCs from being degenerate.
    /// </summary>
    public static uint Mask(uint crc) => unchecked(((crc >> 15) | (crc << 17)) + MaskDelta);

    /// <summary>Inverse of <see cref="Mask"/>.</summary>
    public static uint Unmask(uint masked)
    {
        uint rot = unchecked(masked - MaskDelta);
        return (rot >> 17) | (rot << 15);
    }
}
