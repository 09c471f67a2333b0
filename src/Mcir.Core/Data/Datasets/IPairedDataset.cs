namespace Mcir.Core.Data.Datasets;

/// <summary>
/// A finite, indexable set of (LQ, GT) pairs. Every random choice (crop position, flips) comes from the
/// <see cref="Random"/> the caller passes, so a sample is a pure function of (index, random state): that is what makes
/// <see cref="PairedBatchLoader"/> runs reproducible. Implementations must be safe to call from several threads at once.
/// </summary>
public interface IPairedDataset
{
    /// <summary>Number of samples.</summary>
    int Count { get; }

    /// <summary>
    /// Channels of the images as tensors: 3 (RGB) or 1 (gray; the <see cref="RgbImage"/>s then hold R = G = B and
    /// <see cref="ImageTensor.ToTensor"/> takes one of them). Default 3.
    /// </summary>
    int Channels => 3;

    /// <summary>The name of sample <paramref name="index"/> (file name without extension), without loading it.</summary>
    string NameOf(int index);

    /// <summary>Loads sample <paramref name="index"/>, cropped and augmented with draws from <paramref name="rng"/>.</summary>
    PairedImages Load(int index, Random rng);
}
