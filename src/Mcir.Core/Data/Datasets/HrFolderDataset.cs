namespace Mcir.Core.Data.Datasets;

/// <summary>
/// A folder of high-resolution images only; each LR input is made from its HR image with
/// <see cref="MatlabResize.DownscaleForSr"/> (BasicSR's bicubic degradation: mod-crop, MATLAB <c>imresize</c> by
/// 1/scale with antialiasing, 8-bit rounding), computed on first use and then kept in memory. The GT is the mod-cropped
/// HR image (<see cref="ModCrop.Apply"/>), so GT = scale × LR always holds.
/// </summary>
public sealed class HrFolderDataset : PairedImageDatasetBase
{
    private readonly IReadOnlyList<string> _files;
    private readonly string[] _names;
    private readonly ImageCache _lrCache;
    private readonly ImageCache? _hrCache;

    /// <summary>Lists the folder (images are read on demand).</summary>
    /// <param name="hrDir">Folder of HR images.</param>
    /// <param name="options">Scale (≥ 2 for SR), crop, augmentation; <see cref="PairedDatasetOptions.CacheImages"/> also
    /// keeps the HR images (the LR images are always cached).</param>
    /// <exception cref="McirException">The folder is missing or empty, or two files share a name.</exception>
    public HrFolderDataset(string hrDir, PairedDatasetOptions options) : base(options)
    {
        ArgumentException.ThrowIfNullOrEmpty(hrDir);
        HrDir = hrDir;
        _files = ImageFolder.List(hrDir);
        _names = _files.Select(static f => Path.GetFileNameWithoutExtension(f)).ToArray();
        var duplicate = _names.GroupBy(static n => n, StringComparer.Ordinal).FirstOrDefault(static g => g.Count() > 1);
        if (duplicate is not null)
            throw new McirException($"{hrDir}: two images share the name '{duplicate.Key}' ({string.Join(", ", _files.Where(f => Path.GetFileNameWithoutExtension(f) == duplicate.Key).Select(Path.GetFileName))})");
        _lrCache = new ImageCache(_files.Count);
        if (options.CacheImages) _hrCache = new ImageCache(_files.Count);
    }

    /// <summary>The HR folder.</summary>
    public string HrDir { get; }

    /// <inheritdoc />
    public override int Count => _files.Count;

    /// <inheritdoc />
    public override string NameOf(int index) => _names[index];

    /// <summary>The HR file of sample <paramref name="index"/>.</summary>
    public string PathOf(int index) => _files[index];

    /// <inheritdoc />
    protected override (RgbImage Lq, RgbImage Gt, string LqSource, string GtSource) ReadPair(int index)
    {
        string path = _files[index];
        int s = Options.Scale;
        RgbImage? hr = _hrCache?.GetOrAdd(index, () => Grayscale.Read(path, Options.Channels));
        var lr = _lrCache.GetOrAdd(index, () =>
        {
            hr ??= Grayscale.Read(path, Options.Channels);
            if (hr.Height < s || hr.Width < s)
                throw new McirException($"{path}: a {hr.Height}x{hr.Width} image is smaller than the scale {s}");
            return MatlabResize.DownscaleForSr(hr, s);
        });
        hr ??= Grayscale.Read(path, Options.Channels);
        var gt = ModCrop.Apply(hr, s);
        return (lr, gt, $"{path} (LR made by bicubic x1/{s})", path);
    }
}
