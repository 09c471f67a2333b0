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
    /// <exception cref="McirException">
    /// An unknown embedding type; layers the chosen embedding does not have; or VGG weights that cannot be found while the
    /// configuration asks for VGG (<c>embedding_type: vgg</c>, or <c>auto</c> with VGG layer names in <c>layer_weights</c>
    /// or an <c>embedding</c> section): the message names the file, where it was looked for and the ways out.
    /// </exception>
    public static (IFeatureEmbedding Embedding, SpnLossOptions Options) Create(SpnLossOptions options)
    {
        string type = options.EmbeddingType.Trim().ToLowerInvariant();
        bool defaultLayers = ReferenceEquals(options.LayerWeights, SpnLossOptions.VggDefaultLayerWeights);
        if (type == "auto")
        {
            if (VggWeightsAvailable(options.Embedding)) type = "vgg";
            else if (AsksForVgg(options, defaultLayers) is { } why) throw MissingVggWeights(options, why);
            else type = ResNet18ImageNet.Name;
        }
        switch (type)
        {
            case "vgg":
                CheckVggLayers(options);
                if (!options.Embedding.AllowRandomWeights && !VggWeightsAvailable(options.Embedding))
                    throw MissingVggWeights(options, "loss.spn.embedding_type is vgg");
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
    /// Why an <c>auto</c> configuration means VGG: its layer_weights name VGG layers, or it has an <c>embedding</c>
    /// (VGG) section. Null when it does not (then the offline ResNet18 is used).
    /// </summary>
    private static string? AsksForVgg(SpnLossOptions options, bool defaultLayers)
    {
        if (!defaultLayers)
        {
            var vggNames = options.LayerWeights.Keys.Where(k => IsVggLayer(options.Embedding.Variant, k)).ToList();
            return vggNames.Count > 0 ? $"loss.spn.layer_weights names {VggLayout.VariantName(options.Embedding.Variant)} layers ({string.Join(", ", vggNames)})" : null;
        }
        return ReferenceEquals(options.Embedding, SpnLossOptions.DefaultEmbedding) ? null : "loss.spn.embedding configures a VGG embedding";
    }

    private static bool IsVggLayer(VggVariant variant, string name) =>
        VggLayout.Layers(variant).Any(l => string.Equals(l.Name, name, StringComparison.OrdinalIgnoreCase));

    private static void CheckVggLayers(SpnLossOptions options)
    {
        var variant = options.Embedding.Variant;
        if (options.LayerWeights.Keys.FirstOrDefault(k => !IsVggLayer(variant, k)) is { } bad)
            throw new McirException($"loss.spn.layer_weights: '{bad}' is not a {VggLayout.VariantName(variant)} layer (embedding_type vgg; " +
                $"layers: {string.Join(", ", VggLayout.Layers(variant).Select(l => l.Name))})");
    }

    /// <summary>
    /// The one-line error for VGG weights that are not there: the file, every place looked at, and the ways out.
    /// </summary>
    private static McirException MissingVggWeights(SpnLossOptions options, string why)
    {
        var variant = options.Embedding.Variant;
        var entry = KnownWeights.Get(VggLayout.VariantName(variant));
        string cache;
        try { cache = Path.Combine(WeightsLocations.ResolveCacheDirectory(null), entry.FileName); }
        catch (McirException) { cache = $"(no cache folder: {WeightsLocations.CacheVariable} and HOME are unset)"; }
        return new McirException(
            $"{why}, but torchvision's {entry.Name} weights '{entry.FileName}' were not found: " +
            $"${entry.EnvironmentVariable} is not set, {cache} does not exist, loss.spn.embedding.weights_path is not set. " +
            $"Run `mcir-host weights fetch {entry.Name}`, or set loss.spn.embedding.weights_path to a copy of the file, " +
            $"or use the offline embedding: embedding_type: {ResNet18ImageNet.Name} with its own layers " +
            $"(layer_weights {{\"stem\": 0.2, \"layer1\": 0.3, \"layer2\": 0.5}})");
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
