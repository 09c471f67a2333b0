using System.Text.Json;
using Mcir.Abstractions.Models;
using Mcir.Core.IO;
using Mcir.Core.Weights;
using TorchSharp;
using Xunit.Abstractions;
using static Mcir.Tests.Shared.ArchAsserts;
using static TorchSharp.torch;

namespace Mcir.Plugins.SuperResolution.Tests;

public sealed class SwinIRTests(ITestOutputHelper output)
{
    // The fixture README gives float32-vs-float64 differences of ~1.5e-6 for these outputs.
    private const double Tolerance = 1e-5;
    private const string FixtureName = "swinir_light";

    private static SwinIROptions OptionsFrom(JsonElement k) => new()
    {
        Upscale = k.GetProperty("upscale").GetInt32(),
        InChans = k.GetProperty("in_chans").GetInt32(),
        ImgSize = k.GetProperty("img_size").GetInt32(),
        WindowSize = k.GetProperty("window_size").GetInt32(),
        ImgRange = k.GetProperty("img_range").GetDouble(),
        Depths = k.GetProperty("depths").EnumerateArray().Select(static e => e.GetInt32()).ToArray(),
        EmbedDim = k.GetProperty("embed_dim").GetInt32(),
        NumHeads = k.GetProperty("num_heads").EnumerateArray().Select(static e => e.GetInt32()).ToArray(),
        MlpRatio = k.GetProperty("mlp_ratio").GetDouble(),
        Upsampler = k.GetProperty("upsampler").GetString()!,
        ResiConnection = k.GetProperty("resi_connection").GetString()!,
    };

    private static (EdsrFixture Fixture, SwinIROptions Options) Load()
    {
        var fixture = EdsrFixture.Load(FixtureName);
        return (fixture, OptionsFrom(fixture.Config.GetProperty("constructor_kwargs")));
    }

    /// <summary>name → (shape, dtype) of a manifest, without the attn_mask entries (recomputed, never stored, by the port).</summary>
    private static List<(string Name, long[] Shape, string Dtype)> Manifest(JsonElement keys) =>
        keys.EnumerateObject()
            .Where(static p => !p.Name.EndsWith(".attn_mask", StringComparison.Ordinal))
            .Select(static p => (p.Name, p.Value.GetProperty("shape").EnumerateArray().Select(static e => e.GetInt64()).ToArray(),
                p.Value.GetProperty("dtype").GetString()!))
            .ToList();

    private static string DtypeName(ScalarType t) => t switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.Int64 => "int64",
        _ => t.ToString(),
    };

    private static void AssertSameManifest(List<(string Name, long[] Shape, string Dtype)> expected, nn.Module model)
    {
        var actual = model.state_dict();
        Assert.Equal(expected.Select(static e => e.Name).Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, shape, dtype) in expected)
        {
            Assert.True(shape.SequenceEqual(actual[name].shape),
                $"{name}: expected [{string.Join(", ", shape)}], got [{string.Join(", ", actual[name].shape)}]");
            Assert.Equal(dtype, DtypeName(actual[name].dtype));
        }
    }

    private static SwinIR LoadedModel(EdsrFixture fixture, SwinIROptions options) => LoadReference(new SwinIR(options), fixture);

    [Fact]
    public void StateDictKeysShapesAndDtypesMatchTheFixture()
    {
        var (fixture, options) = Load();
        using var model = new SwinIR(options);
        var sd = fixture.Config.GetProperty("state_dict");
        AssertSameManifest(Manifest(sd.GetProperty("keys")), model);
        Assert.Equal(sd.GetProperty("num_tensors").GetInt32(), model.state_dict().Count);
        Assert.Equal(sd.GetProperty("num_parameters").GetInt64(), model.parameters().Sum(static p => p.numel()));
        foreach (var omitted in sd.GetProperty("omitted_keys").EnumerateObject())
            Assert.DoesNotContain(omitted.Name, model.state_dict().Keys);
        Assert.Equal(Presets("swinir-small"), options);
    }

    private static SwinIROptions Presets(string name) => SwinIR.Presets[name];

    [Fact]
    public void LightPresetHasTheRequestedFullSizeNamesShapesAndCount()
    {
        // requested_config (depths/num_heads 4x6, all buffers) is exactly SwinIROptions.Light; its attn_mask entries
        // (one per shifted block) are the buffers this port recomputes per input size instead of storing.
        var (fixture, _) = Load();
        Assert.Equal(SwinIROptions.Light, OptionsFrom(fixture.Config.GetProperty("requested_config_kwargs")));
        using var model = new SwinIR(SwinIROptions.Light);
        var requested = fixture.Config.GetProperty("requested_config_state_dict_keys");
        AssertSameManifest(Manifest(requested), model);
        Assert.Equal(12, requested.EnumerateObject().Count(static p => p.Name.EndsWith(".attn_mask", StringComparison.Ordinal)));
        Assert.Equal(fixture.Config.GetProperty("requested_config_num_parameters").GetInt64(), model.parameters().Sum(static p => p.numel()));
    }

    [Fact]
    public void RelativePositionIndexEqualsTheCheckpointsBuffer()
    {
        var (fixture, options) = Load();
        using var scope = NewDisposeScope();
        var stored = StateDictFile.Read(fixture.StateDictPath);
        using var model = new SwinIR(options);
        var mine = model.state_dict();
        var keys = stored.Keys.Where(static k => k.EndsWith("relative_position_index", StringComparison.Ordinal)).ToList();
        Assert.Equal(4, keys.Count);
        foreach (var key in keys)
        {
            Assert.Equal(ScalarType.Int64, stored[key].dtype);
            Assert.True(AllEqual(stored[key], mine[key]), key);
        }
        Assert.DoesNotContain(model.buffers(), static b => b.dtype != ScalarType.Int64);
    }

    [Theory]
    [InlineData("input.npy", "output.npy")]
    [InlineData("input_rect.npy", "output_rect.npy")]
    public void ReproducesTheReferenceOutputFromTheBareStateDict(string inputFile, string outputFile)
    {
        var (fixture, options) = Load();
        using var scope = NewDisposeScope();
        using var model = LoadedModel(fixture, options);
        var input = Npy.Load(Path.Combine(fixture.Dir, inputFile));
        var expected = Npy.Load(Path.Combine(fixture.Dir, outputFile));
        Tensor y;
        using (no_grad()) y = model.call(input);
        Assert.Equal(ScalarType.Float32, y.dtype);
        double diff = MaxAbsDiff(y, expected);
        output.WriteLine($"{outputFile}: max |SwinIR - reference| = {diff:E3} (float32)");
        Assert.True(diff <= Tolerance, $"{outputFile}: max |output - reference| = {diff:E3} > {Tolerance:E0}");
    }

    [Theory]
    [InlineData("input.npy", "output.npy")]
    [InlineData("input_rect.npy", "output_rect.npy")]
    public void Float64ForwardStaysWithinTheReferencesFloat32Error(string inputFile, string outputFile)
    {
        var (fixture, options) = Load();
        using var scope = NewDisposeScope();
        using var model = LoadedModel(fixture, options);
        model.to(ScalarType.Float64);
        Assert.Equal(ScalarType.Int64, model.state_dict()["layers.0.residual_group.blocks.0.attn.relative_position_index"].dtype);
        Tensor y;
        using (no_grad()) y = model.call(Npy.Load(Path.Combine(fixture.Dir, inputFile)).to(ScalarType.Float64));
        Assert.Equal(ScalarType.Float64, y.dtype);
        double diff = MaxAbsDiff(y, Npy.Load(Path.Combine(fixture.Dir, outputFile)));
        output.WriteLine($"{outputFile}: max |SwinIR(float64) - reference(float32)| = {diff:E3}");
        Assert.True(diff <= Tolerance, $"{outputFile}: {diff:E3}");
    }

    [Fact]
    public void CheckpointsWithAttentionMasksLoadAfterWithoutAttentionMasks()
    {
        var (fixture, options) = Load();
        using var scope = NewDisposeScope();
        var sd = StateDictFile.Read(fixture.StateDictPath);
        var withMasks = new Dictionary<string, Tensor>(sd);
        foreach (var omitted in fixture.Config.GetProperty("state_dict").GetProperty("omitted_keys").EnumerateObject())
            withMasks[omitted.Name] = zeros(64, 64, 64);
        using var model = new SwinIR(options);
        var (_, unexpected) = model.load_state_dict(withMasks, strict: false);
        Assert.Equal(2, unexpected.Count);
        var cleaned = SwinIR.WithoutAttentionMasks(withMasks);
        Assert.Equal(sd.Count, cleaned.Count);
        var (missing, unexpected2) = model.load_state_dict(cleaned, strict: true);
        Assert.Empty(missing);
        Assert.Empty(unexpected2);
    }

    [Fact]
    public void PyTorchCheckpointWithAttentionMasksAndRelativePositionIndex_LoadsStrictly()
    {
        // {'params': fixture state dict + BasicSR's attn_mask buffers (img_size 16)}, written by PyTorch 1.13
        // (TestData/README.md); relative_position_index is in it too and is loaded and checked like any buffer.
        var (fixture, options) = Load();
        using var scope = NewDisposeScope();
        var sd = StateDictFile.Read(Path.Combine(AppContext.BaseDirectory, "TestData", "swinir_light_with_attn_mask.pth"));
        Assert.Equal(4, sd.Keys.Count(static k => k.EndsWith(".relative_position_index", StringComparison.Ordinal)));
        using var model = Mcir.Core.Compute.ChannelsLast.ForConvolutions(new SwinIR(options)); // as the engine and LoadReference
        var report = StateDictLoader.Load(model, sd, "weights 'swinir_light_with_attn_mask.pth'"); // strict
        Assert.Equal(["layers.0.residual_group.blocks.1.attn_mask", "layers.1.residual_group.blocks.1.attn_mask"], report.Recomputed);
        Assert.True(report.IsExact);
        Assert.Equal(model.state_dict().Count, report.Loaded.Count);
        // Same weights as the bare fixture loaded by TorchSharp's own strict load_state_dict: same output, bit for bit
        // (same kernels, same shapes, one process).
        using var reference = LoadedModel(fixture, options);
        model.eval();
        Tensor y, expected;
        var input = Npy.Load(fixture.InputPath);
        using (no_grad())
        {
            y = model.call(input);
            expected = reference.call(input);
        }
        Assert.Equal(0.0, MaxAbsDiff(y, expected));

        // A wrong relative_position_index shape is still a mismatch: only the masks are skipped by name.
        sd["layers.0.residual_group.blocks.0.attn.relative_position_index"] = zeros(new long[] { 4, 4 }, ScalarType.Int64);
        var e = Assert.Throws<StateDictMismatchException>(() => StateDictLoader.Load(model, sd, "weights 'x'"));
        Assert.Contains("relative_position_index: file [4, 4], model [64, 64]", e.Message);
    }

    [Fact]
    public void InputsNotAMultipleOfTheWindowAreAClearError()
    {
        var (_, options) = Load();
        using var scope = NewDisposeScope();
        using var model = new SwinIR(options);
        model.eval();
        var e = Assert.Throws<ArgumentException>(() => model.call(rand(1, 3, 30, 40)));
        Assert.Contains("multiples of the window size 8", e.Message);
        Assert.Contains("pad the input to 32x40", e.Message);
        Assert.Contains("[N, 3, H, W]", Assert.Throws<ArgumentException>(() => model.call(rand(1, 1, 8, 8))).Message);
    }

    [Fact]
    public void TheEnginePadsNonMultipleInputsAsBasicSRsSwinIRModelTest()
    {
        var (fixture, options) = Load();
        using var scope = NewDisposeScope();
        using var model = LoadedModel(fixture, options);
        model.eval();
        Assert.Equal(8, ((IInputSizeMultiple)model).InputSizeMultiple);
        Assert.Equal(8, Mcir.Core.Inference.TiledRestorer.InputMultipleOf(model));

        // 21x37: BasicSR's SwinIRModel.test pads (0, 3, 0, 3) with 'reflect', runs the network, keeps [0:4·21, 0:4·37]
        var x = Npy.Load(fixture.PathOf("input_rect.npy")).narrow(2, 0, 21).narrow(3, 0, 37);
        var restored = Mcir.Core.Inference.TiledRestorer.Restore(model, x);
        Assert.Equal(new long[] { 1, 3, 84, 148 }, restored.shape);
        Tensor expected;
        using (no_grad())
            expected = model.call(nn.functional.pad(x, [0, 3, 0, 3], PaddingModes.Reflect)).narrow(2, 0, 84).narrow(3, 0, 148);
        // Same libtorch, but the engine feeds channels-last strides (oneDNN picks other convolution kernels): float32
        // rounding differences only.
        double diff = MaxAbsDiff(expected, restored);
        output.WriteLine($"max |engine - explicit pad/forward/crop| = {diff:E3}");
        Assert.True(diff <= 1e-5, $"max difference {diff:E3}");
        // no user option needed, and the whole-image path is what validation and `test` use too
        Assert.Throws<ArgumentException>(() => model.call(x));
    }

    [Fact]
    public void GeneratedDescriptorDescribesTheModel()
    {
        var d = SwinIR.Descriptor;
        Assert.Equal("swinir", d.Name);
        Assert.Equal(["sr"], d.Tasks);
        Assert.Equal(typeof(SwinIR), d.ModelType);
        Assert.Equal(typeof(SwinIROptions), d.OptionsType);
        Assert.Equal(new SwinIROptions(), d.DefaultOptions);
        Assert.False(string.IsNullOrWhiteSpace(d.Description));

        using var built = d.Create(Presets("swinir-small") with { Upscale = 2 });
        Assert.Equal(2, Assert.IsType<SwinIR>(built).Options.Upscale);
    }

    [Fact]
    public void DefaultOptionsAreBasicSrsAndPresetsAreNamed()
    {
        var d = new SwinIROptions();
        Assert.Equal((64, 1, 3, 96, 7, 4.0, true, 0.1, false, true, 2, 1.0, "", "1conv"),
            (d.ImgSize, d.PatchSize, d.InChans, d.EmbedDim, d.WindowSize, d.MlpRatio, d.QkvBias, d.DropPathRate, d.Ape, d.PatchNorm,
                d.Upscale, d.ImgRange, d.Upsampler, d.ResiConnection));
        Assert.Equal([6, 6, 6, 6], d.Depths);
        Assert.Equal([6, 6, 6, 6], d.NumHeads);
        Assert.Null(d.QkScale);
        Assert.Equal(["swinir-classical", "swinir-light", "swinir-small"], SwinIR.Presets.Keys.Order(StringComparer.Ordinal));
        Assert.Same(SwinIROptions.Light, SwinIR.Presets["swinir-light"]);
        Assert.Equal(d.GetHashCode(), new SwinIROptions().GetHashCode());
        Assert.NotEqual(d, d with { Depths = [6, 6, 6] , NumHeads = [6, 6, 6] });
        using var defaults = new SwinIR(d with { Depths = [1], NumHeads = [6] });
        using (no_grad()) Assert.Equal(new long[] { 1, 3, 14, 21 }, defaults.call(rand(1, 3, 14, 21)).shape);
    }

    [Fact]
    public void CloneArchitectureHasTheSameKeysAndShapesButFreshParameters()
    {
        using var scope = NewDisposeScope();
        using var model = new SwinIR(Presets("swinir-small"));
        IArchitectureCloneable cloneable = model;
        using var clone = cloneable.CloneArchitecture();
        var typed = Assert.IsType<SwinIR>(clone);
        Assert.Same(model.Options, typed.Options);
        var a = model.state_dict();
        var b = clone.state_dict();
        Assert.Equal(a.Keys, b.Keys);
        foreach (var (name, p) in model.named_parameters())
        {
            if (p.numel() > 1 && !name.EndsWith(".bias", StringComparison.Ordinal) && !name.Contains("norm", StringComparison.Ordinal))
                Assert.False(AllEqual(a[name], b[name]), $"{name}: the clone has the same values (expected a fresh initialisation)");
        }
        foreach (var key in a.Keys.Where(static k => k.EndsWith("relative_position_index", StringComparison.Ordinal)))
            Assert.True(AllEqual(a[key], b[key]));
    }

    [Fact]
    public void InitialisationFollowsBasicSr()
    {
        // trunc_normal_(std 0.02) on Linear weights and position-bias tables (TorchSharp 0.107's own trunc_normal_
        // fills with the constant std, so this guards the port's sampler), zero Linear biases, unit LayerNorms.
        using var scope = NewDisposeScope();
        using var model = new SwinIR(SwinIROptions.Light);
        var sd = model.state_dict();
        foreach (var key in new[] { "layers.0.residual_group.blocks.0.attn.qkv.weight", "layers.3.residual_group.blocks.5.mlp.fc2.weight",
                     "layers.2.residual_group.blocks.1.attn.relative_position_bias_table" })
        {
            var t = sd[key];
            double std = t.std().item<float>(), mean = t.mean().item<float>();
            Assert.InRange(std, 0.018, 0.022);
            Assert.InRange(mean, -0.003, 0.003);
            Assert.True(t.abs().max().item<float>() <= 2.0f);
        }
        Assert.True(AllEqual(sd["layers.1.residual_group.blocks.0.attn.proj.bias"], zeros(60)));
        Assert.True(AllEqual(sd["norm.weight"], ones(60)));
        Assert.True(AllEqual(sd["patch_embed.norm.bias"], zeros(60)));
    }

    [Theory]
    [InlineData("pixelshuffle", 4, new[] { "conv_before_upsample.0.weight", "upsample.0.weight", "upsample.2.weight", "conv_last.weight" }, 4)]
    [InlineData("pixelshuffle", 3, new[] { "conv_before_upsample.0.weight", "upsample.0.weight", "conv_last.weight" }, 3)]
    [InlineData("pixelshuffledirect", 3, new[] { "upsample.0.weight" }, 3)]
    [InlineData("nearest+conv", 4, new[] { "conv_before_upsample.0.weight", "conv_up1.weight", "conv_up2.weight", "conv_hr.weight", "conv_last.weight" }, 4)]
    [InlineData("", 2, new[] { "conv_last.weight" }, 1)]
    public void UpsamplersFollowBasicSr(string upsampler, int scale, string[] keys, int outputScale)
    {
        using var scope = NewDisposeScope();
        var options = Presets("swinir-small") with { Upsampler = upsampler, Upscale = scale, Depths = [2], NumHeads = [6], ResiConnection = "3conv" };
        using var model = new SwinIR(options);
        var sd = model.state_dict();
        foreach (var key in keys) Assert.Contains(key, sd.Keys);
        Assert.Contains("conv_after_body.4.weight", sd.Keys);
        Assert.Contains("layers.0.conv.2.weight", sd.Keys);
        model.eval();
        using (no_grad())
            Assert.Equal(new long[] { 2, 3, 16 * outputScale, 24 * outputScale }, model.call(rand(2, 3, 16, 24)).shape);
    }

    [Fact]
    public void UnsupportedOptionsAreClearErrors()
    {
        var light = SwinIROptions.Light;
        var e = Assert.Throws<ArgumentException>(() => new SwinIR(light with { Upsampler = "bicubic" }));
        Assert.Contains("Upsampler 'bicubic' is not supported", e.Message);
        Assert.Contains("pixelshuffledirect", e.Message);
        Assert.Contains("only Upscale 4", Assert.Throws<ArgumentException>(() => new SwinIR(light with { Upsampler = "nearest+conv", Upscale = 2 })).Message);
        Assert.Contains("Upscale 5", Assert.Throws<ArgumentException>(() => new SwinIR(light with { Upsampler = "pixelshuffle", Upscale = 5 })).Message);
        Assert.Contains("ResiConnection", Assert.Throws<ArgumentException>(() => new SwinIR(light with { ResiConnection = "2conv" })).Message);
        Assert.Contains("NumHeads", Assert.Throws<ArgumentException>(() => new SwinIR(light with { NumHeads = [6, 6, 6, 7] })).Message);
        Assert.Contains("same length", Assert.Throws<ArgumentException>(() => new SwinIR(light with { NumHeads = [6, 6] })).Message);
    }

    [Fact]
    public void SmallImgSizeShrinksTheWindowAndDropsTheShiftAsBasicSr()
    {
        using var scope = NewDisposeScope();
        var options = Presets("swinir-small") with { ImgSize = 4 };
        Assert.Equal((4, 0), (options.EffectiveWindowSize, options.EffectiveShiftSize));
        using var model = new SwinIR(options);
        Assert.Equal(new long[] { 49, 6 }, model.state_dict()["layers.0.residual_group.blocks.0.attn.relative_position_bias_table"].shape);
        model.eval();
        using (no_grad()) Assert.Equal(new long[] { 1, 3, 48, 32 }, model.call(rand(1, 3, 12, 8)).shape);
    }

    [Fact]
    public void TrainsWithStochasticDepthAndIsDeterministicInEval()
    {
        using var scope = NewDisposeScope();
        using var model = new SwinIR(Presets("swinir-small") with { DropPathRate = 0.5, DropRate = 0.1 });
        model.train();
        var x = rand(2, 3, 16, 16);
        var y = model.call(x);
        y.abs().mean().backward();
        Assert.NotNull(model.state_dict()["layers.0.residual_group.blocks.1.attn.relative_position_bias_table"]);
        Assert.All(model.parameters(), static p => Assert.NotNull(p.grad));
        model.eval();
        using (no_grad()) Assert.True(AllEqual(model.call(x), model.call(x)));
    }
}
