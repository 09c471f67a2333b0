using System.Buffers.Binary;
using System.Text;

namespace Mcir.Core.Embeddings.Onnx;

/// <summary>Protocol-buffers wire types (the low 3 bits of a field key).</summary>
internal enum WireType
{
    Varint = 0,
    Fixed64 = 1,
    LengthDelimited = 2,
    StartGroup = 3,
    EndGroup = 4,
    Fixed32 = 5,
}

/// <summary>
/// A minimal reader of the protocol-buffers wire format over a byte buffer (enough for ONNX's messages): varints, fixed
/// 32/64-bit values, length-delimited fields (sub-messages, strings, bytes, packed repeated scalars), skipping unknown
/// fields. Every read is bounds-checked; a truncated or corrupt buffer throws <see cref="OnnxFormatException"/> naming
/// the message being read and the absolute byte offset.
/// </summary>
internal struct ProtoWireReader
{
    private readonly ReadOnlyMemory<byte> _buffer;
    private readonly long _baseOffset;
    private readonly string _context;
    private int _pos;

    public ProtoWireReader(ReadOnlyMemory<byte> buffer, string context, long baseOffset = 0)
    {
        _buffer = buffer;
        _context = context;
        _baseOffset = baseOffset;
        _pos = 0;
    }

    public readonly bool End => _pos >= _buffer.Length;

    /// <summary>Absolute offset (in the file) of the next byte.</summary>
    public readonly long Offset => _baseOffset + _pos;

    /// <summary>Reads the next field key; returns false at the end of the message.</summary>
    public bool TryReadKey(out int field, out WireType wire)
    {
        if (End) { field = 0; wire = 0; return false; }
        long start = Offset;
        ulong key = ReadVarint();
        field = (int)(key >> 3);
        wire = (WireType)(key & 7);
        if (field <= 0 || key >> 3 > int.MaxValue)
            throw Error($"invalid field number {key >> 3}", start);
        if (wire is WireType.StartGroup or WireType.EndGroup || (int)wire > 5)
            throw Error($"unsupported wire type {(int)wire} for field {field}", start);
        return true;
    }

    public ulong ReadVarint()
    {
        var span = _buffer.Span;
        ulong result = 0;
        int shift = 0;
        long start = Offset;
        while (true)
        {
            if (_pos >= span.Length) throw Error("truncated varint", start);
            byte b = span[_pos++];
            if (shift == 63 && b > 1) throw Error("varint longer than 64 bits", start);
            result |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80) return result;
            shift += 7;
            if (shift > 63) throw Error("varint longer than 10 bytes", start);
        }
    }

    public long ReadInt64() => (long)ReadVarint();

    public int ReadInt32() => (int)(long)ReadVarint();

    public float ReadFloat() => BinaryPrimitives.ReadSingleLittleEndian(Take(4, "fixed32").Span);

    public double ReadDouble() => BinaryPrimitives.ReadDoubleLittleEndian(Take(8, "fixed64").Span);

    /// <summary>A length-delimited field's payload.</summary>
    public ReadOnlyMemory<byte> ReadBytes(out long payloadOffset)
    {
        long start = Offset;
        ulong len = ReadVarint();
        if (len > (ulong)(_buffer.Length - _pos))
            throw Error($"length-delimited field of {len} bytes runs past the end ({_buffer.Length - _pos} bytes left) — truncated file?", start);
        payloadOffset = Offset;
        return Take((int)len, "bytes");
    }

    public ReadOnlyMemory<byte> ReadBytes() => ReadBytes(out _);

    public string ReadString() => Encoding.UTF8.GetString(ReadBytes().Span);

    /// <summary>A sub-message reader over the next length-delimited field.</summary>
    public ProtoWireReader ReadMessage(string context)
    {
        var bytes = ReadBytes(out long at);
        return new ProtoWireReader(bytes, context, at);
    }

    /// <summary>A repeated int64 field element or packed run, appended to <paramref name="into"/>.</summary>
    public void ReadRepeatedInt64(WireType wire, List<long> into)
    {
        if (wire == WireType.Varint) { into.Add(ReadInt64()); return; }
        Expect(wire, WireType.LengthDelimited, "repeated int64");
        var packed = new ProtoWireReader(ReadBytes(out long at), _context, at);
        while (!packed.End) into.Add(packed.ReadInt64());
    }

    /// <summary>A repeated float field element or packed run, appended to <paramref name="into"/>.</summary>
    public void ReadRepeatedFloat(WireType wire, List<float> into)
    {
        if (wire == WireType.Fixed32) { into.Add(ReadFloat()); return; }
        Expect(wire, WireType.LengthDelimited, "repeated float");
        var bytes = ReadBytes(out long at);
        if (bytes.Length % 4 != 0) throw Error($"packed float run of {bytes.Length} bytes is not a multiple of 4", at);
        var span = bytes.Span;
        into.EnsureCapacity(into.Count + bytes.Length / 4);
        for (int i = 0; i < span.Length; i += 4) into.Add(BinaryPrimitives.ReadSingleLittleEndian(span[i..]));
    }

    /// <summary>A repeated double field element or packed run.</summary>
    public void ReadRepeatedDouble(WireType wire, List<double> into)
    {
        if (wire == WireType.Fixed64) { into.Add(ReadDouble()); return; }
        Expect(wire, WireType.LengthDelimited, "repeated double");
        var bytes = ReadBytes(out long at);
        if (bytes.Length % 8 != 0) throw Error($"packed double run of {bytes.Length} bytes is not a multiple of 8", at);
        var span = bytes.Span;
        for (int i = 0; i < span.Length; i += 8) into.Add(BinaryPrimitives.ReadDoubleLittleEndian(span[i..]));
    }

    public void Skip(WireType wire)
    {
        switch (wire)
        {
            case WireType.Varint: ReadVarint(); break;
            case WireType.Fixed64: Take(8, "fixed64"); break;
            case WireType.Fixed32: Take(4, "fixed32"); break;
            case WireType.LengthDelimited: ReadBytes(); break;
            default: throw Error($"cannot skip wire type {(int)wire}", Offset);
        }
    }

    /// <summary>Throws unless the field has the expected wire type.</summary>
    public readonly void Expect(WireType actual, WireType expected, string what)
    {
        if (actual != expected)
            throw Error($"{what}: wire type {(int)actual}, expected {(int)expected}", Offset);
    }

    public readonly OnnxFormatException Error(string message, long offset) =>
        new($"{_context}: {message} (at byte {offset}).");

    private ReadOnlyMemory<byte> Take(int count, string what)
    {
        if (count < 0 || count > _buffer.Length - _pos)
            throw Error($"truncated {what}: needs {count} bytes, {_buffer.Length - _pos} left", Offset);
        var slice = _buffer.Slice(_pos, count);
        _pos += count;
        return slice;
    }
}
