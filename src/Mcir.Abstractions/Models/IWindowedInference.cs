namespace Mcir.Abstractions.Models;

/// <summary>How <see cref="IWindowedInference"/> windows are weighted where they overlap.</summary>
public enum WindowMerge
{
    /// <summary>Every window pixel has weight 1: overlaps are plain means (IDT's <c>get_scoremap(is_mean=True)</c>).</summary>
    Mean,

    /// <summary>
    /// Pixel (h, w) of an output window of side n has weight <c>1 / sqrt((h − n/2)² + (w − n/2)² + 1e−3)</c> (computed in
    /// float64, applied in float32), so the centre of a window dominates its borders; overlaps are the weighted means.
    /// IDT's full-size test (jiexiaou/IDT <c>test_full_size.py</c>, <c>get_scoremap(is_mean=False)</c> and <c>mergeimage</c>).
    /// </summary>
    InverseCenterDistance,
}

/// <summary>
/// A network that only accepts inputs of one size (e.g. IDT, whose spatial-transformer layers are built for
/// <c>img_size</c> × <c>img_size</c>) and is evaluated on larger images in overlapping square windows of that size. The
/// engine's inference path — validation during training, <c>test</c> and <c>restore</c> — then splits every image into
/// windows of <see cref="InferenceWindow"/> input pixels, runs the network on each and merges the outputs with
/// <see cref="InferenceMerge"/>; the tile options of the command line do not apply to such a network.
/// </summary>
/// <remarks>
/// Window placement (IDT's <c>splitimage</c>): along an axis of length L, windows of size n start at 0, n − m, 2(n − m), …
/// for as long as the window ends before L, and one last window ends exactly at L (m = <see cref="InferenceOverlap"/>).
/// A side shorter than n is reflect-padded at the bottom/right to n (edge replication where it is too short to reflect)
/// and the output cropped back. Training patches are not windowed: choose <c>gt_size</c> equal to the window.
/// </remarks>
public interface IWindowedInference
{
    /// <summary>Window side in input pixels (≥ 1), the only input size the network accepts, e.g. IDT's 128.</summary>
    int InferenceWindow { get; }

    /// <summary>Input pixels shared by neighbouring windows (at least; 0 ≤ m &lt; window), e.g. IDT's 20.</summary>
    int InferenceOverlap { get; }

    /// <summary>How overlapping window outputs are combined.</summary>
    WindowMerge InferenceMerge { get; }
}
