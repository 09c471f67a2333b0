using Mcir.Abstractions.Components;
using static TorchSharp.torch;

namespace McirPlugin.Template;

/// <summary>Options of the <c>mcirtask-blockiness</c> degradation (<c>degradation.options</c>).</summary>
public sealed record BlockinessOptions
{
    /// <summary>Block edge in pixels (JPEG: 8). Default 8.</summary>
    public int BlockSize { get; init; } = 8;

    /// <summary>Smallest pull towards the block mean, in [0, 1]. Default 0.3.</summary>
    public double MinStrength { get; init; } = 0.3;

    /// <summary>Largest pull towards the block mean, in [MinStrength, 1]. Default 0.7.</summary>
    public double MaxStrength { get; init; } = 0.7;
}

/// <summary>
/// <c>mcirtask-blockiness</c>: a stand-in for block-based compression artefacts. Each image is pulled towards the mean
/// of its <c>block_size</c>² blocks, <c>y = x + s · (blockmean(x) − x)</c>, with one strength <c>s</c> drawn uniformly
/// from [min_strength, max_strength] per image from the caller's <see cref="Random"/> (so runs repeat). Same size as the
/// input ([3, H, W], values stay in [0, 1]); edge blocks are the partial blocks that remain.
/// </summary>
public sealed class BlockinessDegradation : IDegradation
{
    /// <summary>The registration of the <c>mcirtask-blockiness</c> degradation.</summary>
    public static DegradationDescriptor Descriptor { get; } = DegradationDescriptor.Of<BlockinessDegradation, BlockinessOptions>(
        "mcirtask-blockiness", "pulls each image towards its 8x8 block means by a random strength in [0.3, 0.7]",
        new BlockinessOptions(), o => new BlockinessDegradation(o));

    /// <summary>Checks the options.</summary>
    /// <exception cref="ArgumentException">The block size is below 1 or the strengths are not 0 ≤ min ≤ max ≤ 1.</exception>
    public BlockinessDegradation(BlockinessOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.BlockSize < 1)
            throw new ArgumentException($"mcirtask-blockiness: block_size must be >= 1, got {options.BlockSize}");
        if (!(options.MinStrength >= 0 && options.MinStrength <= options.MaxStrength && options.MaxStrength <= 1))
            throw new ArgumentException($"mcirtask-blockiness: need 0 <= min_strength <= max_strength <= 1, got {options.MinStrength} and {options.MaxStrength}");
        Options = options;
    }

    /// <summary>The options.</summary>
    public BlockinessOptions Options { get; }

    /// <inheritdoc />
    public string Name => "mcirtask-blockiness";

    /// <inheritdoc />
    public Tensor Degrade(Tensor clean, Random rng)
    {
        ArgumentNullException.ThrowIfNull(clean);
        ArgumentNullException.ThrowIfNull(rng);
        double strength = Options.MinStrength + rng.NextDouble() * (Options.MaxStrength - Options.MinStrength);
        return Blockify(clean, Options.BlockSize, strength);
    }

    /// <summary><c>x + strength · (blockmean(x) − x)</c> for a [C, H, W] image; partial blocks at the right and bottom
    /// edges average what they hold.</summary>
    internal static Tensor Blockify(Tensor clean, int blockSize, double strength)
    {
        using var scope = NewDisposeScope();
        var x = clean.to(ScalarType.Float32).unsqueeze(0);
        long h = x.shape[2], w = x.shape[3];
        // ceil_mode with count_include_pad false: a partial edge block is the mean of its own pixels.
        var means = nn.functional.avg_pool2d(x, blockSize, blockSize, ceil_mode: true, count_include_pad: false);
        var up = means.repeat_interleave(blockSize, 2).repeat_interleave(blockSize, 3)[.., .., ..(int)h, ..(int)w];
        return (x + (up - x) * strength).squeeze(0).clamp(0f, 1f).MoveToOuterDisposeScope();
    }
}
