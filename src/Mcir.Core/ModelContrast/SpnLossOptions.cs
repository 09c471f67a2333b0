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
    public IReadOnlyDictionary<string, double> LayerWeights { get; init; } =
        new Dictionary<string, double> { ["relu1_2"] = 0.2, ["relu2_2"] = 0.3, ["relu3_3"] = 0.5 };

    /// <summary>ε in the ratio form's denominator.</summary>
    public double Epsilon { get; init; } = 1e-7;

    /// <summary>Report "spn/layer/{name}" parts (mean over negatives of the unweighted per-layer distance).</summary>
    public bool ReportLayerParts { get; init; } = true;

    /// <summary>The embedding φ (variant, normalisation, weights). Its <c>Layers</c> are replaced by the keys of <see cref="LayerWeights"/>.</summary>
    public VggEmbeddingOptions Embedding { get; init; } = new() { Variant = VggVariant.Vgg16, Normalize = true };

    /// <summary>The embedding options with the layers of <see cref="LayerWeights"/>, ordered by depth.</summary>
    public VggEmbeddingOptions EmbeddingOptions() => Embedding with
    {
        Layers = LayerWeights.Keys.OrderBy(l => VggLayout.IndexOf(Embedding.Variant, l)).ToArray(),
    };
}
