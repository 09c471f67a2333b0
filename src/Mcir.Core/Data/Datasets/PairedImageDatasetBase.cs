namespace Mcir.Core.Data.Datasets;

/// <summary>
/// The part of BasicSR's <c>PairedImageDataset.__getitem__</c> common to every file layout: size check, random crop
/// (training) or GT mod-crop (evaluation), then the flips/transposes. Subclasses only read the two images.
/// </summary>
public abstract class PairedImageDatasetBase : IPairedDataset
{
    /// <summary>Checks <paramref name="options"/>.</summary>
    protected PairedImageDatasetBase(PairedDatasetOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
    }

    /// <summary>The crop/augment/cache settings.</summary>
    public PairedDatasetOptions Options { get; }

    /// <inheritdoc />
    public int Channels => Options.Channels;

    /// <summary>GT size / LQ size.</summary>
    public int Scale => Options.Scale;

    /// <inheritdoc />
    public abstract int Count { get; }

    /// <inheritdoc />
    public abstract string NameOf(int index);

    /// <summary>The full images of sample <paramref name="index"/> and where they come from (for messages).</summary>
    protected abstract (RgbImage Lq, RgbImage Gt, string LqSource, string GtSource) ReadPair(int index);

    /// <inheritdoc />
    /// <exception cref="McirException">GT is not Scale × LQ, or the image is smaller than the training patch; the
    /// message names the files.</exception>
    public PairedImages Load(int index, Random rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        if ((uint)index >= (uint)Count)
            throw new ArgumentOutOfRangeException(nameof(index), $"sample index {index} is outside [0, {Count})");
        var (lq, gt, lqSource, gtSource) = ReadPair(index);
        int s = Options.Scale;
        if (Options.GtSize is { } gtSize)
        {
            (gt, lq) = PairedTransforms.PairedRandomCrop(gt, lq, gtSize, s, rng, gtSource, lqSource);
        }
        else
        {
            // BasicSR's evaluation phase: img_gt[0:h_lq * scale, 0:w_lq * scale], accepted here only when that is a
            // mod-crop (GT at most scale - 1 pixels too large); anything else is a mismatched pair.
            long h = (long)lq.Height * s, w = (long)lq.Width * s;
            if (gt.Height >= h && gt.Width >= w && gt.Height - h < s && gt.Width - w < s)
                gt = gt.Height == h && gt.Width == w ? gt : gt.Crop(0, 0, (int)h, (int)w);
            else
                PairedTransforms.CheckScale(gt, lq, s, gtSource, lqSource);
        }

        if (Options.UseHFlip || Options.UseRot)
        {
            var flags = PairedTransforms.DrawAugment(rng, Options.UseHFlip, Options.UseRot);
            gt = PairedTransforms.Apply(gt, flags);
            lq = PairedTransforms.Apply(lq, flags);
        }

        return new PairedImages(lq, gt, NameOf(index));
    }

    /// <summary>A slot per sample that computes its image once (thread-safe; a failed read is retried next time).</summary>
    private protected sealed class ImageCache
    {
        private readonly RgbImage?[] _images;
        private readonly object[] _locks;

        public ImageCache(int count)
        {
            _images = new RgbImage?[count];
            _locks = Enumerable.Range(0, count).Select(static _ => new object()).ToArray();
        }

        public RgbImage GetOrAdd(int index, Func<RgbImage> make)
        {
            var cached = Volatile.Read(ref _images[index]);
            if (cached is not null) return cached;
            lock (_locks[index])
            {
                cached = _images[index];
                if (cached is null)
                {
                    cached = make();
                    Volatile.Write(ref _images[index], cached);
                }
                return cached;
            }
        }
    }
}
