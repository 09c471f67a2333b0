using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Mcir.Core.Embeddings.Onnx;

/// <summary>
/// Reads ONNX model files (<c>ModelProto</c>) with a small protocol-buffers wire-format reader written against the field
/// numbers of ONNX's public schema (onnx/onnx.proto): model header, opset imports, the main graph's nodes (inputs,
/// outputs, attributes), inputs/outputs with their tensor types and shapes, and initializers (dims, float32 from
/// <c>raw_data</c> or <c>float_data</c>, int64/int32, doubles narrowed to float32). Sub-graphs, sparse initializers,
/// value_info, functions and training info are skipped; external data is refused. Any structural problem (truncated
/// file, wrong wire type, data length not matching dims, no graph) throws <see cref="OnnxFormatException"/>.
/// </summary>
public static class OnnxReader
{
    /// <summary>Reads and parses <paramref name="path"/>.</summary>
    public static OnnxModel Load(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw new FileNotFoundException($"ONNX file not found: {full}", full);
        byte[] bytes = File.ReadAllBytes(full);
        try
        {
            return Parse(bytes, full);
        }
        catch (OnnxFormatException e)
        {
            throw new OnnxFormatException($"'{full}' ({bytes.Length} bytes) is not a readable ONNX model: {e.Message}", e);
        }
    }

    /// <summary>Parses an in-memory ONNX model.</summary>
    public static OnnxModel Parse(ReadOnlyMemory<byte> bytes, string? sourcePath = null)
    {
        if (bytes.Length == 0) throw new OnnxFormatException("empty file (0 bytes)");
        var r = new ProtoWireReader(bytes, "ModelProto");
        long ir = 0;
        string producer = "", producerVersion = "";
        var opsets = new Dictionary<string, long>(StringComparer.Ordinal);
        OnnxGraph? graph = null;
        while (r.TryReadKey(out int field, out var wire))
        {
            switch (field)
            {
                case 1: r.Expect(wire, WireType.Varint, "ir_version"); ir = r.ReadInt64(); break;
                case 2: r.Expect(wire, WireType.LengthDelimited, "producer_name"); producer = r.ReadString(); break;
                case 3: r.Expect(wire, WireType.LengthDelimited, "producer_version"); producerVersion = r.ReadString(); break;
                case 7: r.Expect(wire, WireType.LengthDelimited, "graph"); graph = ReadGraph(r.ReadMessage("GraphProto")); break;
                case 8:
                    r.Expect(wire, WireType.LengthDelimited, "opset_import");
                    var (domain, version) = ReadOpset(r.ReadMessage("OperatorSetIdProto"));
                    opsets[domain == "ai.onnx" ? "" : domain] = version;
                    break;
                default: r.Skip(wire); break;
            }
        }
        if (graph is null) throw new OnnxFormatException("ModelProto has no graph (field 7) — not an ONNX model?");
        if (ir <= 0) throw new OnnxFormatException($"ModelProto has no valid ir_version (got {ir}) — not an ONNX model?");
        return new OnnxModel(ir, producer, producerVersion, opsets, graph, sourcePath);
    }

    private static (string Domain, long Version) ReadOpset(ProtoWireReader r)
    {
        string domain = "";
        long version = 0;
        while (r.TryReadKey(out int field, out var wire))
        {
            if (field == 1 && wire == WireType.LengthDelimited) domain = r.ReadString();
            else if (field == 2 && wire == WireType.Varint) version = r.ReadInt64();
            else r.Skip(wire);
        }
        return (domain, version);
    }

    private static OnnxGraph ReadGraph(ProtoWireReader r)
    {
        string name = "";
        var nodes = new List<OnnxNode>();
        var inputs = new List<OnnxValueInfo>();
        var outputs = new List<OnnxValueInfo>();
        var inits = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal);
        while (r.TryReadKey(out int field, out var wire))
        {
            switch (field)
            {
                case 1: r.Expect(wire, WireType.LengthDelimited, "node"); nodes.Add(ReadNode(r.ReadMessage($"NodeProto #{nodes.Count}"))); break;
                case 2: r.Expect(wire, WireType.LengthDelimited, "name"); name = r.ReadString(); break;
                case 5:
                    r.Expect(wire, WireType.LengthDelimited, "initializer");
                    var t = ReadTensor(r.ReadMessage($"TensorProto (initializer #{inits.Count})"));
                    if (t.Name.Length == 0) throw r.Error($"initializer #{inits.Count} has no name", r.Offset);
                    if (!inits.TryAdd(t.Name, t)) throw r.Error($"duplicate initializer '{t.Name}'", r.Offset);
                    break;
                case 11: r.Expect(wire, WireType.LengthDelimited, "input"); inputs.Add(ReadValueInfo(r.ReadMessage("ValueInfoProto (input)"))); break;
                case 12: r.Expect(wire, WireType.LengthDelimited, "output"); outputs.Add(ReadValueInfo(r.ReadMessage("ValueInfoProto (output)"))); break;
                default: r.Skip(wire); break;
            }
        }
        return new OnnxGraph(name, nodes, inputs, outputs, inits);
    }

    private static OnnxNode ReadNode(ProtoWireReader r)
    {
        var inputs = new List<string>();
        var outputs = new List<string>();
        string name = "", op = "", domain = "";
        var attrs = new Dictionary<string, OnnxAttribute>(StringComparer.Ordinal);
        while (r.TryReadKey(out int field, out var wire))
        {
            switch (field)
            {
                case 1: r.Expect(wire, WireType.LengthDelimited, "input"); inputs.Add(r.ReadString()); break;
                case 2: r.Expect(wire, WireType.LengthDelimited, "output"); outputs.Add(r.ReadString()); break;
                case 3: r.Expect(wire, WireType.LengthDelimited, "name"); name = r.ReadString(); break;
                case 4: r.Expect(wire, WireType.LengthDelimited, "op_type"); op = r.ReadString(); break;
                case 7: r.Expect(wire, WireType.LengthDelimited, "domain"); domain = r.ReadString(); break;
                case 5:
                    r.Expect(wire, WireType.LengthDelimited, "attribute");
                    var a = ReadAttribute(r.ReadMessage("AttributeProto"));
                    attrs[a.Name] = a;
                    break;
                default: r.Skip(wire); break;
            }
        }
        if (op.Length == 0) throw new OnnxFormatException($"node '{name}' has no op_type");
        return new OnnxNode(name, op, domain, inputs, outputs, attrs);
    }

    private static OnnxAttribute ReadAttribute(ProtoWireReader r)
    {
        string name = "";
        var type = OnnxAttributeType.Undefined;
        float f = 0;
        long i = 0;
        byte[]? s = null;
        OnnxTensor? t = null;
        var floats = new List<float>();
        var ints = new List<long>();
        var strings = new List<string>();
        bool hasF = false, hasI = false;
        while (r.TryReadKey(out int field, out var wire))
        {
            switch (field)
            {
                case 1: r.Expect(wire, WireType.LengthDelimited, "name"); name = r.ReadString(); break;
                case 20: r.Expect(wire, WireType.Varint, "type"); type = (OnnxAttributeType)r.ReadInt32(); break;
                case 2: r.Expect(wire, WireType.Fixed32, "f"); f = r.ReadFloat(); hasF = true; break;
                case 3: r.Expect(wire, WireType.Varint, "i"); i = r.ReadInt64(); hasI = true; break;
                case 4: r.Expect(wire, WireType.LengthDelimited, "s"); s = r.ReadBytes().ToArray(); break;
                case 5: r.Expect(wire, WireType.LengthDelimited, "t"); t = ReadTensor(r.ReadMessage("TensorProto (attribute)")); break;
                case 7: r.ReadRepeatedFloat(wire, floats); break;
                case 8: r.ReadRepeatedInt64(wire, ints); break;
                case 9: r.Expect(wire, WireType.LengthDelimited, "strings"); strings.Add(r.ReadString()); break;
                default: r.Skip(wire); break;
            }
        }
        if (type == OnnxAttributeType.Undefined)   // IR < 2: infer from the field present
            type = t is not null ? OnnxAttributeType.Tensor : s is not null ? OnnxAttributeType.String : ints.Count > 0 ? OnnxAttributeType.Ints
                : floats.Count > 0 ? OnnxAttributeType.Floats : strings.Count > 0 ? OnnxAttributeType.Strings
                : hasF ? OnnxAttributeType.Float : hasI ? OnnxAttributeType.Int : OnnxAttributeType.Undefined;
        return new OnnxAttribute(name, type, f, i, s, t, floats.ToArray(), ints.ToArray(), strings.ToArray());
    }

    private static OnnxValueInfo ReadValueInfo(ProtoWireReader r)
    {
        string name = "";
        var elem = OnnxDataType.Undefined;
        List<OnnxDim>? shape = null;
        while (r.TryReadKey(out int field, out var wire))
        {
            if (field == 1 && wire == WireType.LengthDelimited) { name = r.ReadString(); continue; }
            if (field != 2 || wire != WireType.LengthDelimited) { r.Skip(wire); continue; }
            var typeProto = r.ReadMessage("TypeProto");
            while (typeProto.TryReadKey(out int tf, out var tw))
            {
                if (tf != 1 || tw != WireType.LengthDelimited) { typeProto.Skip(tw); continue; }   // only tensor_type
                var tensorType = typeProto.ReadMessage("TypeProto.Tensor");
                while (tensorType.TryReadKey(out int ef, out var ew))
                {
                    if (ef == 1 && ew == WireType.Varint) elem = (OnnxDataType)tensorType.ReadInt32();
                    else if (ef == 2 && ew == WireType.LengthDelimited)
                    {
                        shape = [];
                        var shapeProto = tensorType.ReadMessage("TensorShapeProto");
                        while (shapeProto.TryReadKey(out int sf, out var sw))
                        {
                            if (sf != 1 || sw != WireType.LengthDelimited) { shapeProto.Skip(sw); continue; }
                            var dim = shapeProto.ReadMessage("TensorShapeProto.Dimension");
                            long? value = null;
                            string? param = null;
                            while (dim.TryReadKey(out int df, out var dw))
                            {
                                if (df == 1 && dw == WireType.Varint) value = dim.ReadInt64();
                                else if (df == 2 && dw == WireType.LengthDelimited) param = dim.ReadString();
                                else dim.Skip(dw);
                            }
                            shape.Add(new OnnxDim(value, param));
                        }
                    }
                    else tensorType.Skip(ew);
                }
            }
        }
        return new OnnxValueInfo(name, elem, shape);
    }

    private static OnnxTensor ReadTensor(ProtoWireReader r)
    {
        var dims = new List<long>();
        var type = OnnxDataType.Undefined;
        string name = "";
        ReadOnlyMemory<byte>? raw = null;
        var floatChunks = new List<ReadOnlyMemory<byte>>();
        var floats = new List<float>();
        var doubles = new List<double>();
        var ints = new List<long>();
        bool external = false;
        long start = r.Offset;
        while (r.TryReadKey(out int field, out var wire))
        {
            switch (field)
            {
                case 1: r.ReadRepeatedInt64(wire, dims); break;
                case 2: r.Expect(wire, WireType.Varint, "data_type"); type = (OnnxDataType)r.ReadInt32(); break;
                case 4:
                    if (wire == WireType.LengthDelimited)
                    {
                        var bytes = r.ReadBytes(out long at);
                        if (bytes.Length % 4 != 0) throw r.Error($"float_data of {bytes.Length} bytes is not a multiple of 4", at);
                        floatChunks.Add(bytes);
                    }
                    else r.ReadRepeatedFloat(wire, floats);
                    break;
                case 5: case 7: r.ReadRepeatedInt64(wire, ints); break;   // int32_data (varints) / int64_data
                case 8: r.Expect(wire, WireType.LengthDelimited, "name"); name = r.ReadString(); break;
                case 9: r.Expect(wire, WireType.LengthDelimited, "raw_data"); raw = r.ReadBytes(); break;
                case 10: r.ReadRepeatedDouble(wire, doubles); break;
                case 13: r.Skip(wire); external = true; break;
                case 14: r.Expect(wire, WireType.Varint, "data_location"); external |= r.ReadInt64() == 1; break;
                default: r.Skip(wire); break;
            }
        }
        string label = name.Length > 0 ? $"tensor '{name}'" : "tensor";
        if (external)
            throw new OnnxFormatException($"{label} keeps its data in an external file (external_data) — not supported; save the model with its data inside.");
        if (dims.Any(d => d < 0)) throw new OnnxFormatException($"{label} has a negative dimension [{string.Join(", ", dims)}].");
        long count = dims.Aggregate(1L, (a, d) => a * d);
        Lazy<float[]?>? lazy = null;
        float[]? fdata = null;
        long[]? idata = null;
        switch (type)
        {
            case OnnxDataType.Float:
                if (raw is { } rf)
                {
                    if (rf.Length != count * 4) throw new OnnxFormatException($"{label}: raw_data has {rf.Length} bytes, dims [{string.Join(", ", dims)}] need {count * 4} (float32).");
                    lazy = new Lazy<float[]?>(() => DecodeFloats(rf.Span));
                }
                else
                {
                    long n = floatChunks.Sum(c => (long)c.Length / 4) + floats.Count;
                    if (n != count) throw new OnnxFormatException($"{label}: float_data has {n} values, dims [{string.Join(", ", dims)}] need {count}.");
                    if (floatChunks.Count == 1 && floats.Count == 0)
                    {
                        var chunk = floatChunks[0];
                        lazy = new Lazy<float[]?>(() => DecodeFloats(chunk.Span));
                    }
                    else fdata = [.. floatChunks.SelectMany(c => DecodeFloats(c.Span)), .. floats];
                }
                break;
            case OnnxDataType.Double:
                if (raw is { } rd)
                {
                    if (rd.Length != count * 8) throw new OnnxFormatException($"{label}: raw_data has {rd.Length} bytes, dims need {count * 8} (float64).");
                    fdata = new float[count];
                    for (int k = 0; k < count; k++) fdata[k] = (float)BinaryPrimitives.ReadDoubleLittleEndian(rd.Span[(k * 8)..]);
                }
                else
                {
                    if (doubles.Count != count) throw new OnnxFormatException($"{label}: double_data has {doubles.Count} values, dims need {count}.");
                    fdata = doubles.Select(d => (float)d).ToArray();
                }
                break;
            case OnnxDataType.Int64:
            case OnnxDataType.Int32:
                int width = type == OnnxDataType.Int64 ? 8 : 4;
                if (raw is { } ri)
                {
                    if (ri.Length != count * width) throw new OnnxFormatException($"{label}: raw_data has {ri.Length} bytes, dims need {count * width} ({type}).");
                    idata = new long[count];
                    for (int k = 0; k < count; k++)
                        idata[k] = width == 8 ? BinaryPrimitives.ReadInt64LittleEndian(ri.Span[(k * 8)..]) : BinaryPrimitives.ReadInt32LittleEndian(ri.Span[(k * 4)..]);
                }
                else
                {
                    if (ints.Count != count) throw new OnnxFormatException($"{label}: {(width == 8 ? "int64_data" : "int32_data")} has {ints.Count} values, dims need {count}.");
                    idata = width == 8 ? ints.ToArray() : ints.Select(v => (long)(int)v).ToArray();
                }
                break;
            case OnnxDataType.Undefined:
                throw new OnnxFormatException($"{label} has no data_type (TensorProto starting at byte {start}).");
            default:
                break;   // kept as type + dims only; a node that needs the values says so
        }
        return new OnnxTensor(name, type, dims.ToArray(), lazy ?? new Lazy<float[]?>(fdata), idata);
    }

    private static float[] DecodeFloats(ReadOnlySpan<byte> bytes)
    {
        var result = new float[bytes.Length / 4];
        if (BitConverter.IsLittleEndian) bytes.CopyTo(MemoryMarshal.AsBytes(result.AsSpan()));
        else for (int k = 0; k < result.Length; k++) result[k] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(k * 4)..]);
        return result;
    }
}
