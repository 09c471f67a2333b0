using Mcir.Core.Embeddings;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Embeddings;

public class VggEmbeddingTests
{
    [Theory]
    [InlineData(VggVariant.Vgg16, "relu1_2", 3)]
    [InlineData(VggVariant.Vgg16, "relu2_2", 8)]
    [InlineData(VggVariant.Vgg16, "relu3_3", 15)]
    [InlineData(VggVariant.Vgg16, "relu4_3", 22)]
    [InlineData(VggVariant.Vgg16, "relu5_3", 29)]
    [InlineData(VggVariant.Vgg19, "relu1_1", 1)]
    [InlineData(VggVariant.Vgg19, "relu2_1", 6)]
    [InlineData(VggVariant.Vgg19, "relu3_1", 11)]
    [InlineData(VggVariant.Vgg19, "relu4_1", 20)]
    [InlineData(VggVariant.Vgg19, "relu5_1", 29)]
    [InlineData(VggVariant.Vgg19, "relu5_4", 35)]
    public void LayerNames_MapToTorchvisionFeatureIndices(VggVariant variant, string layer, int index)
    {
        Assert.Equal(index, VggLayout.IndexOf(variant, layer));
    }

    [Fact]
    public void Layouts_HaveTorchvisionSizesAndKeys()
    {
        Assert.Equal(31, VggLayout.Layers(VggVariant.Vgg16).Count);
        Assert.Equal(37, VggLayout.Layers(VggVariant.Vgg19).Count);
        Assert.Equal(26, VggLayout.ExpectedKeys(VggVariant.Vgg16, int.MaxValue).Count);
        Assert.Equal(32, VggLayout.ExpectedKeys(VggVariant.Vgg19, int.MaxValue).Count);
        var ex = Assert.Throws<ArgumentException>(() => VggLayout.IndexOf(VggVariant.Vgg16, "relu3_4"));
        Assert.Contains("relu3_3", ex.Message);

        using var net = new VggFeatureNet(VggVariant.Vgg16, 15);
        var keys = net.state_dict().Keys.ToArray();
        var expected = SpnFixture.Root.GetProperty("vgg_state_dict_keys").EnumerateObject().Select(p => p.Name).ToArray();
        Assert.Equal(expected, keys);
    }

    [Fact]
    public void FixtureWeights_LoadByKeyName_FeatureChecksumsMatchReference()
    {
        using var emb = SpnFixture.SpnEmbedding();
        Assert.Equal(15, emb.Network.LastIndex); // forward stops after relu3_3
        Assert.DoesNotContain("RANDOM", emb.WeightsDescription);
        using var scope = torch.NewDisposeScope();
        var o = SpnFixture.Load("out.npy");
        var feats = emb.Extract(o);
        var expected = SpnFixture.F32.GetProperty("feature_checksums_out");
        for (int i = 0; i < SpnFixture.SpnLayers.Length; i++)
        {
            var e = expected.GetProperty(SpnFixture.SpnLayers[i]);
            var f = feats[i].to(float64);
            Assert.Equal(e.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()).ToArray(), feats[i].shape);
            SpnFixture.AssertRel(e.GetProperty("sum").GetDouble(), f.sum().item<double>(), 2e-6, $"{SpnFixture.SpnLayers[i]} sum");
            SpnFixture.AssertRel(e.GetProperty("abs_sum").GetDouble(), f.abs().sum().item<double>(), 2e-6, $"{SpnFixture.SpnLayers[i]} abs_sum");
            double zeros = f.eq(0).to(float64).mean().item<double>();
            Assert.True(Math.Abs(zeros - e.GetProperty("zero_fraction").GetDouble()) <= 1e-5,
                $"{SpnFixture.SpnLayers[i]} zero fraction {zeros} vs {e.GetProperty("zero_fraction").GetDouble()}");
        }
    }

    [Fact]
    public void Embedding_IsFrozenInEvalMode_AndGradientReachesInput()
    {
        using var emb = SpnFixture.SpnEmbedding();
        Assert.False(emb.Network.training);
        Assert.All(emb.Network.parameters(), p => Assert.False(p.requires_grad));
        using var scope = torch.NewDisposeScope();
        var x = torch.rand(1, 3, 16, 16).requires_grad_(true);
        var feats = emb.Extract(x);
        feats[^1].sum().backward();
        Assert.NotNull(x.grad);
        Assert.True(x.grad!.abs().sum().item<float>() > 0);
        Assert.All(emb.Network.parameters(), p => Assert.Null(p.grad));
    }

    // Every entry called in turn, out of place: what Run computed before convolution + ReLU were fused.
    private static Tensor[] LayerByLayer(VggFeatureNet net, Tensor x, int[] indices)
    {
        var layers = ((nn.Module)net).children().Single().children().Cast<nn.Module<Tensor, Tensor>>().ToArray();
        var outs = new Tensor[indices.Length];
        Tensor h = x;
        for (int i = 0; i <= indices.Max(); i++)
        {
            h = layers[i].call(h);
            for (int k = 0; k < indices.Length; k++) if (indices[k] == i) outs[k] = h;
        }
        return outs;
    }

    [Fact]
    public void Run_FusedWithoutGradient_InPlaceReluWithGradient_SameValuesAndGradient_ConvolutionTapsKeptBeforeRelu()
    {
        using var emb = SpnFixture.SpnEmbedding();
        using var scope = torch.NewDisposeScope();
        // conv1_2 (2) is requested beside relu1_2 (3): it must stay the convolution's output, not be fused or overwritten.
        int[] indices = [2, 3, 8, 15];
        var x = Mcir.Core.Compute.ChannelsLast.Of(torch.rand(2, 3, 24, 24, generator: new Generator(21)) * 2 - 1);
        Tensor[] reference;
        using (torch.no_grad()) reference = LayerByLayer(emb.Network, x, indices);
        Assert.True(reference[0].min().item<float>() < 0); // conv1_2 has negative values: a ReLU on it would show

        Tensor[] fused;
        Assert.True(Mcir.Core.Compute.FusedConvolution.Available); // the fused kernels run below, not the unfused pair
        using (torch.no_grad()) fused = emb.Network.Run(x, indices);
        // Same oneDNN kernels with the ReLU as a post-op (see FusedConvolution): equal to float32 rounding.
        for (int k = 0; k < indices.Length; k++)
            Assert.True((fused[k] - reference[k]).abs().max().item<float>() <= 1e-5 * (1 + reference[k].abs().max().item<float>()), $"index {indices[k]}");

        // With a gradient: convolution then in-place ReLU; values identical to the layer-by-layer run, and so is the
        // gradient reaching the input.
        var xa = x.detach().requires_grad_(true);
        var xb = x.detach().requires_grad_(true);
        var a = emb.Network.Run(xa, indices);
        var b = LayerByLayer(emb.Network, xb, indices);
        for (int k = 0; k < indices.Length; k++) Assert.True((a[k] - b[k]).abs().max().item<float>() == 0, $"index {indices[k]}");
        (a[0].sum() + a[1].mean() + a[3].square().mean()).backward();
        (b[0].sum() + b[1].mean() + b[3].square().mean()).backward();
        Assert.True((xa.grad! - xb.grad!).abs().max().item<float>() == 0);
        Assert.True(xa.grad!.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void Normalize_Off_EqualsManualNormalisationOutside()
    {
        using var on = SpnFixture.SpnEmbedding();
        using var off = new VggEmbedding(on.Options with { Normalize = false });
        using var scope = torch.NewDisposeScope();
        var x = torch.rand(1, 3, 20, 20, generator: new Generator(5));
        var mean = torch.tensor(new[] { 0.485f, 0.456f, 0.406f }).reshape(1, 3, 1, 1);
        var std = torch.tensor(new[] { 0.229f, 0.224f, 0.225f }).reshape(1, 3, 1, 1);
        var a = on.Extract(x);
        var b = off.Extract((x - mean) / std);
        for (int i = 0; i < a.Count; i++) Assert.True(a[i].allclose(b[i], rtol: 1e-5, atol: 1e-6));
    }

    [Fact]
    public void Weights_AreReadOncePerProcess()
    {
        using var a = SpnFixture.SpnEmbedding();
        int reads = VggWeights.FileReads;
        using var b = SpnFixture.SpnEmbedding();
        using var c = SpnFixture.CrEmbedding();
        Assert.Equal(reads, VggWeights.FileReads);
        Assert.Same(VggWeights.Load(SpnFixture.WeightsPath, VggVariant.Vgg16), VggWeights.Load(SpnFixture.WeightsPath, VggVariant.Vgg16));
    }

    [Fact]
    public void Safetensors_And_PthRoundTrip_GiveIdenticalFeatures()
    {
        using var tmp = new TempDir();
        using var emb = SpnFixture.SpnEmbedding();
        string st = Path.Combine(tmp.Path, "vgg16-397923af.safetensors");
        string pth = Path.Combine(tmp.Path, "resaved.pth");
        emb.Network.save_safetensors(st);
        emb.Network.save_py(pth);
        using var fromSt = new VggEmbedding(emb.Options with { WeightsPath = st });
        using var fromDir = new VggEmbedding(emb.Options with { WeightsPath = tmp.Path }); // directory: finds the safetensors file
        using var fromPth = new VggEmbedding(emb.Options with { WeightsPath = pth });
        Assert.Contains("safetensors", fromSt.WeightsDescription);
        using var scope = torch.NewDisposeScope();
        var x = torch.rand(2, 3, 24, 24, generator: new Generator(3));
        var r = emb.Extract(x);
        foreach (var other in new[] { fromSt, fromDir, fromPth })
        {
            var f = other.Extract(x);
            for (int i = 0; i < r.Count; i++) Assert.True(r[i].equal(f[i]).all().item<bool>(), $"layer {i} differs ({other.WeightsDescription})");
        }
    }

    [Fact]
    public void TorchvisionStyleFile_ClassifierKeysAreIgnored_AndOnlyNeededKeysRequired()
    {
        using var tmp = new TempDir();
        string file = Path.Combine(tmp.Path, "vgg16-397923af.pth");
        using (var holder = new Holder(
                   ("features", nn.Sequential(("0", nn.Conv2d(3, 64, 3, padding: 1)), ("1", nn.ReLU()), ("2", nn.Conv2d(64, 64, 3, padding: 1)))),
                   ("classifier", nn.Sequential(("0", nn.Linear(8, 4)), ("3", nn.Linear(4, 4))))))
            holder.save_py(file);
        using var emb = new VggEmbedding(new VggEmbeddingOptions { Layers = ["relu1_2"], WeightsPath = tmp.Path });
        Assert.Equal(3, emb.Network.LastIndex);
        Assert.Contains("vgg16-397923af.pth", emb.WeightsDescription);

        // Asking for a deeper layer than the file holds is refused, listing the missing keys.
        var ex = Assert.Throws<InvalidDataException>(() => new VggEmbedding(new VggEmbeddingOptions { Layers = ["relu2_1"], WeightsPath = file }));
        Assert.Contains("features.5.weight", ex.Message);
        Assert.Contains("features.5.bias", ex.Message);
    }

    [Fact]
    public void MissingFile_IsAClearError()
    {
        var missing = Path.Combine(Path.GetTempPath(), "no-such-dir-mcir", "vgg16-397923af.pth");
        var ex = Assert.Throws<FileNotFoundException>(() => new VggEmbedding(new VggEmbeddingOptions { WeightsPath = missing }));
        Assert.Contains("vgg16-397923af.pth", ex.Message);
        Assert.Contains("mcir-host weights fetch vgg16", ex.Message);
        Assert.Contains("https://download.pytorch.org/models/vgg16-397923af.pth", ex.Message);

        using var tmp = new TempDir();
        var ex19 = Assert.Throws<FileNotFoundException>(() =>
            new VggEmbedding(new VggEmbeddingOptions { Variant = VggVariant.Vgg19, Layers = ["relu5_1"], WeightsPath = tmp.Path }));
        Assert.Contains("vgg19-dcbb9e9d.pth", ex19.Message);
        Assert.Contains("mcir-host weights fetch vgg19", ex19.Message);
    }

    [Fact]
    public void WrongKeys_AreListed()
    {
        using var tmp = new TempDir();
        string file = Path.Combine(tmp.Path, "wrong.pth");
        using (var holder = new Holder(("body", nn.Sequential(("0", nn.Conv2d(3, 64, 3, padding: 1))))))
            holder.save_py(file);
        var ex = Assert.Throws<InvalidDataException>(() => new VggEmbedding(new VggEmbeddingOptions { Layers = ["relu1_1"], WeightsPath = file }));
        Assert.Contains("body.0.weight", ex.Message);

        // features.* keys in the file but missing the ones needed
        string partial = Path.Combine(tmp.Path, "partial.pth");
        using (var holder = new Holder(("features", nn.Sequential(("0", nn.Conv2d(3, 64, 3, padding: 1))))))
            holder.save_py(partial);
        var ex2 = Assert.Throws<InvalidDataException>(() => new VggEmbedding(new VggEmbeddingOptions { Layers = ["relu1_2"], WeightsPath = partial }));
        Assert.Contains("features.2.weight", ex2.Message);

        // a key that does not exist in the vgg16 layout (features.1 is a ReLU) — e.g. a *_bn checkpoint
        string bn = Path.Combine(tmp.Path, "bn.pth");
        using (var holder = new Holder(("features", nn.Sequential(("0", nn.Conv2d(3, 64, 3, padding: 1)), ("1", nn.BatchNorm2d(64))))))
            holder.save_py(bn);
        var ex3 = Assert.Throws<InvalidDataException>(() => new VggEmbedding(new VggEmbeddingOptions { Layers = ["relu1_1"], WeightsPath = bn }));
        Assert.Contains("features.1.weight", ex3.Message);
        Assert.Contains("Unexpected keys", ex3.Message);
    }

    [Fact]
    public void WrongShapes_AreListed()
    {
        using var tmp = new TempDir();
        string file = Path.Combine(tmp.Path, "shapes.pth");
        using (var holder = new Holder(("features", nn.Sequential(("0", nn.Conv2d(3, 32, 3, padding: 1))))))
            holder.save_py(file);
        var ex = Assert.Throws<InvalidDataException>(() => new VggEmbedding(new VggEmbeddingOptions { Layers = ["relu1_1"], WeightsPath = file }));
        Assert.Contains("features.0.weight: expected [64, 3, 3, 3], found [32, 3, 3, 3]", ex.Message);
        Assert.Contains("features.0.bias: expected [64], found [32]", ex.Message);

        string st = Path.Combine(tmp.Path, "shapes.safetensors");
        using (var holder = new Holder(("features", nn.Sequential(("0", nn.Conv2d(3, 32, 3, padding: 1))))))
            holder.save_safetensors(st);
        var ex2 = Assert.Throws<InvalidDataException>(() => new VggEmbedding(new VggEmbeddingOptions { Layers = ["relu1_1"], WeightsPath = st }));
        Assert.Contains("features.0.weight: expected [64, 3, 3, 3], found [32, 3, 3, 3]", ex2.Message);
    }

    [Fact]
    public void OldPreZipPth_SaysHowToResave()
    {
        using var tmp = new TempDir();
        string file = Path.Combine(tmp.Path, "vgg16-397923af.pth");
        // Legacy torch.save files start with a pickled magic number (protocol 2), not a zip header.
        File.WriteAllBytes(file, [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]);
        var ex = Assert.Throws<InvalidDataException>(() => new VggEmbedding(new VggEmbeddingOptions { WeightsPath = file }));
        Assert.Contains("_use_new_zipfile_serialization=True", ex.Message);
        Assert.Contains("safetensors", ex.Message);
        Assert.IsType<NotImplementedException>(ex.InnerException);
    }

    [Fact]
    public void RandomWeights_RefusedUnlessAllowed_AndThenLabelled()
    {
        var ex = Assert.Throws<McirException>(() => new VggEmbedding(new VggEmbeddingOptions()));
        Assert.Contains("allow_random_weights", ex.Message);
        Assert.Contains("vgg16-397923af.pth", ex.Message);

        using var emb = new VggEmbedding(new VggEmbeddingOptions { Layers = ["relu1_1"], AllowRandomWeights = true, RandomSeed = 7 });
        Assert.Contains("RANDOM weights (allow_random_weights: true) — not the method", emb.WeightsDescription);
        Assert.True(emb.UsesRandomWeights);
        using var again = new VggEmbedding(new VggEmbeddingOptions { Layers = ["relu1_1"], AllowRandomWeights = true, RandomSeed = 7 });
        Assert.True(emb.Network.state_dict()["features.0.weight"].equal(again.Network.state_dict()["features.0.weight"]).all().item<bool>());
        // torchvision init: kaiming normal (fan_out) weights, zero biases
        Assert.Equal(0f, emb.Network.state_dict()["features.0.bias"].abs().sum().item<float>());
    }

    [Fact]
    public void RandomWeights_NotUsedWhenAPathIsGivenButMissing()
    {
        Assert.Throws<FileNotFoundException>(() => new VggEmbedding(new VggEmbeddingOptions
        {
            AllowRandomWeights = true, WeightsPath = Path.Combine(Path.GetTempPath(), "mcir-nothing-here.pth"),
        }));
    }
}

/// <summary>A module with named children, to write state dicts with chosen key names.</summary>
internal sealed class Holder : nn.Module
{
    public Holder(params (string Name, nn.Module Child)[] children) : base("holder")
    {
        foreach (var (name, child) in children) register_module(name, child);
    }
}

internal sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("mcir-spn-").FullName;
    public void Dispose() { try { Directory.Delete(Path, true); } catch (IOException) { } }
}
