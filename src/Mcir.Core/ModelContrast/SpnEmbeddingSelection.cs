using Mcir.Abstractions.ModelContrast;
using Mcir.Core.Embeddings;
using Mcir.Core.Embeddings.Onnx;
using Mcir.Core.Weights;

namespace Mcir.Core.ModelContrast;

/// <summary>
/// Picks the SPN embedding from <see cref="SpnLossOptions.EmbeddingType"/>: VGG when its ImageNet weights can be
/// found, else the offline ImageNet ResNet18 shipped in a NuGet package — so an offline run is still the method
/// (a pretrained φ), never silently random.
/// </summary>
public static class SpnEmbeddingSelection
{
    public static readonly IReadOnlyList<string> Types = ["auto", "vgg", ResNet18ImageNet.Name, OnnxEmbeddings.GenericName];

    /// <summary>The embedding and the options with the layer weights that go with it.</summary>
    public static (IFeatureEmbedding Embedding, SpnLossOptions Options) Create(SpnLossOptions options)
    {
        string type = options.EmbeddingType.Trim().ToLowerInvariant();
        if (type == "auto") type = VggWeightsAvailable(options.Embedding) ? "vgg" : ResNet18ImageNet.Name;
        bool defaultLayers = ReferenceEquals(options.LayerWeights, SpnLossOptions.VggDefaultLayerWeights);
        switch (type)
        {
            case "vgg":
                return (new VggEmbedding(options.EmbeddingOptions()), options);
            case ResNet18ImageNet.Name:
            {
                var resolved = defaultLayers ? options with { LayerWeights = ResNet18ImageNet.DefaultLayerWeights } : options;
                var onnx = options.Onnx with { Layers = [.. resolved.LayerWeights.Keys] };
                return (OnnxEmbeddings.Create(ResNet18ImageNet.Name, onnx), resolved);
            }
            case OnnxEmbeddings.GenericName:
                if (defaultLayers)
                    throw new McirException("loss.spn.layer_weights: required with embedding_type onnx (node output names of loss.spn.onnx.model_path and their weights)");
                return (OnnxEmbeddings.Create(OnnxEmbeddings.GenericName, options.Onnx with { Layers = [.. options.LayerWeights.Keys] }), options);
            default:
                throw new McirException($"loss.spn.embedding_type '{options.EmbeddingType}' is not known (known: {string.Join(", ", Types)})");
        }
    }

    private static bool VggWeightsAvailable(VggEmbeddingOptions vgg) =>
        !string.IsNullOrWhiteSpace(vgg.WeightsPath)
        || WeightsLocations.LocateInstalled(KnownWeights.Get(VggLayout.VariantName(vgg.Variant))) is not null;
}
