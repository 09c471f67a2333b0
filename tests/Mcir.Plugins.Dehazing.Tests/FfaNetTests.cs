using Mcir.Abstractions.Models;
using Mcir.Core.IO;
using Mcir.Core.ModelContrast;
using TorchSharp;
using static Mcir.Tests.Shared.ArchAsserts;
using static TorchSharp.torch;

namespace Mcir.Plugins.Dehazing.Tests;

public sealed class FfaNetTests
{
    private const double Tolerance = 1e-5;

    private static FfaNet LoadFixtureModel(FfaNetFixture fixture, FfaNetOptions options) => LoadReference(new FfaNet(options), fixture);

    [Fact]
    public void FixtureOptionsAreTheSmallPresetWithoutNormalisation()
    {
        var fixture = FfaNetFixture.Load();
        Assert.Equal(fixture.Options(), FfaNetOptions.Small with { NormalizeInput = false });
        Assert.Same(FfaNetOptions.Small, FfaNet.Presets["ffa-net-small"]);
        Assert.Equal(1, FfaNetOptions.Small.Blocks);
        Assert.True(FfaNetOptions.Small.NormalizeInput);
    }

    [Fact]
    public void StateDictKeysAndShapesMatchTheFixture()
    {
        var fixture = FfaNetFixture.Load();
        using var model = new FfaNet(fixture.Options());
        AssertSameManifest(fixture.StateDictManifest(), StateDictShapes(model));
        Assert.Equal(fixture.Config.GetProperty("state_dict").GetProperty("num_tensors").GetInt32(), model.state_dict().Count);
        Assert.Equal(fixture.Config.GetProperty("state_dict").GetProperty("num_parameters").GetInt64(), model.parameters().Sum(static p => p.numel()));
        Assert.Empty(model.buffers());
    }

    [Fact]
    public void NormalisationAddsNothingToTheStateDict()
    {
        using var plain = new FfaNet(FfaNetOptions.Small with { NormalizeInput = false });
        using var normalised = new FfaNet(FfaNetOptions.Small);
        AssertSameManifest(StateDictShapes(plain), StateDictShapes(normalised));
        Assert.Empty(normalised.buffers());
    }

    [Fact]
    public void RequestedTwoBlockConfigurationHasTheReferenceNamesShapesAndCount()
    {
        var fixture = FfaNetFixture.Load();
        var options = fixture.Options("requested_config_kwargs");
        Assert.Equal(2, options.Blocks);
        using var model = new FfaNet(options);
        AssertSameManifest(FfaNetFixture.Manifest(fixture.Config.GetProperty("requested_config_state_dict_keys")), StateDictShapes(model));
        Assert.Equal(fixture.Config.GetProperty("requested_config_num_parameters").GetInt64(), model.parameters().Sum(static p => p.numel()));
    }

    [Fact]
    public void ReproducesTheReferenceOutputFromTheBareStateDict()
    {
        var fixture = FfaNetFixture.Load();
        using var scope = NewDisposeScope();
        using var model = LoadFixtureModel(fixture, fixture.Options());
        var input = Npy.Load(fixture.PathOf("input.npy"));
        var expected = Npy.Load(fixture.PathOf("output.npy"));
        Assert.Equal(new long[] { 1, 3, 32, 32 }, input.shape);
        Tensor output;
        using (no_grad()) output = model.call(input);
        double diff = MaxAbsDiff(output, expected);
        Console.WriteLine($"ffa_small output.npy: max |output - reference| = {diff:E3}");
        Assert.True(diff <= Tolerance, $"output.npy: max |output - reference| = {diff:E3} > {Tolerance:E0}");
    }

    [Fact]
    public void NormalizeInputEqualsFeedingTheNormalisedInput()
    {
        var fixture = FfaNetFixture.Load();
        using var scope = NewDisposeScope();
        using var plain = LoadFixtureModel(fixture, fixture.Options());
        using var normalising = LoadFixtureModel(fixture, fixture.Options() with { NormalizeInput = true });
        var input = Npy.Load(fixture.PathOf("input.npy"));
        // MCLIR's feed_data: (lq - mean) / std per RGB channel.
        var mean = tensor(new[] { 0.64f, 0.6f, 0.58f }).view(1, 3, 1, 1);
        var std = tensor(new[] { 0.14f, 0.15f, 0.152f }).view(1, 3, 1, 1);
        using (no_grad())
        {
            var viaOption = normalising.call(input);
            var byHand = plain.call((input - mean) / std);
            var unnormalised = plain.call(input);
            double diff = MaxAbsDiff(viaOption, byHand);
            Assert.True(diff <= 1e-6, $"normalize_input vs. normalised input: max |diff| = {diff:E3}");
            Assert.True(MaxAbsDiff(viaOption, unnormalised) > 1e-2, "normalize_input had no effect");
        }
    }

    [Fact]
    public void TrainsEveryParameter()
    {
        // The reference weights and input, not a fresh random init: a random init can leave a ReLU-gated attention
        // branch dead for a given batch, which would make this check depend on chance.
        using var scope = NewDisposeScope();
        var fixture = FfaNetFixture.Load();
        using var model = LoadFixtureModel(fixture, fixture.Options());
        model.train();
        var y = model.call(Npy.Load(fixture.PathOf("input.npy")));
        y.square().mean().backward();
        AssertEveryParameterHasGradient(model);
    }

    [Fact]
    public void GeneratedDescriptorDescribesTheModel()
    {
        var d = FfaNet.Descriptor;
        Assert.Equal("ffa-net", d.Name);
        Assert.Equal(["dehaze"], d.Tasks);
        Assert.Equal(typeof(FfaNet), d.ModelType);
        Assert.Equal(typeof(FfaNetOptions), d.OptionsType);
        Assert.Equal(new FfaNetOptions(), d.DefaultOptions);
        Assert.False(string.IsNullOrWhiteSpace(d.Description));

        using var built = d.Create(FfaNetOptions.Small with { Blocks = 2 });
        var ffa = Assert.IsType<FfaNet>(built);
        Assert.Equal(2, ffa.Options.Blocks);
    }

    [Fact]
    public void DefaultOptionsAreMclirsConfiguration()
    {
        var d = new FfaNetOptions();
        Assert.Equal((3, 19, true), (d.Gps, d.Blocks, d.NormalizeInput));
        Assert.Equal(64, FfaNetOptions.Dim);
        Assert.Equal([0.64, 0.6, 0.58], d.InputMean);
        Assert.Equal([0.14, 0.15, 0.152], d.InputStd);
        Assert.Equal(["ffa-net", "ffa-net-small"], FfaNet.Presets.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(d, FfaNet.Presets["ffa-net"]);
        Assert.Equal(d.GetHashCode(), new FfaNetOptions().GetHashCode());
        Assert.NotEqual(d, d with { InputStd = [0.14, 0.15, 0.15] });
        Assert.Equal(FfaNetOptions.Small, new FfaNetOptions { Blocks = 1 });
    }

    [Fact]
    public void CloneArchitectureHasTheSameKeysAndShapesButFreshValues()
    {
        using var scope = NewDisposeScope();
        using var model = new FfaNet(FfaNetOptions.Small);
        IArchitectureCloneable cloneable = model;
        using var clone = cloneable.CloneArchitecture();
        var typed = Assert.IsType<FfaNet>(clone);
        Assert.Same(model.Options, typed.Options);
        AssertSameManifest(StateDictShapes(model), StateDictShapes(clone));

        var a = model.state_dict();
        var b = clone.state_dict();
        foreach (var key in a.Keys.Where(static k => k.EndsWith(".weight", StringComparison.Ordinal)))
            Assert.False(AllEqual(a[key], b[key]), $"{key}: the clone has the same values (expected a fresh initialisation)");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    public void GpsOtherThanThreeIsAClearError(int gps)
    {
        var e = Assert.Throws<ArgumentException>(() => new FfaNet(FfaNetOptions.Small with { Gps = gps }));
        Assert.Contains($"Gps (gps) must be 3, got {gps}", e.Message);
    }

    [Fact]
    public void InvalidOptionsAreClearErrors()
    {
        var small = FfaNetOptions.Small;
        Assert.Contains("Blocks (blocks) must be >= 1, got 0", Assert.Throws<ArgumentException>(() => new FfaNet(small with { Blocks = 0 })).Message);
        Assert.Contains("InputMean", Assert.Throws<ArgumentException>(() => new FfaNet(small with { InputMean = [0.5] })).Message);
        Assert.Contains("InputStd", Assert.Throws<ArgumentException>(() => new FfaNet(small with { InputStd = [0.1, 0.0, 0.1] })).Message);
    }

    [Fact]
    public void WrongInputChannelsAreAClearError()
    {
        using var scope = NewDisposeScope();
        using var model = new FfaNet(FfaNetOptions.Small);
        var e = Assert.Throws<ArgumentException>(() => model.call(rand(1, 1, 16, 16)));
        Assert.Contains("[N, 3, H, W]", e.Message);
    }
}
