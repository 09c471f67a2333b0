using Mcir.Abstractions.Components;
using Mcir.Abstractions.ModelContrast;
using Mcir.Core.ModelContrast;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.ModelContrast;

/// <summary>An embedding registered the way a plugin registers a loss term: by name, with its own options.</summary>
public class PluginEmbeddingTests
{
    /// <summary>φ_l(x) = gain · avg_pool2d(x, 2^l): layers "p1", "p2".</summary>
    public sealed record PyramidOptions
    {
        public double Gain { get; init; } = 1.0;
    }

    private sealed class Pyramid(PyramidOptions options, IReadOnlyList<string> layers) : IFeatureEmbedding
    {
        public string Name => "pyramid";
        public IReadOnlyList<string> Layers { get; } = layers.Select(l => l is "p1" or "p2" ? l : throw new ArgumentException($"no layer '{l}' (layers: p1, p2)")).ToArray();
        public string WeightsDescription => "none (average pooling)";
        public PyramidOptions Options => options;
        public IReadOnlyList<Tensor> Extract(Tensor rgb) =>
            Layers.Select(l => nn.functional.avg_pool2d(rgb, l == "p1" ? 2 : 4) * options.Gain).ToList();
        public void Dispose() { }
    }

    private static readonly EmbeddingDescriptor PyramidDescriptor = EmbeddingDescriptor.Of<Pyramid, PyramidOptions>(
        "pyramid", "average-pooling pyramid (test)", new PyramidOptions(), new Dictionary<string, double> { ["p1"] = 0.5, ["p2"] = 0.5 },
        (o, layers) => new Pyramid(o, layers));

    // What the host builds from the engine's and a plugin's registrations (services.AddMcirEmbedding).
    private static IComponentRegistry<EmbeddingDescriptor> Registry() =>
        new EmbeddingRegistry([.. Core.ModelContrast.SpnEmbeddingSelection.BuiltIn, PyramidDescriptor]);

    [Fact]
    public void ARegisteredEmbeddingIsChosenByNameWithItsOptionsAndDefaultLayers()
    {
        var registry = Registry();
        Assert.Equal(["onnx", "pyramid", "resnet18-imagenet", "vgg"], registry.All.Select(d => d.Name));
        var options = new SpnLossOptions { EmbeddingType = "pyramid", EmbeddingOptions = new() { ["gain"] = 3.0 } };
        var (embedding, resolved) = Core.ModelContrast.SpnEmbeddingSelection.Create(options, registry);
        using var _ = embedding;
        var pyramid = Assert.IsType<Pyramid>(embedding);
        Assert.Equal(3.0, pyramid.Options.Gain);
        Assert.Equal(["p1", "p2"], pyramid.Layers);
        Assert.Equal(PyramidDescriptor.DefaultLayerWeights, resolved.LayerWeights);
        Assert.Equal("pyramid", resolved.EmbeddingType);

        // The SPN term computes with it: one negative at distance d everywhere gives −λ·Σ_l w_l·gain·d (average pooling
        // keeps a constant image constant): −1·(0.5·3·0.25 + 0.5·3·0.25) = −0.75.
        using var scope = NewDisposeScope();
        using var spn = SpnLoss.FromOptions(options with { Lambda = 1.0 }, registry);
        var output = full(new long[] { 1, 3, 8, 8 }, 0.5f);
        var negatives = full(new long[] { 1, 1, 3, 8, 8 }, 0.25f); // [K, B, C, H, W]
        var result = spn.Compute(new Mcir.Abstractions.Losses.LossContext(output, output, output, negatives));
        Assert.Equal("pyramid", spn.Embedding.Name);
        Assert.Equal(-0.75, result.Value.item<float>(), 5);
    }

    [Fact]
    public void EmbeddingOptionsAreCheckedKeyByKeyAndOnlyForPluginEmbeddings()
    {
        var registry = Registry();
        var typo = Assert.Throws<McirException>(() => Core.ModelContrast.SpnEmbeddingSelection.Create(
            new SpnLossOptions { EmbeddingType = "pyramid", EmbeddingOptions = new() { ["gian"] = 3.0 } }, registry));
        Assert.Contains("loss.spn.embedding_options.gian", typo.Message);
        Assert.Contains("did you mean 'loss.spn.embedding_options.gain'", typo.Message);

        var builtIn = Assert.Throws<McirException>(() => Core.ModelContrast.SpnEmbeddingSelection.Create(
            new SpnLossOptions { EmbeddingType = "resnet18-imagenet", EmbeddingOptions = new() { ["gain"] = 3.0 } }, registry));
        Assert.Contains("loss.spn.embedding_options: not used by the engine's embedding 'resnet18-imagenet'", builtIn.Message);

        var layer = Assert.Throws<McirException>(() => Core.ModelContrast.SpnEmbeddingSelection.Create(
            new SpnLossOptions { EmbeddingType = "pyramid", LayerWeights = new Dictionary<string, double> { ["p3"] = 1 } }, registry));
        Assert.Contains("no layer 'p3'", layer.Message);

        // Without the plugin's registry the name is unknown, and the message lists what is registered.
        var unknown = Assert.Throws<McirException>(() => Core.ModelContrast.SpnEmbeddingSelection.Create(new SpnLossOptions { EmbeddingType = "pyramid" }));
        Assert.Contains("'pyramid' is not a known embedding type (known: auto, onnx, resnet18-imagenet, vgg)", unknown.Message);
    }

    [Fact]
    public void ANameTakenByTheEngineIsRefusedByTheOneDuplicateRule()
    {
        var clash = EmbeddingDescriptor.Of<Pyramid, PyramidOptions>("vgg", "not VGG", new PyramidOptions(),
            new Dictionary<string, double> { ["p1"] = 1 }, (o, layers) => new Pyramid(o, layers));
        var e = Assert.Throws<DuplicateComponentException>(() => new EmbeddingRegistry([.. Core.ModelContrast.SpnEmbeddingSelection.BuiltIn, clash]));
        Assert.Contains("embedding 'vgg' is registered twice", e.Message);
        Assert.Contains("VggEmbedding (Mcir.Core)", e.Message);
        Assert.Contains("Pyramid (Mcir.Core.Tests)", e.Message);
    }
}
