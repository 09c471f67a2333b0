using System.ComponentModel.DataAnnotations;
using Mcir.Core.Embeddings;

namespace Mcir.Core.ModelContrast;

/// <summary>How the negatives enter the SPN term.</summary>
public enum SpnForm
{
    /// <summary>
    /// The authors' code (default): value = −λ·(1/K)·Σ_j Σ_l w_l·mean|φ_l(o) − φ_l(n_j)|. Unbounded below.
    /// </summary>
    Subtract,
    /// <summary>
    /// Bounded variant, as CR does: value = λ·Σ_l w_l·mean|φ_l(o) − φ_l(y)| / ((1/K)·Σ_j mean|φ_l(o) − φ_l(n_j)| + ε).
    /// </summary>
    Ratio,
}

/// <summary>Configuration of <see cref="SpnLoss"/>. Defaults are the authors' released configuration.</summary>
public sealed record SpnLossOptions
{
    /// <summary>
    /// λ, the weight of the negative term. Default 1e-3 = the released (dehazing) configuration's perceptual_weight; the
    /// paper's SR ablation found 1e-4 best (1e-2 and 1e-3 collapsed for EDSR-light ×4). Set it per task.
    /// </summary>
    public double Lambda { get; init; } = 1e-3;

    /// <summary>subtract (default, the authors' code) or ratio.</summary>
    public SpnForm Form { get; init; } = SpnForm.Subtract;

    /// <summary>Layer weights w_l by layer name; default relu1_2 0.2, relu2_2 0.3, relu3_3 0.5 (VGG16).</summary>
    [MinLength(1)]
    public IReadOnlyDictionary<string, double> LayerWeights { get; init; } = VggDefaultLayerWeights;

    /// <summary>The authors' VGG16 layers and weights; also the marker for "not configured" (see <see cref="EmbeddingType"/>).</summary>
    public static readonly IReadOnlyDictionary<string, double> VggDefaultLayerWeights =
        new Dictionary<string, double> { ["relu1_2"] = 0.2, ["relu2_2"] = 0.3, ["relu3_3"] = 0.5 };

    /// <summary>
    /// Which embedding φ: <c>auto</c> (default) = VGG (<see cref="Embedding"/>) when its ImageNet weights are available
    /// (weights_path, <c>$MCIR_VGG16_WEIGHTS</c>, or the <c>mcir-host weights fetch</c> cache), otherwise the offline
    /// pretrained <c>resnet18-imagenet</c>; <c>vgg</c> = always VGG (random weights only with allow_random_weights);
    /// <c>resnet18-imagenet</c> or <c>onnx</c> = the ONNX embedding configured by <see cref="Onnx"/>; any other name = an
    /// embedding a plugin registers, configured by <see cref="EmbeddingOptions"/>. When layer_weights is not configured,
    /// the chosen embedding's default layers are used.
    /// </summary>
    public string EmbeddingType { get; init; } = "auto";

    /// <summary>
    /// Arithmetic of the negatives' embedding features (no gradient; default float32). bfloat16 runs a bfloat16 copy of
    /// a VGG embedding for them — about twice as fast on CPUs with AVX512-BF16. φ(f(x)) and its gradient stay float32.
    /// </summary>
    public Compute.NegativePrecision NegativePrecision { get; init; } = Compute.NegativePrecision.Float32;

    /// <summary>
    /// Options of an embedding a plugin registers (<c>services.AddMcirEmbedding</c>), in its own snake_case keys over its
    /// defaults; null for the engine's embeddings, which take <see cref="Embedding"/> (VGG) and <see cref="Onnx"/>.
    /// </summary>
    public System.Text.Json.Nodes.JsonObject? EmbeddingOptions { get; init; }

    /// <summary>Options of the ONNX embeddings (resnet18-imagenet, onnx): model path, layers, normalisation.</summary>
    public Embeddings.Onnx.OnnxEmbeddingOptions Onnx { get; init; } = new();

    /// <summary>ε in the ratio form's denominator.</summary>
    public double Epsilon { get; init; } = 1e-7;

    /// <summary>Report "spn/layer/{name}" parts (mean over negatives of the unweighted per-layer distance).</summary>
    public bool ReportLayerParts { get; init; } = true;

    /// <summary>The embedding φ (variant, normalisation, weights). Its <c>Layers</c> are replaced by the keys of <see cref="LayerWeights"/>.</summary>
    public VggEmbeddingOptions Embedding { get; init; } = DefaultEmbedding;

    /// <summary>
    /// The default <see cref="Embedding"/> (VGG16, ImageNet normalisation); also the marker for "no embedding section
    /// configured", which lets <c>auto</c> fall back to the offline embedding.
    /// </summary>
    public static readonly VggEmbeddingOptions DefaultEmbedding = new() { Variant = VggVariant.Vgg16, Normalize = true };

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first invalid option (the configuration binder calls it).</summary>
    public void Validate()
    {
        if (!double.IsFinite(Lambda) || Lambda < 0)
            throw new ArgumentException($"{nameof(Lambda)} must be a finite number ≥ 0, got {Lambda.ToString(System.Globalization.CultureInfo.InvariantCulture)}", nameof(Lambda));
        if (!(Epsilon >= 0) || !double.IsFinite(Epsilon))
            throw new ArgumentException($"{nameof(Epsilon)} must be a finite number ≥ 0, got {Epsilon.ToString(System.Globalization.CultureInfo.InvariantCulture)}", nameof(Epsilon));
        if (string.IsNullOrWhiteSpace(EmbeddingType))
            throw new ArgumentException($"the embedding type is empty (known: auto and the registered embeddings: {string.Join(", ", SpnEmbeddingSelection.BuiltIn.Select(d => d.Name))} and plugins')", nameof(EmbeddingType));
        if (LayerWeights.FirstOrDefault(p => !double.IsFinite(p.Value) || p.Value < 0) is { Key: not null } bad)
            throw new ArgumentException($"the weight of '{bad.Key}' must be a finite number ≥ 0, got {bad.Value.ToString(System.Globalization.CultureInfo.InvariantCulture)}", nameof(LayerWeights));
    }

    /// <summary>The VGG embedding options (<see cref="Embedding"/>) with the layers of <see cref="LayerWeights"/>, ordered by depth.</summary>
    public VggEmbeddingOptions VggOptions() => Embedding with
    {
        Layers = LayerWeights.Keys.OrderBy(l => VggLayout.IndexOf(Embedding.Variant, l)).ToArray(),
    };
}
