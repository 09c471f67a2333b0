using static TorchSharp.torch;

namespace Mcir.Abstractions.ModelContrast;

/// <summary>
/// A frozen feature extractor φ (e.g. ImageNet VGG16) used to compare images in feature space.
/// Input: RGB in [0, 1], [B, 3, H, W]. Any input normalisation is the embedding's own business.
/// </summary>
public interface IFeatureEmbedding : IDisposable
{
    /// <summary>Registered name, e.g. "vgg16".</summary>
    string Name { get; }

    /// <summary>The layers returned by <see cref="Extract"/>, in that order (e.g. relu1_2, relu2_2, relu3_3).</summary>
    IReadOnlyList<string> Layers { get; }

    /// <summary>A one-line description of the weights in use (file, or "random weights"), for run logs.</summary>
    string WeightsDescription { get; }

    /// <summary>Features of <paramref name="rgb"/> at <see cref="Layers"/>. Gradient flows to the input if it requires grad.</summary>
    IReadOnlyList<Tensor> Extract(Tensor rgb);
}
