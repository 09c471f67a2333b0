namespace Mcir.Core.Embeddings;

/// <summary>Configuration of <see cref="VggEmbedding"/>.</summary>
public sealed record VggEmbeddingOptions
{
    /// <summary>vgg16 (the authors' default) or vgg19 (CR / AECR-Net).</summary>
    public VggVariant Variant { get; init; } = VggVariant.Vgg16;

    /// <summary>Named layers returned by <see cref="VggEmbedding.Extract"/> (relu1_1 … relu5_4, also convX_Y/poolX), in that order.</summary>
    public IReadOnlyList<string> Layers { get; init; } = ["relu1_2", "relu2_2", "relu3_3"];

    /// <summary>Apply ImageNet normalisation (mean 0.485/0.456/0.406, std 0.229/0.224/0.225) to the [0,1] RGB input.</summary>
    public bool Normalize { get; init; } = true;

    /// <summary>
    /// torchvision checkpoint (<c>vgg16-397923af.pth</c> / <c>vgg19-dcbb9e9d.pth</c>) or a <c>.safetensors</c> conversion of
    /// it, or a directory containing one. Keys are matched by name (<c>features.N.weight</c>); <c>classifier.*</c> is ignored.
    /// </summary>
    public string? WeightsPath { get; init; }

    /// <summary>
    /// Only when true and <see cref="WeightsPath"/> is empty are random (torchvision-style kaiming) weights used; the
    /// embedding then says so in <see cref="VggEmbedding.WeightsDescription"/>. Random weights are not the method.
    /// </summary>
    public bool AllowRandomWeights { get; init; }

    /// <summary>Seed for random weights (only used with <see cref="AllowRandomWeights"/>).</summary>
    public ulong RandomSeed { get; init; }
}
