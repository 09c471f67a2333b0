namespace Mcir.Core.IO;

/// <summary>
/// CRC-32C (Castagnoli): reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF. Table-driven
/// (one 256-entry table). Used for TFRecord framing (TensorBoard event files), which also stores the checksum
/// <see cref="Mask">masked</see>. Check value: CRC-32C("123456789") = 0xE3069283.
/// </summary>
public static class Crc32C
{
    private const uint Polynomial = 0x82F63B78u;
    private const uint MaskDelta = 0xA282EAD8u;
    private static readonly uint[] Table = BuildTable();

    /// <summary>The CRC-32C of <paramref name="data"/>.</summary>
    public static uint Compute(ReadOnlySpan<byte> data) => Append(0, data);

    /// <summary>
    /// Continues a CRC: <c>Append(Compute(a), b) == Compute(a + b)</c>. Start from 0 for an empty prefix.
    /// </summary>
    public static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        uint c = ~crc;
        foreach (byte b in data) c = Table[(c ^ b) & 0xFF] ^ (c >> 8);
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

    private static uint[] BuildTable()
    {
        var table = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? (c >> 1) ^ Polynomial : c >> 1;
            table[i] = c;
        }
        return table;
    }
}
