using System.Collections;
using Mcir.Abstractions.Models;
using Mcir.Core.IO;
using Mcir.Core.Weights;
using TorchSharp;
using TorchSharp.PyBridge;
using static Mcir.Tests.Shared.ArchAsserts;
using static TorchSharp.torch;

namespace Mcir.Plugins.SuperResolution.Tests;

public sealed class EdsrTests
{
    private const double Tolerance = 1e-5;

    [Theory]
    [InlineData("edsr")]
    [InlineData("edsr_x2")]
    public void StateDictKeysAndShapesMatchTheFixture(string name)
    {
        var fixture = EdsrFixture.Load(name);
        using var model = new Edsr(fixture.Options());
        AssertSameManifest(fixture.StateDictManifest(), StateDictShapes(model));
        Assert.Equal(fixture.Config.GetProperty("state_dict").GetProperty("num_tensors").GetInt32(), model.state_dict().Count);
    }

    [Fact]
    public void LightPresetHasTheFullSizeReferenceNamesAndShapes()
    {
        // config.json's requested_config (EDSR 64/16 ×4, res_scale 1) is exactly EdsrOptions.Light.
        var fixture = EdsrFixture.Load("edsr");
        Assert.Equal(fixture.Options("requested_config_kwargs"), EdsrOptions.Light);
        using var model = new Edsr(EdsrOptions.Light);
        AssertSameManifest(EdsrFixture.Manifest(fixture.Config.GetProperty("requested_config_state_dict_keys")), StateDictShapes(model));
        Assert.Equal(fixture.Config.GetProperty("requested_config_num_parameters").GetInt64(), model.parameters().Sum(static p => p.numel()));
    }

    [Theory]
    [InlineData("edsr")]
    [InlineData("edsr_x2")]
    public void ParameterCountMatchesTheFixture(string name)
    {
        var fixture = EdsrFixture.Load(name);
        using var model = new Edsr(fixture.Options());
        long expected = fixture.Config.GetProperty("state_dict").GetProperty("num_parameters").GetInt64();
        Assert.Equal(expected, model.parameters().Sum(static p => p.numel()));
    }

    [Fact]
    public void MeanIsNotInTheStateDict()
    {
        using var model = new Edsr(EdsrOptions.Light with { NumBlock = 1 });
        Assert.Empty(model.buffers());
        Assert.DoesNotContain(model.state_dict().Keys, static k => k.Contains("mean", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("edsr")]
    [InlineData("edsr_x2")]
    public void ReproducesTheReferenceOutputFromTheBareStateDict(string name)
    {
        var fixture = EdsrFixture.Load(name);
        using var scope = NewDisposeScope();
        using var model = new Edsr(fixture.Options());
        var sd = StateDictFile.Read(fixture.StateDictPath);
        var (missing, unexpected) = model.load_state_dict(sd, strict: true);
        Assert.Empty(missing);
        Assert.Empty(unexpected);
        model.eval();

        var input = Npy.Load(fixture.InputPath);
        var expected = Npy.Load(fixture.OutputPath);
        Tensor output;
        using (no_grad()) output = model.call(input);
        double diff = MaxAbsDiff(output, expected);
        Assert.True(diff <= Tolerance, $"{name}: max |output - reference| = {diff:E3} > {Tolerance:E0}");
    }

    [Fact]
    public void LoadsThroughPyBridgeLoadPyToo()
    {
        var fixture = EdsrFixture.Load("edsr_x2");
        using var scope = NewDisposeScope();
        using var model = new Edsr(fixture.Options());
        model.load_py(fixture.StateDictPath);
        model.eval();
        Tensor output;
        using (no_grad()) output = model.call(Npy.Load(fixture.InputPath));
        Assert.True(MaxAbsDiff(output, Npy.Load(fixture.OutputPath)) <= Tolerance);
    }

    [Theory]
    [InlineData("params")]
    [InlineData("params_ema")]
    public void OfficialWrappedCheckpointWithModulePrefixLoadsTheSame(string wrapperKey)
    {
        var fixture = EdsrFixture.Load("edsr");
        using var scope = NewDisposeScope();
        var bare = StateDictFile.Read(fixture.StateDictPath);

        // BasicSR's save_network: torch.save({'params': state_dict}) of a DataParallel model ('module.' prefixes).
        var inner = new Hashtable();
        foreach (var (key, value) in bare) inner["module." + key] = value;
        var wrapper = new Hashtable { [wrapperKey] = inner };
        string path = Path.Combine(Path.GetTempPath(), $"mcir-edsr-wrapped-{Guid.NewGuid():N}.pth");
        try
        {
            using (var stream = File.Create(path)) PyTorchPickler.PickleStateDict(stream, wrapper);

            var loaded = StateDictFile.Read(path);
            Assert.Equal(bare.Keys.Order(StringComparer.Ordinal), loaded.Keys.Order(StringComparer.Ordinal));

            using var fromBare = new Edsr(fixture.Options());
            using var fromWrapped = new Edsr(fixture.Options());
            fromBare.load_state_dict(bare, strict: true);
            fromWrapped.load_state_dict(loaded, strict: true);
            fromBare.eval();
            fromWrapped.eval();
            var input = Npy.Load(fixture.InputPath);
            using (no_grad())
            {
                var a = fromBare.call(input);
                var b = fromWrapped.call(input);
                Assert.True(AllEqual(a, b), "the wrapped checkpoint gives another output than the bare one");
                Assert.True(MaxAbsDiff(b, Npy.Load(fixture.OutputPath)) <= Tolerance);
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void GeneratedDescriptorDescribesTheModel()
    {
        var d = Edsr.Descriptor;
        Assert.Equal("edsr", d.Name);
        Assert.Equal(["sr"], d.Tasks);
        Assert.Equal(typeof(Edsr), d.ModelType);
        Assert.Equal(typeof(EdsrOptions), d.OptionsType);
        Assert.Equal(new EdsrOptions(), d.DefaultOptions);
        Assert.False(string.IsNullOrWhiteSpace(d.Description));

        using var built = d.Create(EdsrOptions.Light with { NumBlock = 1, Upscale = 2 });
        var edsr = Assert.IsType<Edsr>(built);
        Assert.Equal(2, edsr.Options.Upscale);
    }

    [Fact]
    public void DefaultOptionsAreThePaperEdsrAndPresetsAreNamed()
    {
        var d = new EdsrOptions();
        Assert.Equal((3, 3, 256, 32, 4, 0.1, 255.0), (d.NumInChannels, d.NumOutChannels, d.NumFeat, d.NumBlock, d.Upscale, d.ResScale, d.ImgRange));
        Assert.Equal([0.4488, 0.4371, 0.4040], d.RgbMean);
        Assert.Equal((64, 16, 1.0, 4), (EdsrOptions.Light.NumFeat, EdsrOptions.Light.NumBlock, EdsrOptions.Light.ResScale, EdsrOptions.Light.Upscale));
        Assert.Equal(["edsr", "edsr-light"], Edsr.Presets.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(d, Edsr.Presets["edsr"]);
        Assert.Same(EdsrOptions.Light, Edsr.Presets["edsr-light"]);
        Assert.Equal(d.GetHashCode(), new EdsrOptions().GetHashCode());
        Assert.NotEqual(d, d with { RgbMean = [0.5, 0.5, 0.5] });
    }

    [Fact]
    public void CloneArchitectureHasTheSameKeysAndShapesButFreshValues()
    {
        using var scope = NewDisposeScope();
        var options = EdsrOptions.Light with { NumBlock = 2, Upscale = 3 };
        using var model = new Edsr(options);
        IArchitectureCloneable cloneable = model;
        using var clone = cloneable.CloneArchitecture();
        var typed = Assert.IsType<Edsr>(clone);
        Assert.Same(model.Options, typed.Options);
        AssertSameManifest(StateDictShapes(model), StateDictShapes(clone));

        var a = model.state_dict();
        var b = clone.state_dict();
        foreach (var key in a.Keys)
            Assert.False(AllEqual(a[key], b[key]), $"{key}: the clone has the same values (expected a fresh initialisation)");
    }

    [Theory]
    [InlineData(2, "upsample.0.weight", new long[] { 256, 64, 3, 3 }, 2)]
    [InlineData(3, "upsample.0.weight", new long[] { 576, 64, 3, 3 }, 2)]
    [InlineData(4, "upsample.2.weight", new long[] { 256, 64, 3, 3 }, 4)]
    [InlineData(8, "upsample.4.weight", new long[] { 256, 64, 3, 3 }, 6)]
    public void UpsampleFollowsBasicSr(int scale, string lastConvKey, long[] lastConvShape, int upsampleKeys)
    {
        using var scope = NewDisposeScope();
        using var model = new Edsr(EdsrOptions.Light with { NumBlock = 1, Upscale = scale });
        var sd = model.state_dict();
        Assert.Equal(lastConvShape, sd[lastConvKey].shape);
        Assert.Equal(upsampleKeys, sd.Keys.Count(static k => k.StartsWith("upsample.", StringComparison.Ordinal)));
        using (no_grad())
        {
            var y = model.call(rand(1, 3, 5, 7));
            Assert.Equal(new long[] { 1, 3, 5 * scale, 7 * scale }, y.shape);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(6)]
    [InlineData(-2)]
    public void UnsupportedUpscaleIsAClearError(int scale)
    {
        var e = Assert.Throws<ArgumentException>(() => new Edsr(EdsrOptions.Light with { Upscale = scale }));
        Assert.Contains($"Upscale {scale} is not supported", e.Message);
        Assert.Contains("3 and powers of two", e.Message);
    }

    [Fact]
    public void OtherInvalidOptionsAreClearErrors()
    {
        Assert.Contains("NumFeat", Assert.Throws<ArgumentException>(() => new Edsr(EdsrOptions.Light with { NumFeat = 0 })).Message);
        Assert.Contains("RgbMean", Assert.Throws<ArgumentException>(() => new Edsr(EdsrOptions.Light with { RgbMean = [0.5] })).Message);
        Assert.Contains("ImgRange", Assert.Throws<ArgumentException>(() => new Edsr(EdsrOptions.Light with { ImgRange = 0 })).Message);
    }

    [Fact]
    public void WrongInputChannelsAreAClearError()
    {
        using var scope = NewDisposeScope();
        using var model = new Edsr(EdsrOptions.Light with { NumBlock = 1, Upscale = 2 });
        var e = Assert.Throws<ArgumentException>(() => model.call(rand(1, 1, 8, 8)));
        Assert.Contains("[N, 3, H, W]", e.Message);
    }

    [Fact]
    public void ForwardFollowsTheInputDtype()
    {
        var fixture = EdsrFixture.Load("edsr_x2");
        using var scope = NewDisposeScope();
        using var model = new Edsr(fixture.Options());
        model.load_state_dict(StateDictFile.Read(fixture.StateDictPath), strict: true);
        model.to(ScalarType.Float64);
        model.eval();
        Tensor output;
        using (no_grad()) output = model.call(Npy.Load(fixture.InputPath).to(ScalarType.Float64));
        Assert.Equal(ScalarType.Float64, output.dtype);
        using var expected = Npy.Load(fixture.OutputPath).to(ScalarType.Float64);
        using var d = (output - expected).abs().max();
        Assert.True(d.item<double>() <= Tolerance);
    }
}
