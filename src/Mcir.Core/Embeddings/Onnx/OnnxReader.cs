using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using Google.Protobuf;
using Onnx;

namespace Mcir.Core.Embeddings.Onnx;

/// <summary>
/// Reads ONNX model files (<c>ModelProto</c>): the bytes are parsed by Google.Protobuf into the messages generated from
/// ONNX's schema (onnx/onnx.proto3, IR version 10) that the OnnxSharp package ships (<see cref="ModelProto"/> …), then
/// mapped to <see cref="OnnxModel"/>: model header, opset imports, the main graph's nodes (inputs, outputs, attributes),
/// inputs/outputs with their tensor types and shapes, and initializers (dims, float32 from <c>raw_data</c> or
/// <c>float_data</c>, int64/int32, doubles narrowed to float32). Sub-graphs, sparse initializers, value_info, functions
/// and training info are ignored; external data is refused. Any structural problem (truncated or corrupt protobuf, data
/// length not matching dims, no graph) throws <see cref="OnnxFormatException"/>.
/// </summary>
public static class OnnxReader
{
    /// <summary>Reads and parses <paramref name="path"/>.</summary>
    /// <exception cref="FileNotFoundException">No file at <paramref name="path"/>.</exception>
    /// <exception cref="OnnxFormatException">Not a readable ONNX model; one line naming the file and the problem.</exception>
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
    /// <exception cref="OnnxFormatException">Not a readable ONNX model (one line saying what is wrong).</exception>
    public static OnnxModel Parse(ReadOnlyMemory<byte> bytes, string? sourcePath = null)
    {
        if (bytes.Length == 0) throw new OnnxFormatException("empty file (0 bytes)");
        var proto = Decode(bytes);
        if (proto.Graph is null) throw new OnnxFormatException("ModelProto has no graph (field 7) — not an ONNX model?");
        if (proto.IrVersion <= 0) throw new OnnxFormatException($"ModelProto has no valid ir_version (got {proto.IrVersion}) — not an ONNX model?");
        var opsets = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var o in proto.OpsetImport) opsets[o.Domain == "ai.onnx" ? "" : o.Domain] = o.Version;
        return new OnnxModel(proto.IrVersion, proto.ProducerName, proto.ProducerVersion, opsets, ReadGraph(proto.Graph), sourcePath);
    }

    /// <summary>The protobuf parse; its errors become one-line <see cref="OnnxFormatException"/>s.</summary>
    private static ModelProto Decode(ReadOnlyMemory<byte> bytes)
    {
        var input = MemoryMarshal.TryGetArray(bytes, out var segment)
            ? new CodedInputStream(segment.Array!, segment.Offset, segment.Count)
            : new CodedInputStream(bytes.ToArray());
        var model = new ModelProto();
        try
        {
            model.MergeFrom(input);
            return model;
        }
        catch (Exception e) when (e is InvalidProtocolBufferException or DecoderFallbackException)
        {
            // Google.Protobuf's messages run over two sentences with double spaces: keep them on one line.
            string message = string.Join(' ', e.Message.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)).TrimEnd('.');
            throw new OnnxFormatException($"ModelProto: {message}.", e);
        }
    }

    private static OnnxGraph ReadGraph(GraphProto g)
    {
        var nodes = g.Node.Select(ReadNode).ToList();
        var inits = new Dictionary<string, OnnxTensor>(StringComparer.Ordinal);
        foreach (var init in g.Initializer)
        {
            var t = ReadTensor(init);
            if (t.Name.Length == 0) throw new OnnxFormatException($"GraphProto: initializer #{inits.Count} has no name.");
            if (!inits.TryAdd(t.Name, t)) throw new OnnxFormatException($"GraphProto: duplicate initializer '{t.Name}'.");
        }
        return new OnnxGraph(g.Name, nodes, g.Input.Select(ReadValueInfo).ToList(), g.Output.Select(ReadValueInfo).ToList(), inits);
    }

    private static OnnxNode ReadNode(NodeProto n)
    {
        if (n.OpType.Length == 0) throw new OnnxFormatException($"node '{n.Name}' has no op_type");
        var attrs = new Dictionary<string, OnnxAttribute>(StringComparer.Ordinal);
        foreach (var a in n.Attribute) attrs[a.Name] = ReadAttribute(a);
        return new OnnxNode(n.Name, n.OpType, n.Domain, [.. n.Input], [.. n.Output], attrs);
    }

    private static OnnxAttribute ReadAttribute(AttributeProto a)
    {
        var type = (OnnxAttributeType)(int)a.Type;
        if (type == OnnxAttributeType.Undefined)   // IR < 2: infer from the field present
            type = a.T is not null ? OnnxAttributeType.Tensor : !a.S.IsEmpty ? OnnxAttributeType.String : a.Ints.Count > 0 ? OnnxAttributeType.Ints
                : a.Floats.Count > 0 ? OnnxAttributeType.Floats : a.Strings.Count > 0 ? OnnxAttributeType.Strings
                : a.F != 0 ? OnnxAttributeType.Float : a.I != 0 ? OnnxAttributeType.Int : OnnxAttributeType.Undefined;
        byte[]? s = type == OnnxAttributeType.String || !a.S.IsEmpty ? a.S.ToByteArray() : null;
        return new OnnxAttribute(a.Name, type, a.F, a.I, s, a.T is null ? null : ReadTensor(a.T),
            [.. a.Floats], [.. a.Ints], [.. a.Strings.Select(b => b.ToStringUtf8())]);
    }

    private static OnnxValueInfo ReadValueInfo(ValueInfoProto v)
    {
        var tensorType = v.Type?.ValueCase == TypeProto.ValueOneofCase.TensorType ? v.Type.TensorType : null;   // only tensor_type
        var elem = (OnnxDataType)(tensorType?.ElemType ?? 0);
        List<OnnxDim>? shape = tensorType?.Shape?.Dim.Select(d => new OnnxDim(
            d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue ? d.DimValue : null,
            d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimParam ? d.DimParam : null)).ToList();
        return new OnnxValueInfo(v.Name, elem, shape);
    }

    private static OnnxTensor ReadTensor(TensorProto t)
    {
        var type = (OnnxDataType)t.DataType;
        long[] dims = [.. t.Dims];
        string label = t.Name.Length > 0 ? $"tensor '{t.Name}'" : "tensor";
        if (t.ExternalData.Count > 0 || t.DataLocation == TensorProto.Types.DataLocation.External)
            throw new OnnxFormatException($"{label} keeps its data in an external file (external_data) — not supported; save the model with its data inside.");
        if (dims.Any(d => d < 0)) throw new OnnxFormatException($"{label} has a negative dimension [{string.Join(", ", dims)}].");
        long count = dims.Aggregate(1L, (a, d) => a * d);
        bool hasRaw = !t.RawData.IsEmpty;
        var raw = t.RawData;
        Lazy<float[]?>? lazy = null;
        float[]? fdata = null;
        long[]? idata = null;
        switch (type)
        {
            case OnnxDataType.Float:
                if (hasRaw)
                {
                    if (raw.Length != count * 4) throw new OnnxFormatException($"{label}: raw_data has {raw.Length} bytes, dims [{string.Join(", ", dims)}] need {count * 4} (float32).");
                    lazy = new Lazy<float[]?>(() => DecodeFloats(raw.Span));
                }
                else
                {
                    if (t.FloatData.Count != count) throw new OnnxFormatException($"{label}: float_data has {t.FloatData.Count} values, dims [{string.Join(", ", dims)}] need {count}.");
                    var floatData = t.FloatData;
                    lazy = new Lazy<float[]?>(() => [.. floatData]);
                }
                break;
            case OnnxDataType.Double:
                if (hasRaw)
                {
                    if (raw.Length != count * 8) throw new OnnxFormatException($"{label}: raw_data has {raw.Length} bytes, dims need {count * 8} (float64).");
                    fdata = new float[count];
                    for (int k = 0; k < count; k++) fdata[k] = (float)BinaryPrimitives.ReadDoubleLittleEndian(raw.Span[(k * 8)..]);
                }
                else
                {
                    if (t.DoubleData.Count != count) throw new OnnxFormatException($"{label}: double_data has {t.DoubleData.Count} values, dims need {count}.");
                    fdata = t.DoubleData.Select(d => (float)d).ToArray();
                }
                break;
            case OnnxDataType.Int64:
            case OnnxDataType.Int32:
                int width = type == OnnxDataType.Int64 ? 8 : 4;
                if (hasRaw)
                {
                    if (raw.Length != count * width) throw new OnnxFormatException($"{label}: raw_data has {raw.Length} bytes, dims need {count * width} ({type}).");
                    idata = new long[count];
                    for (int k = 0; k < count; k++)
                        idata[k] = width == 8 ? BinaryPrimitives.ReadInt64LittleEndian(raw.Span[(k * 8)..]) : BinaryPrimitives.ReadInt32LittleEndian(raw.Span[(k * 4)..]);
                }
                else if (width == 8)
                {
                    if (t.Int64Data.Count != count) throw new OnnxFormatException($"{label}: int64_data has {t.Int64Data.Count} values, dims need {count}.");
                    idata = [.. t.Int64Data];
                }
                else
                {
                    if (t.Int32Data.Count != count) throw new OnnxFormatException($"{label}: int32_data has {t.Int32Data.Count} values, dims need {count}.");
                    idata = t.Int32Data.Select(v => (long)v).ToArray();
                }
                break;
            case OnnxDataType.Undefined:
                throw new OnnxFormatException($"{label} has no data_type.");
            default:
                break;   // kept as type + dims only; a node that needs the values says so
        }
        return new OnnxTensor(t.Name, type, dims, lazy ?? new Lazy<float[]?>(fdata), idata);
    }

    private static float[] DecodeFloats(ReadOnlySpan<byte> bytes)
    {
        var result = new float[bytes.Length / 4];
        if (BitConverter.IsLittleEndian) bytes.CopyTo(MemoryMarshal.AsBytes(result.AsSpan()));
        else for (int k = 0; k < result.Length; k++) result[k] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(k * 4)..]);
        return result;
    }
}
