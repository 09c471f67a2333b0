using Mcir.Abstractions.Components;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Data.Degradations;

/// <summary>Options of the <c>gaussian-noise</c> degradation (BasicSR's <c>add_gaussian_noise(img, sigma, clip, rounds)</c>).</summary>
public sealed record GaussianNoiseOptions
{
    /// <summary>Standard deviation on the 0–255 scale (the noise added to [0, 1] images has σ / 255). Default 25.</summary>
    public double Sigma { get; init; } = 25;

    /// <summary>Clip the noisy image to [0, 1] (BasicSR's default). Default true.</summary>
    public bool Clip { get; init; } = true;

    /// <summary>Round the noisy image to 8-bit levels (BasicSR's <c>rounds</c>, off by default). Default false.</summary>
    public bool Rounds { get; init; }
}

/// <summary>
/// <c>gaussian-noise</c>: additive white Gaussian noise as BasicSR's <c>basicsr/data/degradations.py</c>
/// <c>add_gaussian_noise</c> adds it: <c>out = img + N(0, 1)·σ/255</c>, then (defaults) clipped to [0, 1] and not rounded.
/// The noise is drawn from a <c>torch.Generator</c> seeded from the caller's <see cref="Random"/>. Same size as the input.
/// </summary>
public sealed class GaussianNoiseDegradation : IDegradation
{
    /// <summary>The registration of the engine's built-in <c>gaussian-noise</c> degradation.</summary>
    public static DegradationDescriptor Descriptor { get; } = DegradationDescriptor.Of<GaussianNoiseDegradation, GaussianNoiseOptions>(
        "gaussian-noise", "additive white Gaussian noise, sigma on the 0-255 scale, clipped to [0, 1] (BasicSR add_gaussian_noise)",
        new GaussianNoiseOptions(), o => new GaussianNoiseDegradation(o));

    /// <summary>Checks the options.</summary>
    /// <exception cref="ArgumentException">σ is negative or not finite.</exception>
    public GaussianNoiseDegradation(GaussianNoiseOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!double.IsFinite(options.Sigma) || options.Sigma < 0)
            throw new ArgumentException($"gaussian-noise: sigma must be a finite number >= 0, got {options.Sigma}");
        Options = options;
    }

    /// <summary>The options.</summary>
    public GaussianNoiseOptions Options { get; }

    /// <inheritdoc />
    public string Name => "gaussian-noise";

    /// <inheritdoc />
    public Tensor Degrade(Tensor clean, Random rng)
    {
        ArgumentNullException.ThrowIfNull(clean);
        ArgumentNullException.ThrowIfNull(rng);
        using var scope = NewDisposeScope();
        using var generator = new Generator((ulong)rng.NextInt64());
        var noise = randn(clean.shape, ScalarType.Float32, generator: generator);
        var noisy = clean.to(ScalarType.Float32) + noise * (float)(Options.Sigma / 255.0);
        if (Options.Rounds) noisy = (noisy * 255f).round() / 255f;
        if (Options.Clip) noisy = noisy.clamp(0f, 1f);
        return noisy.MoveToOuterDisposeScope();
    }
}
