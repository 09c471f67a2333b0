using Mcir.Abstractions.Components;
using Mcir.Abstractions.ModelContrast;
using Mcir.Core.Compute;
using Mcir.Core.Embeddings;
using Mcir.Core.Embeddings.Onnx;
using Mcir.Core.Weights;
using TorchSharp;

namespace Mcir.Core.ModelContrast;

/// <summary>
/// Picks the SPN embedding from <see cref="SpnLossOptions.EmbeddingType"/>: a registered <see cref="EmbeddingDescriptor"/>
/// (the engine's <see cref="BuiltIn"/> ones or a plugin's), or <c>auto</c> = VGG when its ImageNet weights can be
/// found, else the offline ImageNet ResNet18 shipped in a NuGet package — so an offline run is still the method
/// (a pretrained φ), never silently random.
/// </summary>
public static class SpnEmbeddingSelection
{
    /// <summary>The engine's VGG embedding (torchvision's VGG16/19 ImageNet weights; options <c>loss.spn.embedding</c>).</summary>
    public static readonly EmbeddingDescriptor Vgg = EmbeddingDescriptor.Of<VggEmbedding, VggEmbeddingOptions>("vgg",
        "torchvision VGG16/VGG19 features, ImageNet weights (the paper's φ: relu1_2/relu2_2/relu3_3); options in loss.spn.embedding",
        SpnLossOptions.DefaultEmbedding, SpnLossOptions.VggDefaultLayerWeights,
        (o, layers) => new VggEmbedding(o with { Layers = [.. layers.OrderBy(l => VggLayout.IndexOf(o.Variant, l))] }));

    /// <summary>The offline ImageNet ResNet18 (ONNX, from NuGet; options <c>loss.spn.onnx</c>).</summary>
    public static readonly EmbeddingDescriptor ResNet18 = EmbeddingDescriptor.Of<IFeatureEmbedding, OnnxEmbeddingOptions>(ResNet18ImageNet.Name,
        "ImageNet ResNet18 from Microsoft.ML.DnnImageFeaturizer.ResNet18 (offline; stem/layer1…layer4); options in loss.spn.onnx",
        new OnnxEmbeddingOptions(), ResNet18ImageNet.DefaultLayerWeights,
        (o, layers) => OnnxEmbeddings.Create(ResNet18ImageNet.Name, o with { Layers = [.. layers] }));

    /// <summary>Any ONNX file (layers are node output names; options <c>loss.spn.onnx</c>).</summary>
    public static readonly EmbeddingDescriptor Onnx = EmbeddingDescriptor.Of<IFeatureEmbedding, OnnxEmbeddingOptions>(OnnxEmbeddings.GenericName,
        "an ONNX network from loss.spn.onnx.model_path; layer_weights name node outputs",
        new OnnxEmbeddingOptions(), new Dictionary<string, double>(),
        (o, layers) => OnnxEmbeddings.Create(OnnxEmbeddings.GenericName, o with { Layers = [.. layers] }));

    /// <summary>The engine's embeddings, registered by <c>AddMcirEngineComponents</c>.</summary>
    public static IReadOnlyList<EmbeddingDescriptor> BuiltIn { get; } = [Vgg, ResNet18, Onnx];

    /// <summary>The engine's embeddings as a registry (when a caller has no service provider).</summary>
    public static IComponentRegistry<EmbeddingDescriptor> BuiltInRegistry { get; } = new EmbeddingRegistry(BuiltIn);

    /// <summary>The embedding and the options with the layer weights that go with it.</summary>
    /// <param name="options">The SPN options.</param>
    /// <param name="embeddings">The registered embeddings (default: <see cref="BuiltInRegistry"/>).</param>
    /// <exception cref="McirException">
    /// An unknown embedding type; layers the chosen embedding does not have; options for the wrong embedding; or VGG
    /// weights that cannot be found while the configuration asks for VGG (<c>embedding_type: vgg</c>, or <c>auto</c>
    /// with VGG layer names in <c>layer_weights</c> or an <c>embedding</c> section): the message names the file, where
    /// it was looked for and the ways out.
    /// </exception>
    public static (IFeatureEmbedding Embedding, SpnLossOptions Options) Create(SpnLossOptions options, IComponentRegistry<EmbeddingDescriptor>? embeddings = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        embeddings ??= BuiltInRegistry;
        string type = options.EmbeddingType.Trim();
        bool defaultLayers = ReferenceEquals(options.LayerWeights, SpnLossOptions.VggDefaultLayerWeights);
        if (type.Equals("auto", StringComparison.OrdinalIgnoreCase))
        {
            if (VggWeightsAvailable(options.Embedding)) type = Vgg.Name;
            else if (AsksForVgg(options, defaultLayers) is { } why) throw MissingVggWeights(options, why);
            else type = ResNet18.Name;
        }
        // The engine's names are case-insensitive (as before registries); a plugin's are exact.
        if (BuiltIn.FirstOrDefault(d => d.Name.Equals(type, StringComparison.OrdinalIgnoreCase)) is { } builtIn) type = builtIn.Name;
        if (!embeddings.TryGet(type, out var descriptor))
            throw new McirException($"loss.spn.embedding_type: '{options.EmbeddingType}' is not a known embedding type (known: auto, {string.Join(", ", embeddings.All.Select(d => d.Name))}); load the plugin that registers it with --plugins or --plugin-dir");
        if (descriptor == Vgg)
        {
            CheckVggLayers(options);
            if (!options.Embedding.AllowRandomWeights && !VggWeightsAvailable(options.Embedding))
                throw MissingVggWeights(options, "loss.spn.embedding_type is vgg");
        }
        bool builtInOptions = descriptor == Vgg || descriptor == ResNet18 || descriptor == Onnx;
        if (builtInOptions && options.EmbeddingOptions is not null)
            throw new McirException($"loss.spn.embedding_options: not used by the engine's embedding '{descriptor.Name}' (it takes loss.spn.{(descriptor == Vgg ? "embedding" : "onnx")}); embedding_options configure a plugin's embedding");
        var layerWeights = options.LayerWeights;
        if (defaultLayers && descriptor != Vgg)
        {
            if (descriptor.DefaultLayerWeights.Count == 0)
                throw new McirException($"loss.spn.layer_weights: required with embedding_type {descriptor.Name} ({(descriptor == Onnx ? "node output names of loss.spn.onnx.model_path" : "the embedding's layer names")} and their weights)");
            layerWeights = descriptor.DefaultLayerWeights;
        }
        object embeddingOptions = descriptor == Vgg ? options.Embedding
            : builtInOptions ? options.Onnx
            : Config.ConfigBinder.ComponentOptions(descriptor, options.EmbeddingOptions, "loss.spn.embedding_options");
        var resolved = options with { EmbeddingType = descriptor.Name, LayerWeights = layerWeights };
        IFeatureEmbedding embedding;
        try { embedding = descriptor.CreateWithLayers(embeddingOptions, [.. layerWeights.Keys]); }
        catch (ArgumentException e) when (!builtInOptions)
        {
            throw new McirException($"loss.spn (embedding '{descriptor.Name}'): {e.Message}", e);
        }
        return (embedding, resolved);
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
