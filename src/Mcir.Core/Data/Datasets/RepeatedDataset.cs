namespace Mcir.Core.Data.Datasets;

/// <summary>
/// BasicSR's <c>dataset_enlarge_ratio</c>: a small training set seen <c>ratio</c> times per epoch, so an epoch is long
/// enough for whole batches and shuffling mixes more than a handful of images.
/// </summary>
public sealed class RepeatedDataset : IPairedDataset
{
    private readonly IPairedDataset _inner;

    public RepeatedDataset(IPairedDataset inner, int ratio)
    {
        if (ratio < 1) throw new ArgumentOutOfRangeException(nameof(ratio), ratio, "dataset_enlarge_ratio must be 1 or more");
        _inner = inner;
        Ratio = ratio;
    }

    public int Ratio { get; }

    public int Count => _inner.Count * Ratio;

    public int Channels => _inner.Channels;

    public string NameOf(int index) => _inner.NameOf(index % _inner.Count);

    public PairedImages Load(int index, Random rng) => _inner.Load(index % _inner.Count, rng);
}
