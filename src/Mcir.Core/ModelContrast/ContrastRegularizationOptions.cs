using System.ComponentModel.DataAnnotations;
using Mcir.Core.Embeddings;

namespace Mcir.Core.ModelContrast;

/// <summary>What CR contrasts the output against.</summary>
public enum CrNegatives
{
    /// <summary>AECR-Net: the degraded input x (must have the output's shape).</summary>
    Input,
    /// <summary>The negative models' outputs n_j; one ratio per negative, averaged over j.</summary>
    Models,
}

/// <summary>Configuration of <see cref="ContrastRegularizationLoss"/>; defaults are AECR-Net's (models/CR.py).</summary>
public sealed record ContrastRegularizationOptions
{
    /// <summary>
    /// β in total = L1 + β·CR. Default 0.1 = AECR-Net's published training command (<c>--w_loss_vgg7 0.1</c>;
    /// its argparse default is 0, i.e. off).
    /// </summary>
    public double Weight { get; init; } = 0.1;

    /// <summary>input (AECR-Net) or models.</summary>
    public CrNegatives Negatives { get; init; } = CrNegatives.Input;

    /// <summary>Layer weights; default VGG19 relu1_1 … relu5_1 with 1/32, 1/16, 1/8, 1/4, 1.</summary>
    [MinLength(1)]
    public IReadOnlyDictionary<string, double> LayerWeights { get; init; } = new Dictionary<string, double>
    {
        ["relu1_1"] = 1.0 / 32, ["relu2_1"] = 1.0 / 16, ["relu3_1"] = 1.0 / 8, ["relu4_1"] = 1.0 / 4, ["relu5_1"] = 1.0,
    };

    /// <summary>ε added to the denominator (AECR-Net: 1e-7).</summary>
    public double Epsilon { get; init; } = 1e-7;

    /// <summary>The embedding; AECR-Net uses VGG19 without ImageNet normalisation. Layers come from <see cref="LayerWeights"/>.</summary>
    public VggEmbeddingOptions Embedding { get; init; } = new() { Variant = VggVariant.Vgg19, Normalize = false };

    /// <summary>The embedding options with the layers of <see cref="LayerWeights"/>, ordered by depth.</summary>
    public VggEmbeddingOptions EmbeddingOptions() => Embedding with
    {
        Layers = LayerWeights.Keys.OrderBy(l => VggLayout.IndexOf(Embedding.Variant, l)).ToArray(),
    };
}
