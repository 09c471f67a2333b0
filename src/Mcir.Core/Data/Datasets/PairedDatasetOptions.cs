namespace Mcir.Core.Data.Datasets;

/// <summary>
/// How a paired data set turns a file pair into a sample (BasicSR's <c>PairedImageDataset</c> options).
/// </summary>
public sealed record PairedDatasetOptions
{
    /// <summary>GT size / LQ size (<c>scale</c>); 1 for restoration tasks where both have the same size. Default 1.</summary>
    public int Scale { get; init; } = 1;

    /// <summary>
    /// Training patch size on the GT side (<c>gt_size</c>): a random aligned crop of <c>GtSize</c>² GT pixels and
    /// <c>(GtSize / Scale)</c>² LQ pixels per sample (<see cref="PairedTransforms.PairedRandomCrop"/>). Null (default) =
    /// whole images, as in BasicSR's validation phase: GT is then cut to <c>Scale × LQ</c> when it is at most
    /// <c>Scale − 1</c> pixels larger (mod-crop).
    /// </summary>
    public int? GtSize { get; init; }

    /// <summary>Random horizontal flips (<c>use_hflip</c>). Default false.</summary>
    public bool UseHFlip { get; init; }

    /// <summary>Random vertical flips and transposes, i.e. the 8 dihedral orientations with <see cref="UseHFlip"/> (<c>use_rot</c>). Default false.</summary>
    public bool UseRot { get; init; }

    /// <summary>Keep decoded images in memory after the first read (fast epochs, memory = 12 bytes per pixel). Default false.</summary>
    public bool CacheImages { get; init; }

    /// <summary>
    /// Channels the images are read with: 3 (default, RGB) or 1 (gray: <see cref="Grayscale.FromRgb"/>, OpenCV's
    /// BT.601 luma; gray files as they are). Set from the model's input channels.
    /// </summary>
    public int Channels { get; init; } = 3;

    /// <summary>A training configuration: crop <paramref name="gtSize"/>, horizontal flips and rotations on.</summary>
    public static PairedDatasetOptions Train(int scale, int gtSize) =>
        new() { Scale = scale, GtSize = gtSize, UseHFlip = true, UseRot = true };

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (Channels is not (1 or 3))
            throw new ArgumentException($"{nameof(Channels)} must be 1 (gray) or 3 (RGB), got {Channels}");
        if (Scale < 1)
            throw new ArgumentException($"{nameof(Scale)} must be >= 1, got {Scale}");
        if (GtSize is { } g)
        {
            if (g < Scale)
                throw new ArgumentException($"{nameof(GtSize)} must be >= {nameof(Scale)} ({Scale}), got {g}");
            if (g % Scale != 0)
                throw new ArgumentException($"{nameof(GtSize)} {g} is not a multiple of {nameof(Scale)} {Scale}: the LQ patch would be {g / Scale}, the GT patch {g}");
        }
    }
}
