using static TorchSharp.torch;

namespace Mcir.Core.Training;

/// <summary>
/// Where the trainer takes its batches from: an endless sequence of (degraded input, ground truth) pairs whose position
/// can be saved and restored, so a resumed run sees exactly the batches the uninterrupted run would have seen.
/// </summary>
public interface IBatchSource
{
    /// <summary>
    /// The next batch: LQ [B, C, h, w] and GT [B, C, H, W] on the training device. The tensors belong to the caller
    /// (the trainer's per-iteration dispose scope disposes them).
    /// </summary>
    (Tensor Lq, Tensor Gt) Next();

    /// <summary>An opaque snapshot of the position (shuffle RNG, order, cursor, ...) stored in checkpoints.</summary>
    byte[] GetState();

    /// <summary>Restores a snapshot taken by <see cref="GetState"/>; throws <see cref="InvalidDataException"/> if it does not fit.</summary>
    void SetState(byte[] state);
}
