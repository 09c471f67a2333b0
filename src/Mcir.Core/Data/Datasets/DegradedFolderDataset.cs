using System.Collections.Concurrent;
using Mcir.Abstractions.Components;
using static TorchSharp.torch;

namespace Mcir.Core.Data.Datasets;

/// <summary>
/// A folder of clean images; each LQ input is made from its clean image by a registered <see cref="IDegradation"/>
/// (noise, bicubic downscaling, ...). The GT is the clean image mod-cropped to <see cref="PairedDatasetOptions.Scale"/>
/// (1 unless the degradation changes the size).
/// </summary>
/// <remarks>
/// <para>Two ways to seed the degradation:</para>
/// <list type="bullet">
/// <item><description>no <c>fixedSeed</c> (training): every <see cref="Load"/> crops a GT patch, flips/rotates it and
/// then degrades it with the <see cref="Random"/> it was given — a new degradation every time, reproducible because
/// the loader seeds that <see cref="Random"/> per (seed, epoch, sample).</description></item>
/// <item><description>a <c>fixedSeed</c> (validation, test): each whole image is degraded once, with a
/// <see cref="Random"/> seeded from (fixedSeed, image name), and kept; crops and flips, if configured, are then applied
/// to the pair. The noisy inputs are the same in every run and do not depend on the order of the files.</description></item>
/// </list>
/// </remarks>
public sealed class DegradedFolderDataset : IPairedDataset
{
    private readonly IReadOnlyList<string> _files;
    private readonly string[] _names;
    private readonly ConcurrentDictionary<int, RgbImage> _clean = new();
    private readonly ConcurrentDictionary<int, RgbImage> _fixedLq = new();

    /// <summary>Lists the folder (images are read on demand).</summary>
    /// <param name="gtDir">Folder of clean images.</param>
    /// <param name="degradation">Makes the LQ image from the clean one.</param>
    /// <param name="options">Scale, crop, augmentation; <see cref="PairedDatasetOptions.CacheImages"/> keeps the clean images.</param>
    /// <param name="fixedSeed">Null: degrade anew at every load (training). A value: degrade each image once, seeded by
    /// (value, image name) (validation/test).</param>
    /// <exception cref="McirException">The folder is missing or empty, or two files share a name.</exception>
    public DegradedFolderDataset(string gtDir, IDegradation degradation, PairedDatasetOptions options, int? fixedSeed = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(gtDir);
        ArgumentNullException.ThrowIfNull(degradation);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        GtDir = gtDir;
        Degradation = degradation;
        Options = options;
        FixedSeed = fixedSeed;
        _files = ImageFolder.List(gtDir);
        _names = _files.Select(static f => Path.GetFileNameWithoutExtension(f)).ToArray();
        var duplicate = _names.GroupBy(static n => n, StringComparer.Ordinal).FirstOrDefault(static g => g.Count() > 1);
        if (duplicate is not null)
            throw new McirException($"{gtDir}: two images share the name '{duplicate.Key}'; the name seeds the degradation and names the results");
    }

    /// <summary>The folder of clean images.</summary>
    public string GtDir { get; }

    /// <summary>The degradation that makes the LQ images.</summary>
    public IDegradation Degradation { get; }

    /// <summary>Scale, crop and augmentation settings.</summary>
    public PairedDatasetOptions Options { get; }

    /// <summary>Null when every load degrades anew; else the seed that, with the image name, fixes each LQ image.</summary>
    public int? FixedSeed { get; }

    /// <inheritdoc />
    public int Count => _files.Count;

    /// <inheritdoc />
    public int Channels => Options.Channels;

    /// <inheritdoc />
    public string NameOf(int index) => _names[index];

    /// <summary>The clean file of sample <paramref name="index"/>.</summary>
    public string PathOf(int index) => _files[index];

    /// <summary>The seed of image <paramref name="name"/>'s degradation for a fixed seed (stable across runs and platforms).</summary>
    public static int NameSeed(int seed, string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        uint hash = 2166136261; // FNV-1a over the UTF-16 code units
        foreach (char c in name) hash = (hash ^ c) * 16777619;
        return Seeds.Mix(seed, (int)hash, 0);
    }

    /// <inheritdoc />
    /// <exception cref="McirException">The degradation's output is not GT / scale, or the image is smaller than the
    /// training patch; the message names the file.</exception>
    public PairedImages Load(int index, Random rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        if ((uint)index >= (uint)Count)
            throw new ArgumentOutOfRangeException(nameof(index), $"sample index {index} is outside [0, {Count})");
        string path = _files[index];
        int s = Options.Scale;
        var gt = Clean(index);
        RgbImage lq;
        if (FixedSeed is { } seed)
        {
            lq = _fixedLq.GetOrAdd(index, _ => Degrade(gt, new Random(NameSeed(seed, _names[index])), path));
            if (Options.GtSize is { } gtSize)
                (gt, lq) = PairedTransforms.PairedRandomCrop(gt, lq, gtSize, s, rng, path, LqSource(path));
            var flags = PairedTransforms.DrawAugment(rng, Options.UseHFlip, Options.UseRot);
            (gt, lq) = (PairedTransforms.Apply(gt, flags), PairedTransforms.Apply(lq, flags));
        }
        else
        {
            if (Options.GtSize is { } gtSize) gt = RandomGtPatch(gt, gtSize, s, rng, path);
            gt = PairedTransforms.Apply(gt, PairedTransforms.DrawAugment(rng, Options.UseHFlip, Options.UseRot));
            lq = Degrade(gt, rng, path);
        }
        return new PairedImages(lq, gt, _names[index]);
    }

    private RgbImage Clean(int index)
    {
        RgbImage Read(int i)
        {
            var img = Grayscale.Read(_files[i], Options.Channels);
            if (img.Height < Options.Scale || img.Width < Options.Scale)
                throw new McirException($"{_files[i]}: a {img.Height}x{img.Width} image is smaller than the scale {Options.Scale}");
            return ModCrop.Apply(img, Options.Scale);
        }
        return Options.CacheImages ? _clean.GetOrAdd(index, Read) : Read(index);
    }

    private string LqSource(string path) => $"{path} (degraded by '{Degradation.Name}')";

    // PairedRandomCrop's draws on the GT alone: an aligned gtSize² patch, before the LQ exists.
    private static RgbImage RandomGtPatch(RgbImage gt, int gtSize, int scale, Random rng, string path)
    {
        int lqSize = gtSize / scale, lqH = gt.Height / scale, lqW = gt.Width / scale;
        if (lqH < lqSize || lqW < lqSize)
            throw new McirException(
                $"{path}: too small for the training patch: the image is {gt.Height}x{gt.Width}, the patch {gtSize}x{gtSize} (gt_size {gtSize}, scale {scale}); remove the image or lower gt_size");
        int top = rng.Next(lqH - lqSize + 1);
        int left = rng.Next(lqW - lqSize + 1);
        return gt.Crop(top * scale, left * scale, gtSize, gtSize);
    }

    private RgbImage Degrade(RgbImage gt, Random rng, string path)
    {
        RgbImage lq;
        using (NewDisposeScope())
        {
            int c = Options.Channels;
            var clean = ImageTensor.ToTensor(gt, channels: c);
            var degraded = Degradation.Degrade(clean, rng);
            if (degraded.dim() != 3 || degraded.shape[0] != c)
                throw new McirException($"{LqSource(path)}: the degradation returned a [{string.Join(", ", degraded.shape)}] tensor, expected [{c}, h, w]");
            int h = (int)degraded.shape[1], w = (int)degraded.shape[2];
            if (c == 1) degraded = degraded.expand(3, h, w);
            var hwc = degraded.detach().to(ScalarType.Float32).cpu().permute(1, 2, 0).contiguous().data<float>().ToArray();
            for (int i = 0; i < hwc.Length; i++) hwc[i] *= 255f;
            lq = new RgbImage(h, w, hwc);
        }
        PairedTransforms.CheckScale(gt, lq, Options.Scale, path, LqSource(path));
        return lq;
    }
}
