using Mcir.Abstractions.Losses;
using Mcir.Core.Embeddings.Onnx;
using Mcir.Core.ModelContrast;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Embeddings.Onnx;

/// <summary>Loads the package's ResNet18.onnx once: its bytes, the parsed model, the embedding and an ORT session.</summary>
public sealed class ResNet18Fixture : IDisposable
{
    public ResNet18Fixture()
    {
        Path = ResNet18ImageNet.LocateModel();
        Bytes = File.ReadAllBytes(Path);
        Model = OnnxReader.Parse(Bytes, Path);
        Embedding = (OnnxEmbedding)OnnxEmbeddings.Create(ResNet18ImageNet.Name, new OnnxEmbeddingOptions { ModelPath = Path, Layers = ["stem", "layer1", "layer2", "layer3", "layer4"] });
        Full = (OnnxEmbedding)OnnxEmbeddings.Create(ResNet18ImageNet.Name, new OnnxEmbeddingOptions { ModelPath = Path, Layers = ["pool"] });
        _session = new Lazy<InferenceSession>(() => new InferenceSession(Bytes, OrtReference.Options()));
    }

    public string Path { get; }

    public byte[] Bytes { get; }

    public OnnxModel Model { get; }

    /// <summary>Stages stem … layer4 as layers.</summary>
    public OnnxEmbedding Embedding { get; }

    /// <summary>The graph's output (global average pool; needs 224×224).</summary>
    public OnnxEmbedding Full { get; }

    private readonly Lazy<InferenceSession> _session;

    public InferenceSession FullSession => _session.Value;

    public void Dispose()
    {
        Embedding.Dispose();
        Full.Dispose();
        if (_session.IsValueCreated) _session.Value.Dispose();
    }
}

public class ResNet18EmbeddingTests : IClassFixture<ResNet18Fixture>
{
    private readonly ResNet18Fixture _f;
    private readonly ITestOutputHelper _out;

    public ResNet18EmbeddingTests(ResNet18Fixture fixture, ITestOutputHelper output)
    {
        _f = fixture;
        _out = output;
    }

    [Fact]
    public void PackageModel_IsFoundAndHasTheDocumentedGraph()
    {
        Assert.True(File.Exists(_f.Path));
        Assert.Equal("CNTK", _f.Model.ProducerName);
        var g = _f.Model.Graph;
        Assert.Equal("BatchNormalization 22, Conv 22, Relu 19, Add 9, AveragePool 1, MaxPool 1", g.OpSummary());
        Assert.Equal(110, g.Initializers.Count);
        var x = Assert.Single(g.DataInputs);
        Assert.Equal([1L, 3, 224, 224], x.Shape!.Select(d => d.Value!.Value));
        // The asymmetric pads of the CNTK export.
        Assert.Equal([3L, 3, 2, 2], g.Nodes[0].Ints("pads")!);
        Assert.Equal([1L, 1, 0, 0], g.Nodes.First(n => n.OpType == "MaxPool").Ints("pads")!);
        Assert.All(ResNet18ImageNet.Aliases.Values, o => Assert.Contains(g.Nodes, n => n.Outputs.Contains(o)));
    }

    [Fact]
    public void PreprocessMeans_AreThePackagesBgrMeans()
    {
        string? prep = ResNet18ImageNet.LocatePreprocess(_f.Path);
        Assert.NotNull(prep);
        var means = ResNet18ImageNet.ReadPreprocessMeans(prep!);
        _out.WriteLine($"BGR means: {string.Join(", ", means.Select(m => m.ToString("F3")))}");
        for (int c = 0; c < 3; c++) Assert.InRange(means[c], ResNet18ImageNet.FallbackBgrMeans[c] - 0.01, ResNet18ImageNet.FallbackBgrMeans[c] + 0.01);
        Assert.True(_f.Embedding.Normalization.Bgr);
        Assert.Equal(255.0, _f.Embedding.Normalization.Scale);
    }

    [Fact]
    public void Preprocessing_MatchesThePackagesPreprocessGraphUpToItsSpatialMeanVariation()
    {
        string prep = ResNet18ImageNet.LocatePreprocess(_f.Path)!;
        var prepBytes = File.ReadAllBytes(prep);
        // Our runner runs the preprocessing graph (Split → Concat → Sub) exactly like ORT.
        var model = OnnxReader.Parse(prepBytes);
        using var net = new OnnxGraphModule(model.Graph, ["PreprocessedInput"]);
        using var scope = torch.NewDisposeScope();
        var rgb255 = torch.rand(new long[] { 1, 3, 224, 224 }, generator: new Generator(3)) * 255;
        var ort = OrtReference.Run(prepBytes, rgb255.data<float>().ToArray(), [1, 3, 224, 224], out _);
        var ours = net.Run(rgb255)[0];
        OnnxGraphRunnerTests.AssertClose(ort, ours.data<float>().ToArray(), 1e-6);
        // The embedding subtracts per-channel means instead of the 224×224 mean image (any input size): report the gap.
        var emb = _f.Embedding.Preprocess(rgb255 / 255);
        var diff = emb - ours;
        double gap = diff.abs().max().item<float>(), rms = diff.square().mean().sqrt().item<float>();
        _out.WriteLine($"per-channel means vs mean image: max {gap:F3}, rms {rms:F3} (0–255 scale)");
        Assert.True(gap < 16 && rms < 8, $"mean image deviates from its channel means by max {gap}, rms {rms}");
    }

    [Fact]
    public void FullGraph_MatchesOnnxRuntime_At224()
    {
        using var scope = torch.NewDisposeScope();
        var rgb = torch.rand(new long[] { 1, 3, 224, 224 }, generator: new Generator(11));
        var x = _f.Embedding.Preprocess(rgb);
        var expected = OrtReference.Run(_f.FullSession, x.data<float>().ToArray(), [1, 3, 224, 224], out var dims);
        using var noGrad = torch.no_grad();
        var pool = _f.Full.Extract(rgb)[0];
        Assert.Equal(dims, pool.shape);
        Assert.Equal([1L, 512, 1, 1], pool.shape);
        double rel = OnnxGraphRunnerTests.AssertClose(expected, pool.data<float>().ToArray(), 1e-4);
        _out.WriteLine($"full graph (pool, 1×3×224×224): max abs error / range = {rel:E2}");
    }

    [Theory]
    [InlineData("stem", 64, 32)]
    [InlineData("layer1", 64, 16)]
    [InlineData("layer2", 128, 8)]
    [InlineData("layer3", 256, 4)]
    [InlineData("layer4", 512, 2)]
    public void CutGraph_MatchesOnnxRuntime(string layer, long channels, long size)
    {
        string output = ResNet18ImageNet.Resolve(layer);
        byte[] cut = OnnxCut.Cut(_f.Bytes, output);
        using var scope = torch.NewDisposeScope();
        var rgb = torch.rand(new long[] { 1, 3, 64, 64 }, generator: new Generator(5));
        var x = _f.Embedding.Preprocess(rgb);
        var expected = OrtReference.Run(cut, x.data<float>().ToArray(), [1, 3, 64, 64], out var dims);
        using var noGrad = torch.no_grad();
        int at = _f.Embedding.Layers.ToList().IndexOf(layer);
        var ours = _f.Embedding.Extract(rgb)[at];
        Assert.Equal([1L, channels, size, size], ours.shape);
        Assert.Equal(dims, ours.shape);
        double rel = OnnxGraphRunnerTests.AssertClose(expected, ours.data<float>().ToArray(), 1e-4);
        _out.WriteLine($"{layer} ({output}, 1×3×64×64): max abs error / range = {rel:E2}");
    }

    [Fact]
    public void DefaultEmbedding_ShallowToMidLayers_FrozenWithDescription()
    {
        using var emb = OnnxEmbeddings.Create(ResNet18ImageNet.Name);
        Assert.Equal("resnet18-imagenet", emb.Name);
        Assert.Equal(["stem", "layer1", "layer2"], emb.Layers);
        Assert.Contains(_f.Path, emb.WeightsDescription, StringComparison.Ordinal);
        Assert.Contains("ResNet18", emb.WeightsDescription, StringComparison.Ordinal);
        Assert.Contains("BGR", emb.WeightsDescription, StringComparison.Ordinal);
        var net = ((OnnxEmbedding)emb).Network;
        Assert.Empty(net.parameters());
        Assert.False(net.training);
        // Stops after layer2: nothing of stages 3 and 4 is built.
        Assert.DoesNotContain(net.ExecutedNodes, n => n.Outputs.Contains(ResNet18ImageNet.Resolve("layer3")));
        Assert.Equal(10, net.ExecutedNodes.Count(n => n.OpType == "Conv"));   // stem 1, layer1 4, layer2 4 + 1×1 downsample
        Assert.Equal(10, net.FoldedBatchNorms);
        using var scope = torch.NewDisposeScope();
        var f = emb.Extract(torch.rand(2, 3, 48, 40));
        Assert.Equal([2L, 64, 24, 20], f[0].shape);
        Assert.Equal([2L, 64, 12, 10], f[1].shape);
        Assert.Equal([2L, 128, 6, 5], f[2].shape);
        Assert.All(f, t => Assert.True(t.min().item<float>() >= 0));   // after ReLU
    }

    [Fact]
    public void Gradient_MatchesFiniteDifferences_OnASmallCrop()
    {
        // float64 copy of the graph cut at layer1 on a 1×3×12×12 crop.
        using var emb = (OnnxEmbedding)OnnxEmbeddings.Create(ResNet18ImageNet.Name, new OnnxEmbeddingOptions { ModelPath = _f.Path, Layers = ["layer1"] });
        emb.To(ScalarType.Float64);
        using var scope = torch.NewDisposeScope();
        var gen = new Generator(21);
        var x = torch.rand(new long[] { 1, 3, 12, 12 }, dtype: ScalarType.Float64, generator: gen);
        var probe = torch.randn(new long[] { 1, 64, 3, 3 }, dtype: ScalarType.Float64, generator: gen);
        double F(Tensor input)
        {
            using var s = torch.NewDisposeScope();
            return (emb.Extract(input)[0] * probe).sum().item<double>();
        }
        var xg = x.clone().requires_grad_(true);
        (emb.Extract(xg)[0] * probe).sum().backward();
        var grad = xg.grad!.clone();
        Assert.True(grad.abs().max().item<double>() > 0);
        var rng = new Random(4);
        double h = 1e-5, worst = 0;
        for (int k = 0; k < 10; k++)
        {
            long c = rng.Next(3), i = rng.Next(12), j = rng.Next(12);
            var plus = x.clone(); plus[0, c, i, j] = plus[0, c, i, j] + h;
            var minus = x.clone(); minus[0, c, i, j] = minus[0, c, i, j] - h;
            double fd = (F(plus) - F(minus)) / (2 * h);
            double an = grad[0, c, i, j].item<double>();
            double err = Math.Abs(fd - an) / Math.Max(1.0, Math.Abs(an));
            worst = Math.Max(worst, err);
            Assert.True(err < 1e-4, $"d/dx[{c},{i},{j}]: analytic {an:G8}, finite difference {fd:G8}");
        }
        _out.WriteLine($"finite differences: worst relative error {worst:E2}");
    }

    [Fact]
    public void SpnLoss_RunsWithResNetLayerNames()
    {
        using var emb = OnnxEmbeddings.Create(ResNet18ImageNet.Name, new OnnxEmbeddingOptions { ModelPath = _f.Path });
        var options = new SpnLossOptions { LayerWeights = ResNet18ImageNet.DefaultLayerWeights, Lambda = 1e-3 };
        using var spn = new SpnLoss(options, emb);
        Assert.Contains("resnet18-imagenet", spn.Describe(), StringComparison.Ordinal);
        using var scope = torch.NewDisposeScope();
        var gen = new Generator(9);
        var output = torch.rand(new long[] { 2, 3, 32, 32 }, generator: gen).requires_grad_(true);
        var target = torch.rand(new long[] { 2, 3, 32, 32 }, generator: gen);
        var negatives = torch.rand(new long[] { 2, 2, 3, 32, 32 }, generator: gen);
        var result = spn.Compute(new LossContext(output, target, target, negatives));
        Assert.True(double.IsFinite(result.Value.item<float>()));
        Assert.True(result.Value.item<float>() < 0);   // subtract form
        result.Value.backward();
        Assert.True(output.grad!.abs().sum().item<float>() > 0);
        Assert.Contains("spn/layer/layer2", result.Parts.Keys);
    }

    [Fact]
    public void TruncatedPackageFile_IsAClearError()
    {
        string path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"mcir-resnet18-truncated-{Guid.NewGuid():N}.onnx");
        try
        {
            File.WriteAllBytes(path, _f.Bytes.AsSpan(0, _f.Bytes.Length - 1000).ToArray());
            var e = Assert.Throws<OnnxFormatException>(() => OnnxEmbeddings.Create(ResNet18ImageNet.Name, new OnnxEmbeddingOptions { ModelPath = path }));
            Assert.Contains(path, e.Message, StringComparison.Ordinal);
            Assert.Contains("truncated", e.Message, StringComparison.Ordinal);
            var missing = Assert.Throws<McirException>(() => ResNet18ImageNet.LocateModel(path + ".nope"));
            Assert.Contains("model_path", missing.Message, StringComparison.Ordinal);
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void UnknownLayer_IsAClearError()
    {
        var e = Assert.Throws<McirException>(() => OnnxEmbeddings.Create(ResNet18ImageNet.Name, new OnnxEmbeddingOptions { ModelPath = _f.Path, Layers = ["relu3_3"] }));
        Assert.Contains("relu3_3", e.Message, StringComparison.Ordinal);
    }
}
