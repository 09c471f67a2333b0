namespace Mcir.Core.Embeddings.Onnx;

/// <summary>A malformed, truncated or unsupported ONNX file or graph.</summary>
public sealed class OnnxFormatException : McirException
{
    public OnnxFormatException(string message) : base(message) { }

    public OnnxFormatException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>ONNX <c>TensorProto.DataType</c> values (those this reader knows by name).</summary>
public enum OnnxDataType
{
    Undefined = 0, Float = 1, UInt8 = 2, Int8 = 3, UInt16 = 4, Int16 = 5, Int32 = 6, Int64 = 7, String = 8, Bool = 9,
    Float16 = 10, Double = 11, UInt32 = 12, UInt64 = 13, Complex64 = 14, Complex128 = 15, BFloat16 = 16,
}

/// <summary>ONNX <c>AttributeProto.AttributeType</c> values.</summary>
public enum OnnxAttributeType
{
    Undefined = 0, Float = 1, Int = 2, String = 3, Tensor = 4, Graph = 5, Floats = 6, Ints = 7, Strings = 8, Tensors = 9,
    Graphs = 10, SparseTensor = 11, SparseTensors = 12, TypeProto = 13, TypeProtos = 14,
}

/// <summary>A parsed ONNX model: the header fields and the main graph.</summary>
public sealed record OnnxModel(
    long IrVersion,
    string ProducerName,
    string ProducerVersion,
    IReadOnlyDictionary<string, long> Opsets,
    OnnxGraph Graph,
    string? SourcePath)
{
    /// <summary>"file (producer x.y, IR n, opset m)" for messages and logs.</summary>
    public string Describe() =>
        $"{SourcePath ?? "<memory>"} (producer {ProducerName} {ProducerVersion}, IR {IrVersion}, opset " +
        $"{(Opsets.TryGetValue("", out var v) ? v : 0)}; {Graph.Nodes.Count} nodes, {Graph.Initializers.Count} initializers)";
}

/// <summary>A graph: nodes in file order (ONNX requires topological order), inputs, outputs, initializers by name.</summary>
public sealed record OnnxGraph(
    string Name,
    IReadOnlyList<OnnxNode> Nodes,
    IReadOnlyList<OnnxValueInfo> Inputs,
    IReadOnlyList<OnnxValueInfo> Outputs,
    IReadOnlyDictionary<string, OnnxTensor> Initializers)
{
    /// <summary>Graph inputs that are not initializers (old IR versions list initializers as inputs too).</summary>
    public IEnumerable<OnnxValueInfo> DataInputs => Inputs.Where(i => !Initializers.ContainsKey(i.Name));

    /// <summary>Count of nodes per op type, e.g. "Conv 22, Relu 19".</summary>
    public string OpSummary() =>
        string.Join(", ", Nodes.GroupBy(n => n.OpType).OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => $"{g.Key} {g.Count()}"));
}

/// <summary>A node: op type, named inputs/outputs (empty string = omitted optional input) and attributes.</summary>
public sealed record OnnxNode(
    string Name,
    string OpType,
    string Domain,
    IReadOnlyList<string> Inputs,
    IReadOnlyList<string> Outputs,
    IReadOnlyDictionary<string, OnnxAttribute> Attributes)
{
    /// <summary>"Conv node 'Convolution249'" (or its first output when the node is unnamed).</summary>
    public string Display => $"{OpType} node '{(Name.Length > 0 ? Name : Outputs.FirstOrDefault() ?? "?")}'";

    public long[]? Ints(string name) => Attributes.TryGetValue(name, out var a) ? a.Ints : null;

    public long Int(string name, long fallback) => Attributes.TryGetValue(name, out var a) ? a.I : fallback;

    public float Float(string name, float fallback) => Attributes.TryGetValue(name, out var a) ? a.F : fallback;

    public string? String(string name) => Attributes.TryGetValue(name, out var a) && a.S is not null ? System.Text.Encoding.UTF8.GetString(a.S) : null;
}

/// <summary>A node attribute; only the field matching <see cref="Type"/> is meaningful.</summary>
public sealed record OnnxAttribute(
    string Name,
    OnnxAttributeType Type,
    float F,
    long I,
    byte[]? S,
    OnnxTensor? T,
    float[] Floats,
    long[] Ints,
    string[] Strings);

/// <summary>One dimension of a value's shape: a number, a symbolic name, or unknown (both null).</summary>
public readonly record struct OnnxDim(long? Value, string? Param)
{
    public override string ToString() => Value?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? Param ?? "?";
}

/// <summary>A graph input/output: name, element type and (if declared) shape.</summary>
public sealed record OnnxValueInfo(string Name, OnnxDataType ElementType, IReadOnlyList<OnnxDim>? Shape)
{
    public override string ToString() => $"{Name}: {ElementType}[{(Shape is null ? "?" : string.Join("×", Shape))}]";
}

/// <summary>
/// A dense tensor (initializer or constant). Float32 data come from <c>raw_data</c> or <c>float_data</c> (and doubles are
/// narrowed to float32); int64/int32 data from <c>raw_data</c>, <c>int64_data</c> or <c>int32_data</c>. Other types keep
/// only their type and dims (and are refused when a node needs their values).
/// </summary>
public sealed class OnnxTensor
{
    private readonly Lazy<float[]?> _floats;

    public OnnxTensor(string name, OnnxDataType dataType, long[] dims, float[]? floats, long[]? int64s)
        : this(name, dataType, dims, new Lazy<float[]?>(floats), int64s) { }

    /// <summary>With float values decoded on first use (initializers a graph cut never touches are never decoded).</summary>
    internal OnnxTensor(string name, OnnxDataType dataType, long[] dims, Lazy<float[]?> floats, long[]? int64s)
    {
        Name = name;
        DataType = dataType;
        Dims = dims;
        _floats = floats;
        Int64s = int64s;
    }

    public string Name { get; }

    public OnnxDataType DataType { get; }

    public long[] Dims { get; }

    /// <summary>Row-major values for float-typed (and double, narrowed) tensors.</summary>
    public float[]? Floats => _floats.Value;

    /// <summary>Values for integer-typed tensors.</summary>
    public long[]? Int64s { get; }

    public long ElementCount => Dims.Aggregate(1L, (a, d) => a * d);

    public override string ToString() => $"{Name}: {DataType}[{string.Join("×", Dims)}]";
}
