using System.Text.Json;
using Mcir.Core.IO;
using Mcir.Core.Weights;
using TorchSharp;
using static Mcir.Tests.Shared.ArchAsserts;
using static TorchSharp.torch;

namespace Mcir.Plugins.Deblurring.Tests;

/// <summary>
/// NAFNetLocal (TLC local pooling, <see cref="NafnetOptions.TrainSize"/>) against reference outputs computed with PyTorch
/// by TestData/archs/nafnet_small_local/make_reference.py around the nafnet_small fixture weights.
/// </summary>
public sealed class NafnetLocalTests
{
    // The fixture README's tolerance for this network: float32 kernels of another library (and summed-area table vs
    // avg_pool2d window sums) differ by a few 1e-7 here; 1e-5 leaves room for other CPUs' vector widths while staying
    // far below the 3.5e-4 by which local and global pooling differ on these inputs (checked below).
    private const double Tolerance = 1e-5;

    private static string LocalPath(string file) => Path.Combine(AppContext.BaseDirectory, "TestData", "archs", "nafnet_small_local", file);

    [Theory]
    [InlineData("output_local_t32.npy", "nafnet_small_local/input_local.npy", new[] { 1, 3, 32, 32 })]
    [InlineData("output_pad_local_t24x40.npy", "nafnet_small/input_pad.npy", new[] { 1, 3, 24, 40 })]
    public void ReproducesTheReferenceNafnetLocalOutput(string outputFile, string inputFile, int[] trainSize)
    {
        var fixture = NafnetFixture.Load();
        using var scope = NewDisposeScope();
        var sd = StateDictFile.Read(fixture.StateDictPath);
        using var local = new Nafnet(fixture.Options() with { TrainSize = trainSize });
        using var plain = new Nafnet(fixture.Options());
        // The same state dict loads strictly into both: the local pools have no parameters.
        Assert.Empty(local.load_state_dict(sd, strict: true).missing_keys);
        plain.load_state_dict(sd, strict: true);
        local.eval();
        plain.eval();

        var input = Npy.Load(Path.Combine(AppContext.BaseDirectory, "TestData", "archs", inputFile));
        var expected = Npy.Load(LocalPath(outputFile));
        Tensor output, global;
        using (no_grad())
        {
            output = local.call(input);
            global = plain.call(input);
        }
        double diff = MaxAbsDiff(output, expected), localVsGlobal = MaxAbsDiff(global, expected);
        Console.WriteLine($"nafnet_small local {outputFile}: max |output - reference| = {diff:E3}; plain NAFNet differs by {localVsGlobal:E3}");
        Assert.True(diff <= Tolerance, $"{outputFile}: max |output - reference| = {diff:E3} > {Tolerance:E0}");
        Assert.True(localVsGlobal > 20 * Tolerance, $"{outputFile}: the plain network is within {localVsGlobal:E3} of the local reference: the test would not see a missing local pooling");
    }

    [Fact]
    public void PoolWindowsAreTheOnesTheReferenceFixed()
    {
        // reference.json records the window each block's pool got from NAFNetLocal's pass on a train_size input.
        using var doc = JsonDocument.Parse(File.ReadAllText(LocalPath("reference.json")));
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateObject())
        {
            var t = c.Value.GetProperty("train_size").EnumerateArray().Select(static e => e.GetInt32()).ToArray();
            var options = NafnetOptions.Small with { TrainSize = t };
            var k = c.Value.GetProperty("kernels");
            for (int level = 0; level < 4; level++)
            {
                Assert.Equal(Pair(k.GetProperty($"encoders.{level}.0")), Nafnet.LocalPoolKernel(options, level));
                Assert.Equal(Pair(k.GetProperty($"decoders.{3 - level}.0")), Nafnet.LocalPoolKernel(options, level));
            }
            Assert.Equal(Pair(k.GetProperty("middle_blks.0")), Nafnet.LocalPoolKernel(options, 4));
        }
        Assert.Null(Nafnet.LocalPoolKernel(NafnetOptions.Small, 0));
        // NAFNet's GoPro test model: 1.5 x 256 = 384 at full resolution, halved per level.
        Assert.Equal((384, 384), Nafnet.LocalPoolKernel(NafnetOptions.Local, 0));
        Assert.Equal((24, 24), Nafnet.LocalPoolKernel(NafnetOptions.Local, 4));

        static (int, int)? Pair(JsonElement e) => (e[0].GetInt32(), e[1].GetInt32());
    }

    [Fact]
    public void UpToOneAndAHalfTimesTheTrainingSizeItIsThePlainNetwork()
    {
        // Every window covers its feature map, so each pool is the global mean: the same kernels on the same shapes.
        var fixture = NafnetFixture.Load();
        using var scope = NewDisposeScope();
        var sd = StateDictFile.Read(fixture.StateDictPath);
        using var local = new Nafnet(fixture.Options() with { TrainSize = [1, 3, 48, 48] });
        using var plain = new Nafnet(fixture.Options());
        local.load_state_dict(sd, strict: true);
        plain.load_state_dict(sd, strict: true);
        local.eval();
        plain.eval();
        var input = Npy.Load(fixture.PathOf("input.npy")); // 64 x 64 <= 1.5 x 48
        using (no_grad())
            Assert.True(AllEqual(local.call(input), plain.call(input)));
    }

    [Fact]
    public void TrainsThroughTheLocalPool()
    {
        using var scope = NewDisposeScope();
        manual_seed(5); // a fixed init and input: the assertion is about the graph, not about a lucky draw
        // As the engine builds every model: channels-last convolution inputs (see Mcir.Core.Compute.ChannelsLast).
        using var model = Mcir.Core.Compute.ChannelsLast.ForConvolutions(
            new Nafnet(NafnetOptions.Small with { EncBlkNums = [1, 1], DecBlkNums = [1, 1], TrainSize = [1, 3, 8, 8] }));
        using (no_grad())
            foreach (var (name, p) in model.named_parameters())
                if (name.EndsWith("beta", StringComparison.Ordinal) || name.EndsWith("gamma", StringComparison.Ordinal)) p.fill_(0.1);
        model.train();
        var y = model.call(rand(2, 3, 20, 24));
        y.square().mean().backward();
        AssertEveryParameterHasGradient(model);
    }
}
