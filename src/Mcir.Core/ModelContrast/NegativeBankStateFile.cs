using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using static TorchSharp.torch;

namespace Mcir.Core.ModelContrast;

/// <summary>
/// A snapshot of a <see cref="NegativeBank"/>: named tensors (copies, owned by this object) plus string metadata.
/// Produced by <see cref="NegativeBank.CaptureState"/> and consumed by <see cref="NegativeBank.RestoreState"/>,
/// so a checkpoint writer can embed it in its own container; <see cref="NegativeBankStateFile"/> writes it as a
/// standalone file.
/// </summary>
public sealed class NegativeBankState : IDisposable
{
    /// <summary>Creates a snapshot; the tensors become owned by it.</summary>
    public NegativeBankState(IReadOnlyList<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        Tensors = tensors;
        Metadata = metadata;
    }

    /// <summary>Tensors in file order (keys <c>negatives.{j}.{state_dict key}</c>).</summary>
    public IReadOnlyList<KeyValuePair<string, Tensor>> Tensors { get; }

    /// <summary>Bank settings and schedule position (see <see cref="NegativeBankStateFile"/> for the keys).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Disposes every tensor of the snapshot.</summary>
    public void Dispose()
    {
        foreach (var kv in Tensors) kv.Value.Dispose();
    }
}

/// <summary>
/// Reads and writes <see cref="NegativeBankState"/> as a <b>safetensors</b> file, so it can also be opened with
/// Python's <c>safetensors.torch.load_file</c> (<c>safe_open(...).metadata()</c> gives the metadata).
/// <para>Layout (the safetensors specification): 8 bytes little-endian u64 N = header length; N bytes of UTF-8
/// JSON, padded with spaces to a multiple of 8; then the raw tensor bytes. The JSON maps every tensor name to
/// <c>{"dtype": "F32"|"F64"|"F16"|"BF16"|"I64"|"I32"|"I16"|"I8"|"U8"|"BOOL", "shape": [...],
/// "data_offsets": [begin, end]}</c> (offsets relative to the start of the data, C order, little-endian, packed
/// in file order without gaps) and holds <c>"__metadata__"</c>, a string → string map.</para>
/// <para>Negative-bank content: tensor <c>negatives.{j}.{key}</c> for every entry of negative j's
/// <c>state_dict()</c> (parameters and buffers); metadata <c>format</c> = <c>mcir.negative_bank</c>,
/// <c>format_version</c> = <c>1</c>, <c>kind</c>, <c>init</c>, <c>schedule_order</c>, <c>count</c> (K),
/// <c>neg_start</c>, <c>steps</c> and <c>decays</c> (comma-separated per negative, decays in round-trip notation),
/// <c>last_iteration</c> (0 before the first iteration), <c>update_counts</c> and
/// <c>last_update_iterations</c> (comma-separated per negative).</para>
/// <para>Files are written atomically: to a temporary file in the same folder, flushed to disk, then renamed over
/// the destination. Truncated or malformed files are refused with <see cref="InvalidDataException"/>.</para>
/// </summary>
public static class NegativeBankStateFile
{
    private const string MetadataKey = "__metadata__";

    /// <summary>Writes <paramref name="state"/> to <paramref name="path"/> atomically (temp file + rename).</summary>
    public static void Write(string path, NegativeBankState state)
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
    public static void Write(Stream stream, NegativeBankState state)
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

    /// <summary>Reads a state written by <see cref="Write(string, NegativeBankState)"/>; the caller owns the result.</summary>
    public static NegativeBankState Read(string path)
    {
        FileStream fs;
        try { fs = File.OpenRead(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new InvalidDataException($"negative bank state '{path}': cannot open: {e.Message}", e); }
        using (fs) return Read(fs, path);
    }

    /// <summary>Reads a state from <paramref name="stream"/> (left open); <paramref name="name"/> appears in errors.</summary>
    public static NegativeBankState Read(Stream stream, string name = "<stream>")
    {
        string where = $"negative bank state '{name}'";
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

        var metadata = new Dictionary<string, string>();
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
        return new NegativeBankState(tensors, metadata);
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
