namespace Mcir.Core.Data.Datasets;

/// <summary>
/// Which of BasicSR's <c>augment</c> operations to apply, in this order: <see cref="HFlip"/> (mirror columns),
/// <see cref="VFlip"/> (mirror rows), <see cref="Transpose"/> (swap rows and columns). BasicSR calls the last one
/// <c>rot90</c>, but it is <c>img.transpose(1, 0, 2)</c>; with the vertical flip before it, it makes a clockwise
/// 90° rotation. The 8 combinations are the 8 dihedral orientations.
/// </summary>
/// <param name="HFlip">Mirror left–right (<c>cv2.flip(img, 1)</c>).</param>
/// <param name="VFlip">Mirror top–bottom (<c>cv2.flip(img, 0)</c>).</param>
/// <param name="Transpose">Swap height and width (BasicSR's <c>rot90</c> flag).</param>
public readonly record struct AugmentFlags(bool HFlip, bool VFlip, bool Transpose)
{
    /// <summary>No change.</summary>
    public static AugmentFlags None => default;
}

/// <summary>
/// BasicSR's paired training transforms (<c>basicsr/data/transforms.py</c>): <c>paired_random_crop</c> and
/// <c>augment</c>, on <see cref="RgbImage"/>s, driven by a caller-supplied <see cref="Random"/> so runs are reproducible.
/// </summary>
public static class PairedTransforms
{
    /// <summary>
    /// Checks that <paramref name="gt"/> is exactly <paramref name="scale"/> × <paramref name="lq"/>; otherwise throws a
    /// <see cref="McirException"/> naming both files.
    /// </summary>
    public static void CheckScale(RgbImage gt, RgbImage lq, int scale, string? gtPath = null, string? lqPath = null)
    {
        ArgumentNullException.ThrowIfNull(gt);
        ArgumentNullException.ThrowIfNull(lq);
        if (gt.Height != (long)lq.Height * scale || gt.Width != (long)lq.Width * scale)
            throw new McirException(
                $"scale mismatch: GT {gtPath ?? "(image)"} is {gt.Height}x{gt.Width} (HxW) but LQ {lqPath ?? "(image)"} is {lq.Height}x{lq.Width}; "
                + $"with scale {scale} the GT must be {(long)lq.Height * scale}x{(long)lq.Width * scale}");
    }

    /// <summary>
    /// BasicSR's <c>paired_random_crop(img_gt, img_lq, gt_patch_size, scale, gt_path)</c>: a random
    /// <c>(gtSize / scale)</c>² LQ patch at (top, left) = (<c>rng.Next(h − p + 1)</c>, <c>rng.Next(w − p + 1)</c>), and the
    /// GT patch at (scale·top, scale·left) of size <paramref name="gtSize"/>², so both cover the same region.
    /// </summary>
    /// <exception cref="McirException">GT is not <paramref name="scale"/> × LQ, or LQ is smaller than the patch (the
    /// message names the files).</exception>
    public static (RgbImage Gt, RgbImage Lq) PairedRandomCrop(
        RgbImage gt, RgbImage lq, int gtSize, int scale, Random rng, string? gtPath = null, string? lqPath = null)
    {
        ArgumentNullException.ThrowIfNull(rng);
        if (scale < 1) throw new ArgumentOutOfRangeException(nameof(scale), $"scale must be >= 1, got {scale}");
        if (gtSize < scale || gtSize % scale != 0)
            throw new ArgumentOutOfRangeException(nameof(gtSize), $"gt_size must be a positive multiple of the scale {scale}, got {gtSize}");
        CheckScale(gt, lq, scale, gtPath, lqPath);
        int lqSize = gtSize / scale;
        if (lq.Height < lqSize || lq.Width < lqSize)
            throw new McirException(
                $"{gtPath ?? lqPath ?? "(image)"}: too small for the training patch: LQ is {lq.Height}x{lq.Width} (GT {gt.Height}x{gt.Width}), "
                + $"the patch is {lqSize}x{lqSize} LQ / {gtSize}x{gtSize} GT pixels (gt_size {gtSize}, scale {scale}); remove the image or lower gt_size");

        int top = rng.Next(lq.Height - lqSize + 1);
        int left = rng.Next(lq.Width - lqSize + 1);
        var lqPatch = lq.Crop(top, left, lqSize, lqSize);
        var gtPatch = gt.Crop(top * scale, left * scale, gtSize, gtSize);
        return (gtPatch, lqPatch);
    }

    /// <summary>
    /// Draws BasicSR's <c>augment</c> flags: <c>hflip = hflip &amp;&amp; U &lt; 0.5</c>, <c>vflip = rotation &amp;&amp; U &lt; 0.5</c>,
    /// <c>transpose = rotation &amp;&amp; U &lt; 0.5</c>; a draw is made only for an enabled option (as Python's
    /// short-circuit <c>and</c>).
    /// </summary>
    public static AugmentFlags DrawAugment(Random rng, bool hflip, bool rotation)
    {
        ArgumentNullException.ThrowIfNull(rng);
        bool h = hflip && rng.NextDouble() < 0.5;
        bool v = rotation && rng.NextDouble() < 0.5;
        bool t = rotation && rng.NextDouble() < 0.5;
        return new AugmentFlags(h, v, t);
    }

    /// <summary>Applies <paramref name="flags"/> to one image (a new image; <paramref name="img"/> is not changed
    /// unless no flag is set, in which case it is returned as is).</summary>
    public static RgbImage Apply(RgbImage img, AugmentFlags flags)
    {
        ArgumentNullException.ThrowIfNull(img);
        if (flags == AugmentFlags.None) return img;
        int h = img.Height, w = img.Width;
        int outH = flags.Transpose ? w : h, outW = flags.Transpose ? h : w;
        float[] src = img.Pixels;
        var dst = new float[src.Length];
        for (int oy = 0; oy < outH; oy++)
        {
            for (int ox = 0; ox < outW; ox++)
            {
                // Undo the steps in reverse order: transpose, then vflip, then hflip.
                int y = flags.Transpose ? ox : oy;
                int x = flags.Transpose ? oy : ox;
                if (flags.VFlip) y = h - 1 - y;
                if (flags.HFlip) x = w - 1 - x;
                int s = (y * w + x) * RgbImage.Channels, d = (oy * outW + ox) * RgbImage.Channels;
                dst[d] = src[s];
                dst[d + 1] = src[s + 1];
                dst[d + 2] = src[s + 2];
            }
        }
        return new RgbImage(outH, outW, dst, img.SourceBitDepth);
    }

    /// <summary>BasicSR's <c>augment([img_gt, img_lq], hflip, rotation)</c>: one draw, the same flags for both images.</summary>
    public static (RgbImage Gt, RgbImage Lq, AugmentFlags Flags) Augment(RgbImage gt, RgbImage lq, Random rng, bool hflip, bool rotation)
    {
        var flags = DrawAugment(rng, hflip, rotation);
        return (Apply(gt, flags), Apply(lq, flags), flags);
    }
}
