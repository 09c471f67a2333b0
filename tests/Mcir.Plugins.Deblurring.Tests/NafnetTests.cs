using Mcir.Abstractions.Models;
using Mcir.Core.IO;
using Mcir.Core.Weights;
using TorchSharp;
using static Mcir.Tests.Shared.ArchAsserts;
using static TorchSharp.torch;

namespace Mcir.Plugins.Deblurring.Tests;

public sealed class NafnetTests
{
    private const double Tolerance = 1e-5;

    [Fact]
    public void FixtureOptionsAreTheSmallPreset()
    {
        var fixture = NafnetFixture.Load();
        Assert.Equal(fixture.Options(), NafnetOptions.Small);
        Assert.Same(NafnetOptions.Small, Nafnet.Presets["nafnet-small"]);
    }

    [Fact]
    public void StateDictKeysAndShapesMatchTheFixture()
    {
        var fixture = NafnetFixture.Load();
        using var model = new Nafnet(fixture.Options());
        AssertSameManifest(fixture.StateDictManifest(), StateDictShapes(model));
        Assert.Equal(fixture.Config.GetProperty("state_dict").GetProperty("num_tensors").GetInt32(), model.state_dict().Count);
        Assert.Equal(fixture.Config.GetProperty("state_dict").GetProperty("num_parameters").GetInt64(), model.parameters().Sum(static p => p.numel()));
        Assert.Empty(model.buffers());
    }

    [Fact]
    public void RequestedWidth16ConfigurationHasTheReferenceNamesShapesAndCount()
    {
        var fixture = NafnetFixture.Load();
        var options = fixture.Options("requested_config_kwargs");
        Assert.Equal(16, options.Width);
        using var model = new Nafnet(options);
        AssertSameManifest(NafnetFixture.Manifest(fixture.Config.GetProperty("requested_config_state_dict_keys")), StateDictShapes(model));
        Assert.Equal(fixture.Config.GetProperty("requested_config_num_parameters").GetInt64(), model.parameters().Sum(static p => p.numel()));
    }

    [Theory]
    [InlineData("input.npy", "output.npy")]
    [InlineData("input_pad.npy", "output_pad.npy")]
    public void ReproducesTheReferenceOutputFromTheBareStateDict(string inputFile, string outputFile)
    {
        var fixture = NafnetFixture.Load();
        using var scope = NewDisposeScope();
        using var model = new Nafnet(fixture.Options());
        var sd = StateDictFile.Read(fixture.StateDictPath);
        var (missing, unexpected) = model.load_state_dict(sd, strict: true);
        Assert.Empty(missing);
        Assert.Empty(unexpected);
        model.eval();

        var input = Npy.Load(fixture.PathOf(inputFile));
        var expected = Npy.Load(fixture.PathOf(outputFile));
        Tensor output;
        using (no_grad()) output = model.call(input);
        double diff = MaxAbsDiff(output, expected);
        Console.WriteLine($"nafnet_small {outputFile}: max |output - reference| = {diff:E3}");
        Assert.True(diff <= Tolerance, $"{outputFile}: max |output - reference| = {diff:E3} > {Tolerance:E0}");
    }

    [Fact]
    public void PaddingIsZeroPaddingThenCrop()
    {
        // The 50x70 output equals the top-left crop of the output on the explicitly zero-padded 64x80 input.
        var fixture = NafnetFixture.Load();
        using var scope = NewDisposeScope();
        using var model = new Nafnet(fixture.Options());
        model.load_state_dict(StateDictFile.Read(fixture.StateDictPath), strict: true);
        model.eval();
        var input = Npy.Load(fixture.PathOf("input_pad.npy"));
        using (no_grad())
        {
            var direct = model.call(input);
            var padded = model.call(nn.functional.pad(input, new long[] { 0, 10, 0, 14 }));
            Assert.Equal(new long[] { 1, 3, 64, 80 }, padded.shape);
            Assert.True(MaxAbsDiff(direct, padded.slice(2, 0, 50, 1).slice(3, 0, 70, 1)) <= 1e-6);
        }
    }

    [Fact]
    public void TrainsThroughLayerNorm2d()
    {
        // Autograd differentiates the plain-tensor LayerNorm2d: every parameter gets a gradient.
        using var scope = NewDisposeScope();
        manual_seed(5); // a fixed init and input: the assertion is about the graph, not about a lucky draw
        // As the engine builds every model: channels-last convolution inputs (see Mcir.Core.Compute.ChannelsLast).
        using var model = Mcir.Core.Compute.ChannelsLast.ForConvolutions(new Nafnet(NafnetOptions.Small with { EncBlkNums = [1, 1], DecBlkNums = [1, 1] }));
        using (no_grad())
            foreach (var (name, p) in model.named_parameters())
                if (name.EndsWith("beta", StringComparison.Ordinal) || name.EndsWith("gamma", StringComparison.Ordinal)) p.fill_(0.1);
        model.train();
        var y = model.call(rand(2, 3, 12, 12));
        y.square().mean().backward();
        AssertEveryParameterHasGradient(model);
    }

    [Fact]
    public void Width32TrainsUnderTheEnginesOneDnnCap()
    {
        // The paper's NAFNet-width32 (shallow blocks to keep it cheap). On a guest whose CPUID reports no caches,
        // oneDNN's brgemm 1x1 convolution blocking divided by zero here and the process died with SIGFPE; the engine's
        // cap (Mcir.Core.Compute.OneDnnIsa, applied by this assembly's module initializer) keeps those kernels off.
        using var scope = NewDisposeScope();
        manual_seed(7);
        using var model = Mcir.Core.Compute.ChannelsLast.ForConvolutions(new Nafnet(new NafnetOptions { EncBlkNums = [1, 1, 1, 1], DecBlkNums = [1, 1, 1, 1] }));
        using (no_grad()) // beta/gamma start at 0 in NAFNet, which would leave the branches' gradients at 0
            foreach (var (name, p) in model.named_parameters())
                if (name.EndsWith("beta", StringComparison.Ordinal) || name.EndsWith("gamma", StringComparison.Ordinal)) p.fill_(0.1);
        model.train();
        var y = model.call(rand(2, 3, 32, 32));
        y.square().mean().backward();
        AssertEveryParameterHasGradient(model);
        Assert.True(isfinite(y).all().item<bool>());
    }

    [Fact]
    public void GeneratedDescriptorDescribesTheModel()
    {
        var d = Nafnet.Descriptor;
        Assert.Equal("nafnet", d.Name);
        Assert.Equal(["deblur"], d.Tasks);
        Assert.Equal(typeof(Nafnet), d.ModelType);
        Assert.Equal(typeof(NafnetOptions), d.OptionsType);
        Assert.Equal(new NafnetOptions(), d.DefaultOptions);
        Assert.False(string.IsNullOrWhiteSpace(d.Description));

        using var built = d.Create(NafnetOptions.Small with { Width = 4 });
        var nafnet = Assert.IsType<Nafnet>(built);
        Assert.Equal(4, nafnet.Options.Width);
    }

    [Fact]
    public void DefaultOptionsAreTheGoProWidth32Model()
    {
        var d = new NafnetOptions();
        Assert.Equal((3, 32, 1), (d.ImgChannel, d.Width, d.MiddleBlkNum));
        Assert.Equal([1, 1, 1, 28], d.EncBlkNums);
        Assert.Equal([1, 1, 1, 1], d.DecBlkNums);
        Assert.Equal(16, d.PadderSize());
        Assert.Equal(["nafnet", "nafnet-local", "nafnet-small", "nafnet-small-local"], Nafnet.Presets.Keys.Order(StringComparer.Ordinal));
        Assert.Null(d.TrainSize);
        Assert.Equal(d with { TrainSize = [1, 3, 256, 256] }, Nafnet.Presets["nafnet-local"]);
        Assert.Equal(NafnetOptions.Small with { TrainSize = [1, 3, 256, 256] }, Nafnet.Presets["nafnet-small-local"]);
        Assert.NotEqual(d, Nafnet.Presets["nafnet-local"]);
        Assert.NotEqual(Nafnet.Presets["nafnet-local"], d with { TrainSize = [1, 3, 128, 256] });
        Assert.Equal(d, Nafnet.Presets["nafnet"]);
        Assert.Equal(d.GetHashCode(), new NafnetOptions().GetHashCode());
        Assert.NotEqual(d, d with { EncBlkNums = [1, 1, 1, 27] });
        Assert.Equal(NafnetOptions.Small, new NafnetOptions { Width = 8, EncBlkNums = [1, 1, 1, 1] });
    }

    [Fact]
    public void CloneArchitectureHasTheSameKeysAndShapesButFreshValues()
    {
        using var scope = NewDisposeScope();
        using var model = new Nafnet(NafnetOptions.Small);
        IArchitectureCloneable cloneable = model;
        using var clone = cloneable.CloneArchitecture();
        var typed = Assert.IsType<Nafnet>(clone);
        Assert.Same(model.Options, typed.Options);
        AssertSameManifest(StateDictShapes(model), StateDictShapes(clone));

        var a = model.state_dict();
        var b = clone.state_dict();
        foreach (var key in a.Keys.Where(static k => k.EndsWith(".weight", StringComparison.Ordinal) && !k.Contains(".norm", StringComparison.Ordinal)))
            Assert.False(AllEqual(a[key], b[key]), $"{key}: the clone has the same values (expected a fresh initialisation)");
    }

    [Fact]
    public void InvalidOptionsAreClearErrors()
    {
        var small = NafnetOptions.Small;
        Assert.Contains("Width (width) must be >= 1, got -8", Assert.Throws<ArgumentException>(() => new Nafnet(small with { Width = -8 })).Message);
        Assert.Contains("ImgChannel", Assert.Throws<ArgumentException>(() => new Nafnet(small with { ImgChannel = 0 })).Message);
        Assert.Contains("MiddleBlkNum", Assert.Throws<ArgumentException>(() => new Nafnet(small with { MiddleBlkNum = -1 })).Message);
        Assert.Contains("EncBlkNums", Assert.Throws<ArgumentException>(() => new Nafnet(small with { EncBlkNums = [1, -1, 1, 1] })).Message);
        Assert.Contains("same number of levels", Assert.Throws<ArgumentException>(() => new Nafnet(small with { DecBlkNums = [1, 1, 1] })).Message);
        Assert.Contains("train_size", Assert.Throws<ArgumentException>(() => new Nafnet(small with { TrainSize = [256, 256] })).Message);
        Assert.Contains("train_size", Assert.Throws<ArgumentException>(() => new Nafnet(small with { TrainSize = [1, 3, 0, 256] })).Message);
    }

    [Fact]
    public void WrongInputChannelsAreAClearError()
    {
        using var scope = NewDisposeScope();
        using var model = new Nafnet(NafnetOptions.Small);
        var e = Assert.Throws<ArgumentException>(() => model.call(rand(1, 1, 16, 16)));
        Assert.Contains("[N, 3, H, W]", e.Message);
    }
}
