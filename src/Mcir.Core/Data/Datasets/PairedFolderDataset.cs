namespace Mcir.Core.Data.Datasets;

/// <summary>
/// BasicSR's paired folder layout (<c>PairedImageDataset</c> with <c>dataroot_gt</c> and <c>dataroot_lq</c>): two folders
/// whose images are paired by file name without extension (<see cref="ImageFolder.Pair"/>), e.g. DIV2K's
/// <c>DIV2K_train_HR/0001.png</c> ↔ <c>DIV2K_train_LR_bicubic/X4/0001.png</c> once both are named alike.
/// </summary>
public sealed class PairedFolderDataset : PairedImageDatasetBase
{
    private readonly IReadOnlyList<(string Name, string Gt, string Lq)> _pairs;
    private readonly ImageCache? _gtCache;
    private readonly ImageCache? _lqCache;

    /// <summary>Lists and pairs the two folders (the images are read on demand).</summary>
    /// <param name="gtDir">Ground-truth folder (<c>dataroot_gt</c>).</param>
    /// <param name="lqDir">Low-quality folder (<c>dataroot_lq</c>).</param>
    /// <param name="options">Scale, crop, augmentation and caching.</param>
    /// <exception cref="McirException">A folder is missing or empty, or the folders hold different name sets.</exception>
    public PairedFolderDataset(string gtDir, string lqDir, PairedDatasetOptions options) : base(options)
    {
        ArgumentException.ThrowIfNullOrEmpty(gtDir);
        ArgumentException.ThrowIfNullOrEmpty(lqDir);
        GtDir = gtDir;
        LqDir = lqDir;
        _pairs = ImageFolder.Pair(gtDir, lqDir);
        if (options.CacheImages)
        {
            _gtCache = new ImageCache(_pairs.Count);
            _lqCache = new ImageCache(_pairs.Count);
        }
    }

    /// <summary>The ground-truth folder.</summary>
    public string GtDir { get; }

    /// <summary>The low-quality folder.</summary>
    public string LqDir { get; }

    /// <inheritdoc />
    public override int Count => _pairs.Count;

    /// <inheritdoc />
    public override string NameOf(int index) => _pairs[index].Name;

    /// <summary>The GT and LQ file of sample <paramref name="index"/>.</summary>
    public (string Gt, string Lq) PathsOf(int index) => (_pairs[index].Gt, _pairs[index].Lq);

    /// <inheritdoc />
    protected override (RgbImage Lq, RgbImage Gt, string LqSource, string GtSource) ReadPair(int index)
    {
        var (_, gtPath, lqPath) = _pairs[index];
        var gt = _gtCache is null ? ImageIO.Read(gtPath) : _gtCache.GetOrAdd(index, () => ImageIO.Read(gtPath));
        var lq = _lqCache is null ? ImageIO.Read(lqPath) : _lqCache.GetOrAdd(index, () => ImageIO.Read(lqPath));
        return (lq, gt, lqPath, gtPath);
    }
}
