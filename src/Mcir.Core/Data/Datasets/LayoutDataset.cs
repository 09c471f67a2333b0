using Mcir.Abstractions.Components;

namespace Mcir.Core.Data.Datasets;

/// <summary>
/// A paired data set read through a registered <see cref="IDatasetLayout"/> (<c>paired-folder</c>, <c>reside</c>,
/// <c>rain200</c>, <c>ddn</c>, <c>did</c>, <c>spa</c>, <c>gopro</c>, or a plugin's): the layout lists the file pairs, this
/// class reads them (the image regions, FFA-Net's centre crop of a larger GT, 1 or 3 channels) and crops/augments them
/// as BasicSR's <c>PairedImageDataset</c> (<see cref="PairedImageDatasetBase"/>).
/// </summary>
public class LayoutDataset : PairedImageDatasetBase
{
    private readonly IReadOnlyList<PairedFiles> _pairs;
    private readonly ImageCache? _gtCache;
    private readonly ImageCache? _lqCache;

    /// <summary>Lists and pairs the files (the images are read on demand).</summary>
    /// <param name="layout">The file layout.</param>
    /// <param name="roots">The configured folders and files.</param>
    /// <param name="options">Scale, crop, augmentation, caching, channels.</param>
    /// <exception cref="McirException">Files are missing or do not pair (the layout's message, naming the files and the rule).</exception>
    public LayoutDataset(IDatasetLayout layout, DatasetRoots roots, PairedDatasetOptions options) : base(options)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(roots);
        Layout = layout;
        Roots = roots;
        try { _pairs = layout.Pair(roots); }
        catch (DatasetLayoutException e) { throw new McirException($"type {layout.Name}: {e.Message}", e); }
        if (_pairs.Count == 0) throw new McirException($"type {layout.Name}: no pairs under {roots.DatarootGt} (rule: {layout.Rule})");
        if (options.CacheImages)
        {
            _gtCache = new ImageCache(_pairs.Count);
            _lqCache = new ImageCache(_pairs.Count);
        }
    }

    /// <summary>The layout that paired the files.</summary>
    public IDatasetLayout Layout { get; }

    /// <summary>The configured folders and files.</summary>
    public DatasetRoots Roots { get; }

    /// <summary>The file pairs, in sample order.</summary>
    public IReadOnlyList<PairedFiles> Pairs => _pairs;

    /// <inheritdoc />
    public override int Count => _pairs.Count;

    /// <inheritdoc />
    public override string NameOf(int index) => _pairs[index].Name;

    /// <summary>The GT and LQ file of sample <paramref name="index"/>.</summary>
    public (string Gt, string Lq) PathsOf(int index) => (_pairs[index].Gt, _pairs[index].Lq);

    /// <inheritdoc />
    protected override (RgbImage Lq, RgbImage Gt, string LqSource, string GtSource) ReadPair(int index)
    {
        var p = _pairs[index];
        RgbImage? shared = p.Gt == p.Lq && _gtCache is null ? ReadFile(p.Gt) : null;
        RgbImage lq = _lqCache is null ? Region(shared ?? ReadFile(p.Lq), p.LqRegion, p.Lq) : _lqCache.GetOrAdd(index, () => Region(ReadFile(p.Lq), p.LqRegion, p.Lq));
        RgbImage ReadGt()
        {
            var gt = Region(shared ?? ReadFile(p.Gt), p.GtRegion, p.Gt);
            return p.CenterCropGt ? CenterCrop(gt, lq.Height * Scale, lq.Width * Scale) : gt;
        }
        RgbImage gt = _gtCache is null ? ReadGt() : _gtCache.GetOrAdd(index, ReadGt);
        return (lq, gt, Describe(p.Lq, p.LqRegion), Describe(p.Gt, p.GtRegion));
    }

    private RgbImage ReadFile(string path) => Grayscale.Read(path, Options.Channels);

    private static string Describe(string path, ImageRegion region) => region switch
    {
        ImageRegion.LeftHalf => $"{path} (left half)",
        ImageRegion.RightHalf => $"{path} (right half)",
        _ => path,
    };

    /// <summary>The columns of <paramref name="region"/>: [0, ⌊w/2⌋) or [⌊w/2⌋, w), as PIL's crop in DID-MDN's loader.</summary>
    public static RgbImage Region(RgbImage image, ImageRegion region, string path)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (region == ImageRegion.Whole) return image;
        int half = image.Width / 2;
        if (half == 0) throw new McirException($"{path}: a {image.Height}x{image.Width} image cannot be split into left and right halves");
        return region == ImageRegion.LeftHalf ? image.Crop(0, 0, image.Height, half) : image.Crop(0, half, image.Height, image.Width - half);
    }

    /// <summary>
    /// torchvision's <c>CenterCrop</c> (FFA-Net's loader): top = round((H − h) / 2), left = round((W − w) / 2), Python's
    /// round half to even; the image unchanged when it is not larger than (h, w) in both directions.
    /// </summary>
    public static RgbImage CenterCrop(RgbImage image, int height, int width)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (image.Height < height || image.Width < width || (image.Height == height && image.Width == width)) return image;
        int top = (int)Math.Round((image.Height - height) / 2.0, MidpointRounding.ToEven);
        int left = (int)Math.Round((image.Width - width) / 2.0, MidpointRounding.ToEven);
        return image.Crop(top, left, height, width);
    }
}
