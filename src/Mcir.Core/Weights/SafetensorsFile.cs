using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using static TorchSharp.torch;

namespace Mcir.Core.Weights;

/// <summary>
/// Named tensors (owned by this object, in file order) plus string metadata: the content of a safetensors file
/// (<see cref="SafetensorsFile"/>). The checkpoint files of a run (<c>model.safetensors</c>, <c>ema.safetensors</c>,
/// <c>negatives.safetensors</c>) and exported <c>.safetensors</c> state dicts are such files.
/// </summary>
public sealed class TensorFile : IDisposable
{
    /// <summary>Creates the content; the tensors become owned by it.</summary>
    public TensorFile(IReadOnlyList<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        Tensors = tensors;
        Metadata = metadata;
    }

    /// <summary>Tensors in file order.</summary>
    public IReadOnlyList<KeyValuePair<string, Tensor>> Tensors { get; }

    /// <summary>The <c>__metadata__</c> map (string → string).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Disposes every tensor.</summary>
    public void Dispose()
    {
        foreach (var kv in Tensors) kv.Value.Dispose();
    }
}

/// <summary>
/// Reads and writes <see cref="TensorFile"/> as a <b>safetensors</b> file, so it can also be opened with
/// Python's <c>safetensors.torch.load_file</c> (<c>safe_open(...).metadata()</c> gives the metadata).
/// <para>Layout (the safetensors specification): 8 bytes little-endian u64 N = header length; N bytes of UTF-8
/// JSON, padded with spaces to a multiple of 8; then the raw tensor bytes. The JSON maps every tensor name to
/// <c>{"dtype": "F32"|"F64"|"F16"|"BF16"|"I64"|"I32"|"I16"|"I8"|"U8"|"BOOL", "shape": [...],
/// "data_offsets": [begin, end]}</c> (offsets relative to the start of the data, C order, little-endian, packed
/// in file order without gaps) and holds <c>"__metadata__"</c>, a string → string map.</para>
/// <para>Files are written atomically: to a temporary file in the same folder, flushed to disk, then renamed over
/// the destination. Truncated or malformed files are refused with <see cref="InvalidDataException"/>.</para>
/// </summary>
public static class SafetensorsFile
{
    private const string MetadataKey = "__metadata__";

    /// <summary>Writes <paramref name="state"/> to <paramref name="path"/> atomically (temp file + rename).</summary>
    public static void Write(string path, TensorFile state)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full) ?? ".";
        Directory.CreateDirectory(dir);
        string tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                Write(fs, state);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>Writes <paramref name="state"/> to <paramref name="stream"/> (left open).</summary>
    public static void Write(Stream stream, TensorFile state)
    {
        var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteStartObject(MetadataKey);
            foreach (var kv in state.Metadata) json.WriteString(kv.Key, kv.Value);
            json.WriteEndObject();
            long offset = 0;
            foreach (var (name, t) in state.Tensors)
            {
                if (name == MetadataKey) throw new ArgumentException($"tensor name '{MetadataKey}' is reserved");
                long length = t.NumberOfElements * t.ElementSize;
                json.WriteStartObject(name);
                json.WriteString("dtype", DTypeName(t.dtype, name));
                json.WriteStartArray("shape");
                foreach (long d in t.shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + length);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += length;
            }
            json.WriteEndObject();
        }
        int pad = (int)((8 - buffer.Length % 8) % 8);
        for (int i = 0; i < pad; i++) buffer.WriteByte((byte)' ');
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)buffer.Length);
        stream.Write(len);
        buffer.Position = 0;
        buffer.CopyTo(stream);
        foreach (var (_, t) in state.Tensors)
        {
            using var scope = NewDisposeScope();
            stream.Write(t.detach().cpu().contiguous().bytes);
        }
        stream.Flush();
    }

    /// <summary>
    /// Reads a safetensors file (any writer's: the tensors must be packed without gaps, as the specification's writers
    /// do); the caller owns the result. Errors are <see cref="InvalidDataException"/>s starting with
    /// <c>{what} '{path}' cannot be read: </c>.
    /// </summary>
    public static TensorFile Read(string path, string what = "safetensors file", Func<string, bool>? include = null)
    {
        FileStream fs;
        try { fs = File.OpenRead(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new InvalidDataException($"{what} '{path}' cannot be read: {e.Message}", e); }
        using (fs) return Read(fs, path, what, include);
    }

    /// <summary>
    /// Reads a safetensors file from <paramref name="stream"/> (left open); <paramref name="name"/> appears in errors.
    /// <paramref name="include"/>, when given, selects the tensors to read by name (the others are skipped unread).
    /// </summary>
    public static TensorFile Read(Stream stream, string name = "<stream>", string what = "safetensors file", Func<string, bool>? include = null)
    {
        string where = $"{what} '{name}' cannot be read";
        var entries = ReadHeader(stream, where, out var metadata);
        entries.Sort((a, b) => a.Begin.CompareTo(b.Begin));
        long dataLength = entries.Count == 0 ? 0 : entries[^1].End;
        if (stream.CanSeek && stream.Length - stream.Position < dataLength)
            throw new InvalidDataException($"{where}: truncated file: tensor data needs {dataLength} bytes after the header, only {stream.Length - stream.Position} present");

        var tensors = new List<KeyValuePair<string, Tensor>>();
        try
        {
            long pos = 0;
            foreach (var (ename, type, shape, begin, end) in entries)
            {
                if (begin != pos) throw new InvalidDataException($"{where}: tensor '{ename}' data does not follow the previous tensor (gap or overlap at byte {begin})");
                long count = shape.Aggregate(1L, (a, b) => checked(a * b));
                if (include is not null && !include(ename))
                {
                    Skip(stream, end - begin, where, ename);
                    pos = end;
                    continue;
                }
                var t = empty(shape, type);
                tensors.Add(new(ename, t));
                long expected = count * t.ElementSize;
                if (end - begin != expected)
                    throw new InvalidDataException($"{where}: tensor '{ename}' has {end - begin} data bytes, shape ({string.Join(", ", shape)}) needs {expected}");
                if (expected > int.MaxValue) throw new InvalidDataException($"{where}: tensor '{ename}' is larger than 2 GB, not supported");
                var data = new byte[expected];
                if (ReadFully(stream, data) != data.Length)
                    throw new InvalidDataException($"{where}: truncated file: tensor '{ename}' needs {expected} bytes");
                t.bytes = data;
                pos = end;
            }
        }
        catch
        {
            foreach (var kv in tensors) kv.Value.Dispose();
            throw;
        }
        return new TensorFile(tensors, metadata);
    }

    /// <summary>
    /// The tensor names, dtypes and shapes of a safetensors file (its header only; no tensor data is read), in the
    /// order of the header. Errors as <see cref="Read(string, string, Func{string, bool})"/>.
    /// </summary>
    public static IReadOnlyList<(string Name, ScalarType DType, long[] Shape)> ReadHeader(string path, string what = "safetensors file")
    {
        string where = $"{what} '{path}' cannot be read";
        FileStream fs;
        try { fs = File.OpenRead(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new InvalidDataException($"{where}: {e.Message}", e); }
        using (fs) return ReadHeader(fs, where, out _).Select(e => (e.Name, e.Type, e.Shape)).ToList();
    }

    /// <summary>
    /// The <c>__metadata__</c> of a safetensors file (string → string; empty when it has none), from its header only.
    /// Errors as <see cref="Read(string, string, Func{string, bool})"/>.
    /// </summary>
    public static IReadOnlyDictionary<string, string> ReadMetadata(string path, string what = "safetensors file")
    {
        string where = $"{what} '{path}' cannot be read";
        FileStream fs;
        try { fs = File.OpenRead(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new InvalidDataException($"{where}: {e.Message}", e); }
        using (fs)
        {
            ReadHeader(fs, where, out var metadata);
            return metadata;
        }
    }

    private static List<(string Name, ScalarType Type, long[] Shape, long Begin, long End)> ReadHeader(Stream stream, string where, out Dictionary<string, string> metadata)
    {
        Span<byte> len = stackalloc byte[8];
        if (ReadFully(stream, len) != 8) throw new InvalidDataException($"{where}: truncated or empty file (no 8-byte safetensors header length)");
        ulong headerLen = BinaryPrimitives.ReadUInt64LittleEndian(len);
        if (headerLen < 2 || headerLen > 100_000_000)
            throw new InvalidDataException($"{where}: not a safetensors file (header length {headerLen})");
        if (stream.CanSeek && stream.Length - stream.Position < (long)headerLen)
            throw new InvalidDataException($"{where}: truncated file: the header needs {headerLen} bytes, only {stream.Length - stream.Position} remain");
        var header = new byte[headerLen];
        if (ReadFully(stream, header) != header.Length)
            throw new InvalidDataException($"{where}: truncated file: the header needs {headerLen} bytes");

        metadata = new Dictionary<string, string>();
        var entries = new List<(string Name, ScalarType Type, long[] Shape, long Begin, long End)>();
        try
        {
            using var doc = JsonDocument.Parse(header);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{where}: header is not a JSON object");
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (p.Name == MetadataKey)
                {
                    foreach (var m in p.Value.EnumerateObject()) metadata[m.Name] = m.Value.GetString() ?? "";
                    continue;
                }
                var type = DType(p.Value.GetProperty("dtype").GetString() ?? "", where, p.Name);
                long[] shape = p.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                long[] offs = p.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
                if (offs.Length != 2 || offs[0] < 0 || offs[1] < offs[0])
                    throw new InvalidDataException($"{where}: tensor '{p.Name}' has invalid data_offsets");
                entries.Add((p.Name, type, shape, offs[0], offs[1]));
            }
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{where}: malformed safetensors header: {e.Message}", e);
        }

        return entries;
    }

    private static void Skip(Stream s, long count, string where, string tensor)
    {
        if (s.CanSeek)
        {
            if (s.Length - s.Position < count) throw new InvalidDataException($"{where}: truncated file: tensor '{tensor}' needs {count} bytes");
            s.Seek(count, SeekOrigin.Current);
            return;
        }
        var buffer = new byte[1 << 16];
        while (count > 0)
        {
            int n = s.Read(buffer, 0, (int)Math.Min(buffer.Length, count));
            if (n == 0) throw new InvalidDataException($"{where}: truncated file: tensor '{tensor}' needs {count} more bytes");
            count -= n;
        }
    }

    private static int ReadFully(Stream s, Span<byte> buffer)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int n = s.Read(buffer[total..]);
            if (n == 0) break;
            total += n;
        }
        return total;
    }

    private static string DTypeName(ScalarType t, string name) => t switch
    {
        ScalarType.Float32 => "F32",
        ScalarType.Float64 => "F64",
        ScalarType.Float16 => "F16",
        ScalarType.BFloat16 => "BF16",
        ScalarType.Int64 => "I64",
        ScalarType.Int32 => "I32",
        ScalarType.Int16 => "I16",
        ScalarType.Int8 => "I8",
        ScalarType.Byte => "U8",
        ScalarType.Bool => "BOOL",
        _ => throw new NotSupportedException($"tensor '{name}': dtype {t} cannot be stored in safetensors"),
    };

    internal static ScalarType DType(string name, string where, string tensor) => name switch
    {
        "F32" => ScalarType.Float32,
        "F64" => ScalarType.Float64,
        "F16" => ScalarType.Float16,
        "BF16" => ScalarType.BFloat16,
        "I64" => ScalarType.Int64,
        "I32" => ScalarType.Int32,
        "I16" => ScalarType.Int16,
        "I8" => ScalarType.Int8,
        "U8" => ScalarType.Byte,
        "BOOL" => ScalarType.Bool,
        _ => throw new InvalidDataException($"{where}: tensor '{tensor}' has unsupported dtype '{name}'"),
    };
}
