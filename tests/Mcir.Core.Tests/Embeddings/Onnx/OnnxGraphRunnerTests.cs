using Mcir.Core.Embeddings.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Embeddings.Onnx;

/// <summary>The reader and the graph runner on small generated models, against ONNX Runtime.</summary>
public class OnnxGraphRunnerTests
{
    private static readonly long[] InputDims = [2, 4, 11, 13];

    /// <summary>Conv (asymmetric pads, stride 2) → BN → Relu → MaxPool (asymmetric) / grouped dilated Conv → AveragePool
    /// (asymmetric, count_include_pad 0) / Concat → Mul, Add, Sub, Div with constants → AveragePool (symmetric, include pad).</summary>
    private static OnnxBuilder Model(bool rawData = false)
    {
        var rng = new Random(7);
        return new OnnxBuilder()
            .Input("X", -1, 4, -1, -1)
            .Init("W1", [6, 4, 3, 3], rng, 0.3, raw: rawData).Init("B1", [6], rng, 0.1, raw: rawData)
            .Init("bn_s", [6], rng, 0.5, 1.0).Init("bn_b", [6], rng, 0.2).Init("bn_m", [6], rng, 0.1).Init("bn_v", [6], rng, 0.2, 0.6)
            .Init("W2", [6, 3, 3, 3], rng, 0.3).Init("K", [1, 12, 1, 1], rng, 1.0).Init("C", [1], [0.25f]).Init("D", [1], [1.5f])
            .Node("Conv", "c1", ["X", "W1", "B1"], ["y1"], ("kernel_shape", new long[] { 3, 3 }), ("strides", new long[] { 2, 2 }), ("pads", new long[] { 1, 2, 0, 1 }))
            .Node("BatchNormalization", "bn1", ["y1", "bn_s", "bn_b", "bn_m", "bn_v"], ["y2"], ("epsilon", 1e-3f))
            .Node("Relu", "r1", ["y2"], ["y3"])
            .Node("MaxPool", "mp", ["y3"], ["y4"], ("kernel_shape", new long[] { 3, 3 }), ("strides", new long[] { 2, 2 }), ("pads", new long[] { 1, 1, 0, 0 }))
            .Node("Conv", "c2", ["y3", "W2"], ["y5"], ("group", 2L), ("dilations", new long[] { 2, 2 }), ("pads", new long[] { 2, 2, 2, 2 }))
            .Node("AveragePool", "ap", ["y5"], ["y6"], ("kernel_shape", new long[] { 2, 3 }), ("pads", new long[] { 0, 1, 1, 0 }), ("count_include_pad", 0L))
            .Node("Concat", "cat", ["y5", "y3"], ["y7"], ("axis", 1L))
            .Node("Mul", "mul", ["y7", "K"], ["y8"])
            .Node("Add", "add", ["y8", "C"], ["y9"])
            .Node("Sub", "sub", ["y9", "C"], ["y9b"])
            .Node("Div", "div", ["y9b", "D"], ["y9c"])
            .Node("AveragePool", "ap2", ["y9c"], ["y10"], ("kernel_shape", new long[] { 3, 3 }), ("strides", new long[] { 2, 2 }), ("pads", new long[] { 1, 1, 1, 1 }), ("count_include_pad", 1L))
            .Node("GlobalAveragePool", "gap", ["y10"], ["y11"]);
    }

    private static float[] RandomInput(long[] dims, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, (int)dims.Aggregate(1L, (a, d) => a * d)).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
    }

    [Theory]
    [InlineData("y4", true)]
    [InlineData("y4", false)]
    [InlineData("y6", true)]
    [InlineData("y10", true)]
    [InlineData("y10", false)]
    [InlineData("y11", true)]
    public void GeneratedGraph_MatchesOnnxRuntime(string output, bool fold)
    {
        byte[] bytes = Model().Output(output).Build();
        var input = RandomInput(InputDims, 1);
        var expected = OrtReference.Run(bytes, input, InputDims, out var outDims);

        var model = OnnxReader.Parse(bytes);
        using var net = new OnnxGraphModule(model.Graph, [output], new OnnxGraphModuleOptions { FoldBatchNorm = fold });
        using var scope = torch.NewDisposeScope();
        var actual = net.Run(torch.tensor(input).reshape(InputDims))[0];
        Assert.Equal(outDims, actual.shape);
        AssertClose(expected, actual.data<float>().ToArray(), 1e-5);
        Assert.Equal(fold ? 1 : 0, net.FoldedBatchNorms);
    }

    [Fact]
    public void RawDataAndFloatData_ReadTheSameValues()
    {
        var a = OnnxReader.Parse(Model(rawData: false).Output("y3").Build()).Graph.Initializers["W1"];
        var b = OnnxReader.Parse(Model(rawData: true).Output("y3").Build()).Graph.Initializers["W1"];
        Assert.Equal([6L, 4, 3, 3], a.Dims);
        Assert.Equal(a.Floats, b.Floats);
        Assert.Equal(OnnxDataType.Float, b.DataType);
    }

    [Fact]
    public void Reader_ReadsNodesAttributesAndIo()
    {
        var m = OnnxReader.Parse(Model().Output("y10").Build(), "gen.onnx");
        Assert.Equal(7, m.IrVersion);
        Assert.Equal(11, m.Opsets[""]);
        var c1 = m.Graph.Nodes[0];
        Assert.Equal(("Conv", "c1"), (c1.OpType, c1.Name));
        Assert.Equal(["X", "W1", "B1"], c1.Inputs);
        Assert.Equal([1L, 2, 0, 1], c1.Ints("pads")!);
        Assert.Equal(OnnxAttributeType.Ints, c1.Attributes["strides"].Type);
        Assert.Equal(1e-3f, m.Graph.Nodes[1].Float("epsilon", 0));
        Assert.Equal(2, m.Graph.Nodes[4].Int("group", 1));
        var x = Assert.Single(m.Graph.DataInputs);
        Assert.Equal("X", x.Name);
        Assert.Equal(4, x.Shape![1].Value);
        Assert.Null(x.Shape[2].Value);
        Assert.Equal("y10", Assert.Single(m.Graph.Outputs).Name);
    }

    [Fact]
    public void Runner_StopsAtTheRequestedOutput_AndIsFrozen()
    {
        var m = OnnxReader.Parse(Model().Output("y11").Build());
        using var net = new OnnxGraphModule(m.Graph, ["y4"]);
        Assert.Equal(["Conv", "BatchNormalization", "Relu", "MaxPool"], net.ExecutedNodes.Select(n => n.OpType));
        Assert.Empty(net.parameters());
        Assert.All(net.named_buffers(), b => Assert.False(b.buffer.requires_grad));
        Assert.False(net.training);
        // W2/K/C/D belong to nodes after the cut: not loaded.
        Assert.DoesNotContain(net.named_buffers(), b => b.name.Contains("W2", StringComparison.Ordinal));
    }

    [Fact]
    public void Runner_GradientReachesTheInput()
    {
        var m = OnnxReader.Parse(Model().Output("y10").Build());
        using var net = new OnnxGraphModule(m.Graph, ["y10"]);
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(RandomInput(InputDims, 3)).reshape(InputDims).requires_grad_(true);
        net.Run(x)[0].sum().backward();
        Assert.NotNull(x.grad);
        Assert.True(x.grad!.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void UnsupportedOp_NamesOpAndNode()
    {
        var bytes = new OnnxBuilder().Input("X", 1, 3, 4, 4)
            .Node("Relu", "r", ["X"], ["a"])
            .Node("Softmax", "my_softmax", ["a"], ["b"], ("axis", 1L))
            .Output("b").Build();
        var m = OnnxReader.Parse(bytes);
        var e = Assert.Throws<NotSupportedException>(() => new OnnxGraphModule(m.Graph, ["b"]));
        Assert.Contains("'Softmax'", e.Message, StringComparison.Ordinal);
        Assert.Contains("my_softmax", e.Message, StringComparison.Ordinal);
        // A graph cut before the unsupported node builds fine.
        using var ok = new OnnxGraphModule(m.Graph, ["a"]);
    }

    [Fact]
    public void MissingInitializer_IsAClearError()
    {
        var bytes = new OnnxBuilder().Input("X", 1, 3, 4, 4)
            .Node("Conv", "conv_without_weights", ["X", "Wmissing"], ["y"], ("kernel_shape", new long[] { 3, 3 }))
            .Output("y").Build();
        var m = OnnxReader.Parse(bytes);
        var e = Assert.Throws<OnnxFormatException>(() => new OnnxGraphModule(m.Graph, ["y"]));
        Assert.Contains("conv_without_weights", e.Message, StringComparison.Ordinal);
        Assert.Contains("Wmissing", e.Message, StringComparison.Ordinal);
        Assert.Contains("missing initializer", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UnknownOutput_IsAClearError()
    {
        var m = OnnxReader.Parse(Model().Output("y4").Build());
        var e = Assert.Throws<ArgumentException>(() => new OnnxGraphModule(m.Graph, ["relu9_9"]));
        Assert.Contains("relu9_9", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.999)]
    [InlineData(0.1)]
    public void TruncatedModel_IsAFormatError(double keep)
    {
        var bytes = Model().Output("y10").Build();
        var cut = bytes.AsMemory(0, (int)(bytes.Length * keep));
        var e = Assert.Throws<OnnxFormatException>(() => OnnxReader.Parse(cut));
        Assert.Contains("truncated", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("\n", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NotAnOnnxFile_IsAFormatError()
    {
        Assert.Throws<OnnxFormatException>(() => OnnxReader.Parse(System.Text.Encoding.UTF8.GetBytes("{\"this\": \"is json\"}")));
        Assert.Throws<OnnxFormatException>(() => OnnxReader.Parse(new byte[64]));
        Assert.Throws<OnnxFormatException>(() => OnnxReader.Parse(ReadOnlyMemory<byte>.Empty));
        var e = Assert.Throws<OnnxFormatException>(() => OnnxReader.Parse(new ProtoWriter().Varint(1, 7).String(2, "x").ToArray()));
        Assert.Contains("no graph", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void InitializerWithWrongDataLength_NamesTheTensor()
    {
        var bytes = new OnnxBuilder().Input("X", 1, 3, 4, 4).Init("bad_weights", [2, 3], new float[5]).Output("X").Build();
        var e = Assert.Throws<OnnxFormatException>(() => OnnxReader.Parse(bytes));
        Assert.Contains("bad_weights", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_MissingFile_AndFileErrorsNameThePath()
    {
        string dir = Path.Combine(Path.GetTempPath(), "mcir-onnx-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            Assert.Throws<FileNotFoundException>(() => OnnxReader.Load(Path.Combine(dir, "none.onnx")));
            string path = Path.Combine(dir, "half.onnx");
            var bytes = Model().Output("y4").Build();
            File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
            var e = Assert.Throws<OnnxFormatException>(() => OnnxReader.Load(path));
            Assert.Contains(path, e.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("\n", e.Message, StringComparison.Ordinal);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void GenericOnnxEmbedding_UsesConfiguredLayersAndNormalisation()
    {
        string dir = Path.Combine(Path.GetTempPath(), "mcir-onnx-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            // A 3-channel graph: Conv(3→4) → Relu → MaxPool.
            var rng = new Random(5);
            var bytes = new OnnxBuilder().Input("img", -1, 3, -1, -1).Init("W", [4, 3, 3, 3], rng, 0.5)
                .Node("Conv", "conv", ["img", "W"], ["c"], ("pads", new long[] { 1, 1, 1, 1 }))
                .Node("Relu", "relu", ["c"], ["r"])
                .Node("MaxPool", "pool", ["r"], ["p"], ("kernel_shape", new long[] { 2, 2 }), ("strides", new long[] { 2, 2 }))
                .Output("p").Build();
            string path = Path.Combine(dir, "tiny.onnx");
            File.WriteAllBytes(path, bytes);
            var e = Assert.Throws<McirException>(() => OnnxEmbeddings.Create("onnx", new OnnxEmbeddingOptions { ModelPath = path }));
            Assert.Contains("layers", e.Message, StringComparison.Ordinal);

            using var emb = OnnxEmbeddings.Create("onnx", new OnnxEmbeddingOptions
            {
                ModelPath = path, Layers = ["r", "p"], Normalization = OnnxInputNormalization.ImageNet,
            });
            Assert.Equal("onnx", emb.Name);
            Assert.Equal(["r", "p"], emb.Layers);
            Assert.Contains("tiny.onnx", emb.WeightsDescription, StringComparison.Ordinal);
            Assert.Contains("0.485", emb.WeightsDescription, StringComparison.Ordinal);
            using var scope = torch.NewDisposeScope();
            var rgb = torch.rand(2, 3, 8, 8);
            var f = emb.Extract(rgb);
            Assert.Equal([2L, 4, 8, 8], f[0].shape);
            Assert.Equal([2L, 4, 4, 4], f[1].shape);
            // Same as running the graph on the ImageNet-normalised input.
            var norm = (rgb - torch.tensor(new[] { 0.485f, 0.456f, 0.406f }).reshape(1, 3, 1, 1)) / torch.tensor(new[] { 0.229f, 0.224f, 0.225f }).reshape(1, 3, 1, 1);
            var expected = OrtReference.Run(bytes, norm.data<float>().ToArray(), [2, 3, 8, 8], out _);
            AssertClose(expected, f[1].data<float>().ToArray(), 1e-5);
            Assert.Throws<McirException>(() => OnnxEmbeddings.Create("nope"));
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>max |a − b| ≤ relative · range(expected).</summary>
    internal static double AssertClose(float[] expected, float[] actual, double relative)
    {
        Assert.Equal(expected.Length, actual.Length);
        double range = Math.Max(expected.Max() - expected.Min(), 1e-12);
        double maxErr = 0;
        for (int i = 0; i < expected.Length; i++) maxErr = Math.Max(maxErr, Math.Abs(expected[i] - actual[i]));
        Assert.True(maxErr <= relative * range, $"max abs error {maxErr:G4} > {relative:G2} × range {range:G4}");
        return maxErr / range;
    }
}
