using System.Text;
using Google.Protobuf;
using Mcir.Core.Embeddings.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Mcir.Core.Tests.Embeddings.Onnx;

/// <summary>A protobuf wire-format writer for building ONNX test models (the tests' own, independent of the reader).</summary>
internal sealed class ProtoWriter
{
    private readonly MemoryStream _s = new();

    public byte[] ToArray() => _s.ToArray();

    public ProtoWriter Varint(int field, long value) { Key(field, 0); Raw((ulong)value); return this; }

    public ProtoWriter Float(int field, float value) { Key(field, 5); _s.Write(BitConverter.GetBytes(value)); return this; }

    public ProtoWriter Bytes(int field, ReadOnlySpan<byte> value) { Key(field, 2); Raw((ulong)value.Length); _s.Write(value); return this; }

    public ProtoWriter String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

    public ProtoWriter Message(int field, ProtoWriter inner) => Bytes(field, inner.ToArray());

    public ProtoWriter PackedInt64(int field, IEnumerable<long> values)
    {
        var inner = new ProtoWriter();
        foreach (var v in values) inner.Raw((ulong)v);
        return Bytes(field, inner.ToArray());
    }

    public ProtoWriter PackedFloat(int field, float[] values)
    {
        var bytes = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return Bytes(field, bytes);
    }

    private void Key(int field, int wire) => Raw(((ulong)field << 3) | (uint)wire);

    private void Raw(ulong v)
    {
        while (v >= 0x80) { _s.WriteByte((byte)(v | 0x80)); v >>= 7; }
        _s.WriteByte((byte)v);
    }
}

/// <summary>Builds small ONNX models (IR 7, opset 11) field by field, following onnx.proto's field numbers.</summary>
internal sealed class OnnxBuilder
{
    private readonly List<ProtoWriter> _nodes = [];
    private readonly List<ProtoWriter> _inits = [];
    private readonly List<ProtoWriter> _inputs = [];
    private readonly List<ProtoWriter> _outputs = [];

    public OnnxBuilder Input(string name, params long[] dims) { _inputs.Add(ValueInfo(name, dims)); return this; }

    public OnnxBuilder Output(string name) { _outputs.Add(ValueInfo(name, null)); return this; }

    public OnnxBuilder Init(string name, long[] dims, float[] data, bool raw = false)
    {
        var t = new ProtoWriter().PackedInt64(1, dims).Varint(2, 1).String(8, name);
        if (raw)
        {
            var bytes = new byte[data.Length * 4];
            Buffer.BlockCopy(data, 0, bytes, 0, bytes.Length);
            t.Bytes(9, bytes);
        }
        else t.PackedFloat(4, data);
        _inits.Add(t);
        return this;
    }

    public OnnxBuilder Init(string name, long[] dims, Random rng, double scale = 1.0, double offset = 0.0, bool raw = false)
    {
        long n = dims.Aggregate(1L, (a, d) => a * d);
        var data = new float[n];
        for (int i = 0; i < n; i++) data[i] = (float)(offset + scale * (rng.NextDouble() * 2 - 1));
        return Init(name, dims, data, raw);
    }

    /// <summary>Adds a node; attributes: long → INT, float → FLOAT, long[] → INTS, string → STRING.</summary>
    public OnnxBuilder Node(string op, string name, string[] inputs, string[] outputs, params (string Name, object Value)[] attrs)
    {
        var n = new ProtoWriter();
        foreach (var i in inputs) n.String(1, i);
        foreach (var o in outputs) n.String(2, o);
        n.String(3, name).String(4, op);
        foreach (var (an, av) in attrs)
        {
            var a = new ProtoWriter().String(1, an);
            switch (av)
            {
                case int i: a.Varint(3, i).Varint(20, 2); break;
                case long l: a.Varint(3, l).Varint(20, 2); break;
                case float f: a.Float(2, f).Varint(20, 1); break;
                case long[] ls: a.PackedInt64(8, ls).Varint(20, 7); break;
                case string s: a.String(4, s).Varint(20, 3); break;
                default: throw new ArgumentException(av.GetType().Name);
            }
            n.Message(5, a);
        }
        _nodes.Add(n);
        return this;
    }

    public byte[] Build(long opset = 11)
    {
        var g = new ProtoWriter();
        foreach (var n in _nodes) g.Message(1, n);
        g.String(2, "test_graph");
        foreach (var i in _inits) g.Message(5, i);
        foreach (var i in _inputs) g.Message(11, i);
        foreach (var o in _outputs) g.Message(12, o);
        return new ProtoWriter().Varint(1, 7).String(2, "mcir-tests").String(3, "1").Message(7, g)
            .Message(8, new ProtoWriter().String(1, "").Varint(2, opset)).ToArray();
    }

    /// <summary>A float tensor ValueInfo; null dims = no shape; a negative dim = a symbolic one.</summary>
    public static ProtoWriter ValueInfo(string name, long[]? dims)
    {
        var tensorType = new ProtoWriter().Varint(1, 1);
        if (dims is not null)
        {
            var shape = new ProtoWriter();
            int k = 0;
            foreach (var d in dims)
                shape.Message(1, d >= 0 ? new ProtoWriter().Varint(1, d) : new ProtoWriter().String(2, "d" + k++));
            tensorType.Message(2, shape);
        }
        return new ProtoWriter().String(1, name).Message(2, new ProtoWriter().Message(1, tensorType));
    }
}

/// <summary>
/// Cuts a model at a node output: keeps only the nodes and initializers it needs (as they are, by ONNX's generated
/// protobuf classes), a symbolic input size, and drops value_info (it carries the 224×224 shapes).
/// </summary>
internal static class OnnxCut
{
    public static byte[] Cut(byte[] modelBytes, string output)
    {
        var model = OnnxReader.Parse(modelBytes);
        var graph = model.Graph;
        var producer = new Dictionary<string, int>();
        for (int i = 0; i < graph.Nodes.Count; i++) foreach (var o in graph.Nodes[i].Outputs) producer[o] = i;
        var keep = new HashSet<int>();
        var used = new HashSet<string>();
        var stack = new Stack<string>([output]);
        while (stack.Count > 0)
        {
            var v = stack.Pop();
            if (!used.Add(v)) continue;
            if (producer.TryGetValue(v, out int ni) && keep.Add(ni)) foreach (var i in graph.Nodes[ni].Inputs) stack.Push(i);
        }
        var input = graph.DataInputs.Single();

        var proto = global::Onnx.ModelProto.Parser.ParseFrom(modelBytes);
        var g = proto.Graph;
        var nodes = g.Node.Where((_, i) => keep.Contains(i)).ToList();
        var inits = g.Initializer.Where(t => used.Contains(t.Name)).ToList();
        g.Node.Clear();
        g.Node.AddRange(nodes);
        g.Initializer.Clear();
        g.Initializer.AddRange(inits);
        g.ValueInfo.Clear();
        g.Input.Clear();
        g.Input.Add(global::Onnx.ValueInfoProto.Parser.ParseFrom(OnnxBuilder.ValueInfo(input.Name, [-1, input.Shape![1].Value ?? 3, -1, -1]).ToArray()));
        g.Output.Clear();
        g.Output.Add(global::Onnx.ValueInfoProto.Parser.ParseFrom(OnnxBuilder.ValueInfo(output, null).ToArray()));
        return proto.ToByteArray();
    }
}

/// <summary>Runs a model with ONNX Runtime (the reference).</summary>
internal static class OrtReference
{
    public static SessionOptions Options()
    {
        var o = new SessionOptions { IntraOpNumThreads = 2, InterOpNumThreads = 1, GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL };
        return o;
    }

    public static float[] Run(InferenceSession session, float[] input, long[] dims, out long[] outDims)
    {
        string inputName = session.InputMetadata.Keys.Single();
        var tensor = new DenseTensor<float>(input, dims.Select(d => (int)d).ToArray());
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(inputName, tensor)]);
        var t = results.First().AsTensor<float>();
        outDims = t.Dimensions.ToArray().Select(d => (long)d).ToArray();
        return t.ToArray();
    }

    public static float[] Run(byte[] model, float[] input, long[] dims, out long[] outDims)
    {
        using var options = Options();
        using var session = new InferenceSession(model, options);
        return Run(session, input, dims, out outDims);
    }
}
