using Mcir.Abstractions.ModelContrast;
using Mcir.Core.Compute;
using Mcir.Core.Embeddings;
using Mcir.Core.Embeddings.Onnx;
using Mcir.Core.Weights;
using TorchSharp;

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
                return (new VggEmbedding(options.EmbeddingOptions()), options with { EmbeddingType = type });
            case ResNet18ImageNet.Name:
            {
                var resolved = (defaultLayers ? options with { LayerWeights = ResNet18ImageNet.DefaultLayerWeights } : options) with { EmbeddingType = type };
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

    /// <summary>
    /// The embedding copy for the negatives' features when <see cref="SpnLossOptions.NegativePrecision"/> is not
    /// float32 (VGG embeddings only), else null.
    /// </summary>
    public static IFeatureEmbedding? CreateNegativeCopy(SpnLossOptions options, IFeatureEmbedding embedding)
    {
        var precision = options.NegativePrecision.Resolve();
        if (precision == Compute.NegativePrecision.Float32) return null;
        if (embedding is not VggEmbedding vgg)
        {
            if (options.NegativePrecision == Compute.NegativePrecision.Auto) return null; // auto: float32 for this embedding
            throw new McirException($"loss.spn.negative_precision {options.NegativePrecision.ToString().ToLowerInvariant()} applies to VGG embeddings; '{embedding.Name}' computes in float32 (set negative_precision: float32)");
        }
        var copy = new VggEmbedding(vgg.Options);
        copy.Network.to(Compute.NegativePrecisionExtensions.ToScalarType(options.NegativePrecision));
        return copy;
    }

    private static bool VggWeightsAvailable(VggEmbeddingOptions vgg) =>
        !string.IsNullOrWhiteSpace(vgg.WeightsPath)
        || WeightsLocations.LocateInstalled(KnownWeights.Get(VggLayout.VariantName(vgg.Variant))) is not null;
}
