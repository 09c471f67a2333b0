using Mcir.Abstractions.Models;
using Mcir.Core.Inference;
using Mcir.Core.IO;
using Mcir.Core.Weights;
using Mcir.Tests.Shared;
using TorchSharp;
using static Mcir.Tests.Shared.ArchAsserts;
using static TorchSharp.torch;

namespace Mcir.Plugins.Deraining.Tests;

public sealed class IdtTests
{
    // The reference's own float32-vs-float64 difference is 2.1e-7 and its 1-vs-2-thread difference 1.5e-7 (fixtures README)
    // on outputs up to 1.24; 1e-5 leaves room for other CPUs' kernels (AVX2 vs AVX-512 summation order).
    private const double Tolerance = 1e-5;

    private static Idt LoadFixtureModel(IdtFixture fixture) => LoadReference(new Idt(fixture.Options()), fixture);

    private static Tensor RainyInput() => Npy.Load(IdtFixture.ReferencePath("rainy_u8.npy")).to(ScalarType.Float32) / 255;

    [Fact]
    public void FixtureIsTheSmallPresetAndTheRequestedConfigIsTheDefault()
    {
        var fixture = IdtFixture.Load();
        Assert.Equal(Idt.Presets["idt-small"], fixture.Options());
        Assert.Equal(Idt.Presets["idt"], fixture.Options("requested_config_kwargs"));
        Assert.Equal(new IdtOptions(), Idt.Presets["idt"]);
        Assert.Equal(["idt", "idt-small"], Idt.Presets.Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void StateDictKeysAndShapesMatchTheFixture()
    {
        var fixture = IdtFixture.Load();
        using var model = new Idt(fixture.Options());
        AssertSameManifest(fixture.StateDictManifest(), StateDictShapes(model));
        var sd = fixture.Config.GetProperty("state_dict");
        Assert.Equal(sd.GetProperty("num_parameters").GetInt64(), model.parameters().Sum(static p => p.numel()));
        Assert.Empty(model.named_buffers()); // relative_position_index is a plain attribute in the original too
    }

    [Fact]
    public void DefaultPresetHasTheReleasedModelsKeysShapesAndParameterCount()
    {
        var fixture = IdtFixture.Load();
        using var model = new Idt(Idt.Presets["idt"]);
        AssertSameManifest(ArchFixture.Manifest(fixture.Config.GetProperty("requested_config_state_dict_keys")), StateDictShapes(model));
        Assert.Equal(fixture.Config.GetProperty("requested_config_num_parameters").GetInt64(), model.parameters().Sum(static p => p.numel()));
    }

    [Fact]
    public void ReproducesTheReferenceOutputFromTheBareStateDict()
    {
        var fixture = IdtFixture.Load();
        using var scope = NewDisposeScope();
        using var model = LoadFixtureModel(fixture);
        Tensor output;
        using (no_grad()) output = model.call(Npy.Load(fixture.InputPath));
        double diff = MaxAbsDiff(output, Npy.Load(fixture.OutputPath));
        Console.WriteLine($"idt output.npy: max |output - reference| = {diff:E3}");
        Assert.True(diff <= Tolerance, $"max |output - reference| = {diff:E3} > {Tolerance:E0}");
    }

    [Fact]
    public void DataParallelCheckpointLoadsByNameAndReproducesTheReference()
    {
        // IDT's train_derain.py saves nn.DataParallel(model).state_dict() (every key 'module.…'); the engine's reader strips it.
        var fixture = IdtFixture.Load();
        using var scope = NewDisposeScope();
        var state = StateDictFile.Read(IdtFixture.ReferencePath("idt_dataparallel.pth"));
        Assert.DoesNotContain(state.Keys, static k => k.StartsWith("module.", StringComparison.Ordinal));
        using var model = new Idt(fixture.Options());
        var (missing, unexpected) = model.load_state_dict(state, strict: true);
        Assert.Empty(missing);
        Assert.Empty(unexpected);
        model.eval();
        using (no_grad())
            Assert.True(MaxAbsDiff(model.call(Npy.Load(fixture.InputPath)), Npy.Load(fixture.OutputPath)) <= Tolerance);
    }

    [Fact]
    public void WholeImagesAreRestoredAsIdtsFullSizeTest()
    {
        // expected_float.npy: test_full_size.py's splitimage (128, overlap 20) / model / mergeimage (centre-distance scores)
        // on a 150x170 image, computed with IDT's own functions and the fixture model; windows at rows 0, 22 and columns 0, 42.
        var fixture = IdtFixture.Load();
        using var scope = NewDisposeScope();
        using var model = LoadFixtureModel(fixture);
        var starts = IdtFixture.Expected().GetProperty("windows").GetProperty("starts").EnumerateArray()
            .Select(static s => (s[0].GetInt32(), s[1].GetInt32())).ToList();
        var ys = TiledRestorer.TileStarts(150, 128, Idt.TestOverlap);
        var xs = TiledRestorer.TileStarts(170, 128, Idt.TestOverlap);
        Assert.Equal(starts, ys.SelectMany(y => xs.Select(x => (y, x))));

        var restored = TiledRestorer.Restore(model, RainyInput(), new TileOptions { TileSize = 48 }); // tile options do not apply
        double diff = MaxAbsDiff(restored, Npy.Load(IdtFixture.ReferencePath("expected_float.npy")));
        Console.WriteLine($"idt 150x170 windowed: max |output - reference| = {diff:E3}");
        Assert.True(diff <= Tolerance, $"max |windowed output - test_full_size.py| = {diff:E3} > {Tolerance:E0}");
        Assert.True(model.training is false);
    }

    [Fact]
    public void OneWindowIsOneForwardPass()
    {
        // 128x128: a single window whose merge weights cancel (w·y / w: within a float32 rounding of y).
        var fixture = IdtFixture.Load();
        using var scope = NewDisposeScope();
        using var model = LoadFixtureModel(fixture);
        var input = Npy.Load(fixture.InputPath);
        using (no_grad())
        {
            double diff = MaxAbsDiff(TiledRestorer.Restore(model, input), model.call(input));
            Assert.True(diff <= 1e-6, $"single window vs forward: {diff:E3}");
        }
    }

    [Fact]
    public void SidesShorterThanTheWindowAreReflectPaddedAndCropped()
    {
        // IDT's own test_full_size.py fails for sides <= 128; the engine pads a short side to the window and crops back.
        var fixture = IdtFixture.Load();
        using var scope = NewDisposeScope();
        using var model = LoadFixtureModel(fixture);
        var input = Npy.Load(fixture.InputPath).narrow(2, 0, 100);
        using (no_grad())
        {
            var restored = TiledRestorer.Restore(model, input);
            Assert.Equal(new long[] { 1, 3, 100, 128 }, restored.shape);
            var byHand = model.call(nn.functional.pad(input, [0, 0, 0, 28], PaddingModes.Reflect)).narrow(2, 0, 100);
            Assert.True(MaxAbsDiff(restored, byHand) <= 1e-6);
        }
    }

    [Fact]
    public void WindowWeightsAreIdtsScoreMap()
    {
        using var scope = NewDisposeScope();
        var w = TiledRestorer.WindowWeights(128, WindowMerge.InverseCenterDistance);
        Assert.Equal(new long[] { 1, 1, 128, 128 }, w.shape);
        // get_scoremap: 1 / sqrt((h - 64)^2 + (w - 64)^2 + 1e-3), float64 values stored as float32.
        Assert.Equal((float)(1 / Math.Sqrt(1e-3)), w[0, 0, 64, 64].item<float>());
        Assert.Equal((float)(1 / Math.Sqrt(64.0 * 64 + 64 * 64 + 1e-3)), w[0, 0, 0, 0].item<float>());
        Assert.Equal((float)(1 / Math.Sqrt(63.0 * 63 + 10 * 10 + 1e-3)), w[0, 0, 127, 54].item<float>());
        Assert.True(AllEqual(TiledRestorer.WindowWeights(4, WindowMerge.Mean), ones(1, 1, 4, 4)));
    }

    [Fact]
    public void TrainsEveryParameter()
    {
        // eval(): stochastic depth (drop_path_rate 0.1) may drop a whole branch for a batch of one sample in train mode.
        using var scope = NewDisposeScope();
        var fixture = IdtFixture.Load();
        using var model = LoadFixtureModel(fixture);
        model.call(Npy.Load(fixture.InputPath)).square().mean().backward();
        AssertEveryParameterHasGradient(model);
    }

    [Fact]
    public void StochasticDepthRatesAreTheOriginals()
    {
        // torch.linspace(0, 0.1, 10) sliced as IDT.__init__ does (values printed by the reference code, float32 .item()).
        var (first, last) = Idt.DropPathRates(new IdtOptions());
        double[] expectedFirst = [0.0, 0.03333333507180214, 0.06666667014360428, 0.08888889104127884, 0.1, 0.10000000149011612, 0.08888889104127884, 0.06666667014360428, 0.04444444552063942];
        double[] expectedLast = [0.02222222276031971, 0.0555555559694767, 0.07777778059244156, 0.10000000149011612, 0.1, 0.10000000149011612, 0.07777778059244156, 0.0555555559694767, 0.02222222276031971];
        Assert.Equal(expectedFirst, first);
        Assert.Equal(expectedLast, last);
    }

    [Fact]
    public void StochasticDepthActsInTrainingOnly()
    {
        var fixture = IdtFixture.Load();
        using var scope = NewDisposeScope();
        var input = Npy.Load(fixture.InputPath).expand(4, -1, -1, -1);
        using var model = LoadFixtureModel(fixture);
        using var noDrop = LoadReference(new Idt(fixture.Options() with { DropPathRate = 0 }), fixture);
        using (no_grad())
        {
            var eval = model.call(input);
            manual_seed(5);
            model.train();
            Assert.True(MaxAbsDiff(model.call(input), eval) > 1e-3, "drop_path_rate 0.1 changed nothing in train mode");
            noDrop.train();
            Assert.True(MaxAbsDiff(noDrop.call(input), eval) <= 1e-6, "drop_path_rate 0 changed the output in train mode");
        }
    }

    [Fact]
    public void ChannelsLastInputGivesTheSameOutput()
    {
        var fixture = IdtFixture.Load();
        using var scope = NewDisposeScope();
        using var model = LoadFixtureModel(fixture);
        var input = Npy.Load(fixture.InputPath);
        using (no_grad())
            Assert.True(MaxAbsDiff(model.call(input), model.call(Mcir.Core.Compute.ChannelsLast.Of(input))) <= Tolerance);
    }

    [Fact]
    public void InitialisationFollowsTheOriginal()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        using var model = new Idt(new IdtOptions());
        var sd = model.state_dict();
        // trunc_normal_(std=.02) on every Linear weight and relative-position table, zero Linear biases, LayerNorm 1 / 0.
        Assert.InRange(sd["encoderlayer_1.blocks.0.attn.qkv.to_kv.weight"].std().item<float>(), 0.019, 0.021);
        Assert.InRange(sd["bottle.blocks.0.mlp.linear1.0.weight"].std().item<float>(), 0.019, 0.021);
        Assert.InRange(sd["encoderlayer_0.blocks.3.attn.relative_position_bias_table"].std().item<float>(), 0.018, 0.022);
        Assert.True(sd["encoderlayer_0.blocks.3.attn.relative_position_bias_table"].abs().max().item<float>() <= 2);
        Assert.True(AllEqual(sd["decoderlayer_2.blocks.1.attn.proj.bias"], zeros(128)));
        Assert.True(AllEqual(sd["decoderlayer_2.blocks.1.norm1.weight"], ones(128)));
        Assert.True(AllEqual(sd["decoderlayer_2.blocks.2.norm2.bias"], zeros(128)));
        // Convolutions keep PyTorch's default (kaiming-uniform a = sqrt(5)): bound 1/sqrt(fan_in) for the bias.
        double bound = 1 / Math.Sqrt(32 * 16);
        Assert.True(sd["dowsample_0.conv.0.bias"].abs().max().item<float>() <= bound);
        Assert.False(AllEqual(sd["dowsample_0.conv.0.bias"], zeros(64)));
    }

    [Fact]
    public void RelativePositionIndexClampsOffsetsToTheTable()
    {
        // win 2, k_bound 2: offsets in {-1, 0, 1}, table side 3; token 0 = (0, 0), token 3 = (1, 1).
        var index = WindowAttention.RelativePositionIndex(2, 2);
        Assert.Equal(4 * 4, index.Length);
        Assert.Equal(1 * 3 + 1, index[0 * 4 + 0]); // (0, 0) - (0, 0)
        Assert.Equal(0 * 3 + 0, index[0 * 4 + 3]); // (0, 0) - (1, 1) = (-1, -1)
        Assert.Equal(2 * 3 + 2, index[3 * 4 + 0]); // (1, 1) - (0, 0)
        // win 4, k_bound 2: an offset of 3 is clamped to 1.
        var clamped = WindowAttention.RelativePositionIndex(4, 2);
        Assert.Equal(2 * 3 + 2, clamped[15 * 16 + 0]);
    }

    [Fact]
    public void GeneratedDescriptorDescribesTheModel()
    {
        var d = Idt.Descriptor;
        Assert.Equal("idt", d.Name);
        Assert.Equal(["derain"], d.Tasks);
        Assert.Equal(typeof(Idt), d.ModelType);
        Assert.Equal(typeof(IdtOptions), d.OptionsType);
        Assert.Equal(new IdtOptions(), d.DefaultOptions);
        using var built = d.Create(IdtOptions.Small);
        var idt = Assert.IsType<Idt>(built);
        Assert.Equal(4, idt.Options.EmbedDim);
        IWindowedInference windows = idt;
        Assert.Equal((128, 20, WindowMerge.InverseCenterDistance), (windows.InferenceWindow, windows.InferenceOverlap, windows.InferenceMerge));
    }

    [Fact]
    public void CloneArchitectureHasTheSameKeysAndShapesButFreshValues()
    {
        using var scope = NewDisposeScope();
        using var model = new Idt(IdtOptions.Small);
        IArchitectureCloneable cloneable = model;
        using var clone = cloneable.CloneArchitecture();
        Assert.Same(model.Options, Assert.IsType<Idt>(clone).Options);
        AssertSameManifest(StateDictShapes(model), StateDictShapes(clone));
        Assert.False(AllEqual(model.state_dict()["encoderlayer_0.blocks.0.attn.qkv.to_q.weight"], clone.state_dict()["encoderlayer_0.blocks.0.attn.qkv.to_q.weight"]));
    }

    [Fact]
    public void InvalidOptionsAndInputsAreClearErrors()
    {
        var s = IdtOptions.Small;
        string Error(IdtOptions o) => Assert.Throws<ArgumentException>(() => new Idt(o)).Message;
        Assert.Contains("Depths needs 9 entries", Error(s with { Depths = [3, 3, 2, 2, 1, 1, 2, 2] }));
        Assert.Contains("ImgSize must be a multiple of 64", Error(s with { ImgSize = 96 }));
        Assert.Contains("NumHeads entry 0 must be >= 1 and divide the level's 4 channels, got 3", Error(s with { NumHeads = [3, 2, 4, 8, 16, 16, 8, 4, 2] }));
        Assert.Contains("must divide the spatial transformer's 64 features, got 128", Error(s with { EmbedDim = 32, NumHeads = [1, 2, 4, 128, 16, 16, 8, 4, 2] }));
        Assert.Contains("WinSize 12 must divide", Error(s with { WinSize = 12 }));
        Assert.Contains("depths[5] + depths[6] + depths[7] must be below 10", Error(s with { Depths = [3, 3, 2, 2, 1, 4, 4, 2, 3] }));

        using var scope = NewDisposeScope();
        using var model = new Idt(IdtOptions.Small with { ImgSize = 64 });
        model.eval();
        var e = Assert.Throws<ArgumentException>(() => { using var _ = no_grad(); model.call(rand(1, 3, 64, 72)); });
        Assert.Contains("IDT accepts only [B, 3, 64, 64] inputs", e.Message);
        using (no_grad()) Assert.Equal(new long[] { 2, 3, 64, 64 }, model.call(rand(2, 3, 64, 64)).shape);
    }
}
