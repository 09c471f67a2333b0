using static TorchSharp.torch;

namespace Mcir.Abstractions.ModelContrast;

/// <summary>
/// Produces the "hard negatives" of the model-contrastive loss: outputs of K negative models on the same input.
/// Implementations run without autograd and in eval mode; the returned tensor never requires grad.
/// </summary>
public interface INegativeSource
{
    /// <summary>Number of negatives K.</summary>
    int Count { get; }

    /// <summary>The K negative outputs for a batch, stacked as [K, B, C, H, W].</summary>
    Tensor Produce(Tensor input);
}
