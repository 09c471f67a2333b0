using System.Text.Json;
using Mcir.Core.Embeddings;
using Mcir.Core.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Embeddings;

/// <summary>The spn/ reference fixture (TestData/spn, see its README): arrays, expected numbers, the VGG16 weights.</summary>
internal static class SpnFixture
{
    public static string Dir => Path.Combine(AppContext.BaseDirectory, "TestData", "spn");
    public static string WeightsPath => Path.Combine(Dir, "vgg16_features_to_relu3_3.pth");

    private static readonly Lazy<JsonElement> ExpectedJson = new(() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, "expected.json"))).RootElement);

    /// <summary>expected.json → float32.</summary>
    public static JsonElement F32 => ExpectedJson.Value.GetProperty("float32");
    public static JsonElement Root => ExpectedJson.Value;

    /// <summary>Loads an array of the fixture (float32). The caller owns it.</summary>
    public static Tensor Load(string name) => Npy.Load(Path.Combine(Dir, name));

    public static readonly string[] SpnLayers = ["relu1_2", "relu2_2", "relu3_3"];

    /// <summary>The fixture's VGG16 (features 0–15) with ImageNet normalisation, layers relu1_2/2_2/3_3.</summary>
    public static VggEmbedding SpnEmbedding() => new(new VggEmbeddingOptions
    {
        Variant = VggVariant.Vgg16, Layers = SpnLayers, Normalize = true, WeightsPath = WeightsPath,
    });

    /// <summary>The fixture's CR check: same weights, relu1_1/2_1/3_1, no normalisation.</summary>
    public static VggEmbedding CrEmbedding() => new(new VggEmbeddingOptions
    {
        Variant = VggVariant.Vgg16, Layers = ["relu1_1", "relu2_1", "relu3_1"], Normalize = false, WeightsPath = WeightsPath,
    });

    public static void AssertRel(double expected, double actual, double rel, string what)
    {
        double err = Math.Abs(actual - expected) / Math.Max(Math.Abs(expected), 1e-30);
        Assert.True(err <= rel, $"{what}: expected {expected:R}, got {actual:R} (relative error {err:E2} > {rel:E0})");
    }

    /// <summary>max |a − b| / max |b|.</summary>
    public static double MaxRelToLargest(Tensor actual, Tensor reference)
    {
        using var scope = torch.NewDisposeScope();
        double maxDiff = (actual.to(float64) - reference.to(float64)).abs().max().item<double>();
        double maxRef = reference.to(float64).abs().max().item<double>();
        return maxDiff / maxRef;
    }

    /// <summary>Resident set size of this process in bytes (/proc/self/statm).</summary>
    public static long RssBytes()
    {
        var fields = File.ReadAllText("/proc/self/statm").Split(' ');
        return long.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture) * Environment.SystemPageSize;
    }
}
