using Mcir.Core.Weights;
using Mcir.Abstractions.Models;
using Mcir.Core.IO;
using Mcir.Core.ModelContrast;
using TorchSharp;
using static Mcir.Tests.Shared.ArchAsserts;
using static TorchSharp.torch;

namespace Mcir.Plugins.Dehazing.Tests;

public sealed class DehazeFormerTests
{
    // The reference's own float32-vs-float64 difference is 6.3e-7 and its 1-vs-2-thread difference 6.0e-7 (fixtures
    // README) on outputs up to 2.1; 1e-5 leaves room for other CPUs' kernels (AVX2 vs AVX-512 summation order).
    private const double Tolerance = 1e-5;

    private static DehazeFormer LoadFixtureModel(DehazeFormerFixture fixture, DehazeFormerOptions options) => LoadReference(new DehazeFormer(options), fixture);

    // TorchSharp's state_dict() lists buffers after all parameters, PyTorch per module: compare names as sets, shapes by name.
    private static void AssertSameKeysAndShapes(List<(string Name, long[] Shape)> expected, nn.Module model)
    {
        var actual = StateDictShapes(model).ToDictionary(static e => e.Name, static e => e.Shape);
        Assert.Equal(expected.Select(static e => e.Name).Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, shape) in expected)
            Assert.True(shape.SequenceEqual(actual[name]), $"{name}: expected [{string.Join(", ", shape)}], got [{string.Join(", ", actual[name])}]");
    }

    [Fact]
    public void FixtureIsTheTPresetAsABareNetwork()
    {
        var fixture = DehazeFormerFixture.Load();
        Assert.Equal(DehazeFormer.Presets["dehazeformer-t"] with { InputRange = DehazeFormerInputRange.ZeroOne }, fixture.Options());
        Assert.Equal(DehazeFormerInputRange.MinusOneOne, DehazeFormer.Presets["dehazeformer-t"].InputRange);
    }

    [Fact]
    public void StateDictKeysAndShapesMatchTheFixture()
    {
        var fixture = DehazeFormerFixture.Load();
        using var model = new DehazeFormer(fixture.Options());
        AssertSameKeysAndShapes(fixture.StateDictManifest(), model);
        var sd = fixture.Config.GetProperty("state_dict");
        Assert.Equal(sd.GetProperty("num_tensors").GetInt32(), model.state_dict().Count);
        Assert.Equal(sd.GetProperty("num_parameters").GetInt64(), model.parameters().Sum(static p => p.numel()));
        // The only buffers are the relative_positions of the attention blocks (layer2 blocks 2-3, layer3 blocks 0-3).
        Assert.Equal(6, model.named_buffers().Count());
        Assert.All(model.named_buffers(), static b => Assert.EndsWith(".attn.attn.relative_positions", b.name));
    }

    [Fact]
    public void RelativePositionsEqualTheReferenceBuffer()
    {
        var fixture = DehazeFormerFixture.Load();
        using var model = new DehazeFormer(fixture.Options());
        var stored = StateDictFile.Read(fixture.StateDictPath);
        try
        {
            foreach (var (name, buffer) in model.named_buffers())
                Assert.True(MaxAbsDiff(buffer, stored[name]) <= 1e-6, $"{name}: differs from the reference's get_relative_positions(8)");
        }
        finally
        {
            foreach (var t in stored.Values) t.Dispose();
        }
    }

    public static TheoryData<string> PresetNames() => new(DehazeFormer.Presets.Keys.Order(StringComparer.Ordinal));

    [Theory]
    [MemberData(nameof(PresetNames))]
    public void PresetHasTheOfficialConstructorsKeysShapesAndParameterCount(string preset)
    {
        var reference = DehazeFormerFixture.Presets().GetProperty(preset);
        using var model = new DehazeFormer(DehazeFormer.Presets[preset]);
        AssertSameKeysAndShapes(DehazeFormerFixture.PresetManifest(reference), model);
        Assert.Equal(reference.GetProperty("num_tensors").GetInt32(), model.state_dict().Count);
        Assert.Equal(reference.GetProperty("num_parameters").GetInt64(), model.parameters().Sum(static p => p.numel()));
    }

    [Theory]
    [InlineData("input.npy", "output.npy", 32, 32)]
    [InlineData("input_pad.npy", "output_pad.npy", 30, 42)] // internal reflect pads to 32x44 and to window multiples, then crops
    public void ReproducesTheReferenceOutputFromTheBareStateDict(string inputFile, string outputFile, int h, int w)
    {
        var fixture = DehazeFormerFixture.Load();
        using var scope = NewDisposeScope();
        using var model = LoadFixtureModel(fixture, fixture.Options());
        var input = Npy.Load(fixture.PathOf(inputFile));
        var expected = Npy.Load(fixture.PathOf(outputFile));
        Assert.Equal(new long[] { 1, 3, h, w }, input.shape);
        Tensor output;
        using (no_grad()) output = model.call(input);
        double diff = MaxAbsDiff(output, expected);
        Console.WriteLine($"dehazeformer_t {outputFile}: max |output - reference| = {diff:E3}");
        Assert.True(diff <= Tolerance, $"{outputFile}: max |output - reference| = {diff:E3} > {Tolerance:E0}");
    }

    [Fact]
    public void ReleasedCheckpointFormatLoadsByName()
    {
        // DehazeFormer's train.py saves {'state_dict': DataParallel state dict}: the engine's reader unwraps the key and
        // strips 'module.'; the result loads strictly and gives the reference output.
        var fixture = DehazeFormerFixture.Load();
        using var scope = NewDisposeScope();
        var state = StateDictFile.Read(DehazeFormerFixture.ReleasedPath("dehazeformer-t.pth"));
        using var model = new DehazeFormer(fixture.Options());
        var (missing, unexpected) = model.load_state_dict(state, strict: true);
        Assert.Empty(missing);
        Assert.Empty(unexpected);
        model.eval();
        using (no_grad())
            Assert.True(MaxAbsDiff(model.call(Npy.Load(fixture.PathOf("input.npy"))), Npy.Load(fixture.PathOf("output.npy"))) <= Tolerance);
    }

    [Fact]
    public void ChannelsLastInputGivesTheSameOutput()
    {
        // The engine feeds convolution inputs in channels-last strides.
        var fixture = DehazeFormerFixture.Load();
        using var scope = NewDisposeScope();
        using var model = LoadFixtureModel(fixture, fixture.Options());
        var input = Npy.Load(fixture.PathOf("input_pad.npy"));
        using (no_grad())
        {
            var a = model.call(input);
            var b = model.call(Mcir.Core.Compute.ChannelsLast.Of(input));
            Assert.True(MaxAbsDiff(a, b) <= Tolerance);
        }
    }

    [Fact]
    public void MinusOneOneMapsTheImageAroundTheNetwork()
    {
        // DehazeFormer's loader gives the network img * 2 - 1 and test.py maps the output with * 0.5 + 0.5.
        var fixture = DehazeFormerFixture.Load();
        using var scope = NewDisposeScope();
        using var bare = LoadFixtureModel(fixture, fixture.Options());
        using var mapped = LoadFixtureModel(fixture, fixture.Options() with { InputRange = DehazeFormerInputRange.MinusOneOne });
        AssertSameKeysAndShapes(StateDictShapes(bare), mapped);
        var input = Npy.Load(fixture.PathOf("input_pad.npy"));
        using (no_grad())
        {
            var viaOption = mapped.call(input);
            var byHand = bare.call(input * 2 - 1) * 0.5 + 0.5;
            Assert.True(MaxAbsDiff(viaOption, byHand) <= 1e-6, $"input_range minus-one-one vs mapping by hand: {MaxAbsDiff(viaOption, byHand):E3}");
            Assert.True(MaxAbsDiff(viaOption, bare.call(input)) > 1e-2, "input_range had no effect");
        }
    }

    [Fact]
    public void TrainsEveryParameter()
    {
        // The reference weights (perturbed, so no all-equal tensor) and input rather than a fresh init, so that no
        // ReLU-gated branch is dead by chance.
        using var scope = NewDisposeScope();
        var fixture = DehazeFormerFixture.Load();
        using var model = LoadFixtureModel(fixture, DehazeFormer.Presets["dehazeformer-t"]);
        model.train();
        var y = model.call(Npy.Load(fixture.PathOf("input_pad.npy")));
        y.square().mean().backward();
        AssertEveryParameterHasGradient(model);
    }

    [Fact]
    public void GradientsAgreeWithAFloat64Computation()
    {
        // Guards the backward pass against wrong float32 kernels (libtorch 2.10's CPU convolution is wrong for some
        // contiguous NCHW inputs on AVX-512 machines, backward included; the port feeds convolutions channels-last).
        var fixture = DehazeFormerFixture.Load();
        using var scope = NewDisposeScope();
        var input = Npy.Load(fixture.PathOf("input_pad.npy"));
        Dictionary<string, Tensor> Gradients(ScalarType dtype)
        {
            var model = LoadFixtureModel(fixture, DehazeFormer.Presets["dehazeformer-t"]);
            model.to(dtype);
            model.call(input.to(dtype)).square().mean().backward();
            return model.named_parameters().ToDictionary(static p => p.name, static p => p.parameter.grad!.to(ScalarType.Float64));
        }
        var g32 = Gradients(ScalarType.Float32);
        var g64 = Gradients(ScalarType.Float64);
        foreach (var (name, g) in g64)
        {
            double scale = g.abs().max().item<double>();
            double diff = MaxAbsDiff(g32[name], g);
            // float32 rounding through ~40 layers: relative errors around 1e-6, far below the O(1) errors of a wrong kernel.
            Assert.True(diff <= 1e-4 * scale + 1e-9, $"{name}: max |grad32 - grad64| = {diff:E3} (max |grad| {scale:E3})");
        }
    }

    [Fact]
    public void InitialisationFollowsTheOriginal()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        using var model = new DehazeFormer(DehazeFormerOptions.T);
        var sd = model.state_dict();
        // network_depth = sum(depths) = 16: gain = (8 * 16)^(-1/4).
        double gain = Math.Pow(8.0 * 16, -0.25);
        void AssertStd(string key, double fanIn, double fanOut, double g)
        {
            double expected = g * Math.Sqrt(2.0 / (fanIn + fanOut));
            double std = sd[key].std().item<float>();
            Assert.InRange(std / expected, 0.9, 1.1); // thousands of samples: the sample std is within a few per cent
        }
        AssertStd("layer3.blocks.0.attn.QK.weight", 96, 192, 1.0);              // QK: no depth gain
        AssertStd("layer3.blocks.0.attn.V.weight", 96, 96, gain);
        AssertStd("layer3.blocks.0.mlp.mlp.0.weight", 96, 384, gain);
        AssertStd("layer1.blocks.0.attn.conv.weight", 25, 24 * 25, gain);       // depthwise 5x5
        Assert.InRange(sd["layer3.blocks.0.norm1.meta1.weight"].std().item<float>(), 0.01, 0.03); // trunc_normal std 0.02 (96 samples)
        Assert.True(AllEqual(sd["layer3.blocks.0.norm1.meta1.bias"], ones(96)));
        Assert.True(AllEqual(sd["layer3.blocks.0.norm1.meta2.bias"], zeros(96)));
        Assert.True(AllEqual(sd["layer3.blocks.0.attn.QK.bias"], zeros(192)));
        Assert.True(AllEqual(sd["layer3.blocks.0.norm1.weight"], ones(1, 96, 1, 1)));
    }

    [Fact]
    public void GeneratedDescriptorDescribesTheModel()
    {
        var d = DehazeFormer.Descriptor;
        Assert.Equal("dehazeformer", d.Name);
        Assert.Equal(["dehaze"], d.Tasks);
        Assert.Equal(typeof(DehazeFormer), d.ModelType);
        Assert.Equal(typeof(DehazeFormerOptions), d.OptionsType);
        Assert.Equal(new DehazeFormerOptions(), d.DefaultOptions);
        Assert.False(string.IsNullOrWhiteSpace(d.Description));
        using var built = d.Create(DehazeFormerOptions.T);
        Assert.Equal([4, 4, 4, 2, 2], Assert.IsType<DehazeFormer>(built).Options.Depths);
    }

    [Fact]
    public void PresetsAreTheOfficialConstructors()
    {
        Assert.Equal(["dehazeformer-b", "dehazeformer-l", "dehazeformer-m", "dehazeformer-s", "dehazeformer-t"], DehazeFormer.Presets.Keys.Order(StringComparer.Ordinal));
        var d = new DehazeFormerOptions(); // the class defaults = dehazeformer_b()
        Assert.Equal(d, DehazeFormer.Presets["dehazeformer-b"]);
        Assert.Equal([24, 48, 96, 48, 24], d.EmbedDims);
        Assert.Equal([2.0, 4, 4, 2, 2], d.MlpRatios);
        Assert.Equal([16, 16, 16, 8, 8], d.Depths);
        Assert.Equal([2, 4, 6, 1, 1], d.NumHeads);
        Assert.Equal([0.25, 0.5, 0.75, 0, 0], d.AttnRatio);
        Assert.Equal(Enumerable.Repeat("DWConv", 5), d.ConvType);
        Assert.Equal(Enumerable.Repeat("RLN", 5), d.NormLayer);
        Assert.Equal((8, DehazeFormerInputRange.MinusOneOne), (d.WindowSize, d.InputRange));
        Assert.Equal([0, 0.5, 1, 0, 0], DehazeFormerOptions.T.AttnRatio);
        Assert.Equal([8, 8, 8, 4, 4], DehazeFormerOptions.S.Depths);
        Assert.Equal(Enumerable.Repeat("Conv", 5), DehazeFormerOptions.M.ConvType);
        Assert.Equal([48, 96, 192, 96, 48], DehazeFormerOptions.L.EmbedDims);
        Assert.Equal([16, 16, 16, 12, 12], DehazeFormerOptions.L.Depths);
        Assert.Equal(d.GetHashCode(), new DehazeFormerOptions().GetHashCode());
        Assert.NotEqual(d, d with { AttnRatio = [0.25, 0.5, 0.75, 0, 0.5] });
        Assert.NotEqual(d, d with { InputRange = DehazeFormerInputRange.ZeroOne });
    }

    [Fact]
    public void AttentionBlocksAreTheLastOnesOfEachStage()
    {
        // attn_loc='last': i >= depth - attn_ratio * depth.
        var t = DehazeFormerOptions.T;
        Assert.Equal([false, false, false, false], Enumerable.Range(0, 4).Select(i => t.UsesAttention(0, i)));
        Assert.Equal([false, false, true, true], Enumerable.Range(0, 4).Select(i => t.UsesAttention(1, i)));
        Assert.Equal([true, true, true, true], Enumerable.Range(0, 4).Select(i => t.UsesAttention(2, i)));
        var m = DehazeFormerOptions.M; // depth 12, ratio 1/4: the last 3
        Assert.Equal(3, Enumerable.Range(0, 12).Count(i => m.UsesAttention(0, i)));
        Assert.True(m.UsesAttention(0, 9));
        Assert.False(m.UsesAttention(0, 8));
    }

    [Fact]
    public void CloneArchitectureHasTheSameKeysAndShapesButFreshValues()
    {
        using var scope = NewDisposeScope();
        using var model = new DehazeFormer(DehazeFormerOptions.T);
        IArchitectureCloneable cloneable = model;
        using var clone = cloneable.CloneArchitecture();
        Assert.Same(model.Options, Assert.IsType<DehazeFormer>(clone).Options);
        AssertSameKeysAndShapes(StateDictShapes(model), clone);
        var a = model.state_dict();
        var b = clone.state_dict();
        foreach (var key in a.Keys.Where(static k => k.EndsWith(".weight", StringComparison.Ordinal) && !k.EndsWith("norm1.weight", StringComparison.Ordinal)))
            Assert.False(AllEqual(a[key], b[key]), $"{key}: the clone has the same values (expected a fresh initialisation)");
    }

    [Fact]
    public void InvalidOptionsAreClearErrors()
    {
        var t = DehazeFormerOptions.T;
        string Error(DehazeFormerOptions o) => Assert.Throws<ArgumentException>(() => new DehazeFormer(o)).Message;
        Assert.Contains("Depths needs 5 entries (one per stage), got 4", Error(t with { Depths = [4, 4, 4, 2] }));
        Assert.Contains("ConvType 'conv' (stage 0) is not supported; use 'DWConv' or 'Conv'", Error(t with { ConvType = ["conv", "DWConv", "DWConv", "DWConv", "DWConv"] }));
        Assert.Contains("NormLayer 'LayerNorm' (stage 2)", Error(t with { NormLayer = ["RLN", "RLN", "LayerNorm", "RLN", "RLN"] }));
        Assert.Contains("EmbedDims entries 1 and 3", Error(t with { EmbedDims = [24, 48, 96, 32, 24] }));
        Assert.Contains("AttnRatio entries must be in [0, 1], got 1.5", Error(t with { AttnRatio = [0, 0.5, 1.5, 0, 0] }));
        Assert.Contains("NumHeads entry 2 must be >= 1 and divide the stage's 96 channels, got 5", Error(t with { NumHeads = [2, 4, 5, 1, 1] }));
        Assert.Contains("WindowSize must be >= 1", Error(t with { WindowSize = 0 }));
        // A head count that does not divide the channels is fine where the stage has no attention (as in the original).
        using var ok = new DehazeFormer(t with { NumHeads = [5, 4, 6, 1, 1] });
    }

    [Fact]
    public void WrongInputsAreClearErrors()
    {
        using var scope = NewDisposeScope();
        using var model = new DehazeFormer(DehazeFormerOptions.T);
        model.eval();
        Assert.Contains("[N, 3, H, W]", Assert.Throws<ArgumentException>(() => model.call(rand(1, 1, 32, 32))).Message);
        // 16x16: the quarter-resolution map is 4x4, too small to reflect-pad to the 8x8 window (PyTorch fails too).
        var e = Assert.Throws<ArgumentException>(() => { using var _ = no_grad(); model.call(rand(1, 3, 16, 16)); });
        Assert.Contains("too small for a window-8 attention block", e.Message);
    }
}
