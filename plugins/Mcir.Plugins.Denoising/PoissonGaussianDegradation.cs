using Mcir.Abstractions.Components;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Plugins.Denoising;

/// <summary>Options of the <c>poisson-gaussian</c> degradation.</summary>
public sealed record PoissonGaussianOptions
{
    /// <summary>Photon count of a white pixel: the shot noise is <c>Poisson(peak · x) / peak</c> (smaller = noisier). Default 30.</summary>
    public double Peak { get; init; } = 30;

    /// <summary>Standard deviation of the additive read noise on the 0–255 scale. Default 5.</summary>
    public double Sigma { get; init; } = 5;

    /// <summary>Clip the result to [0, 1]. Default true.</summary>
    public bool Clip { get; init; } = true;
}

/// <summary>
/// <c>poisson-gaussian</c>: a simple camera noise model, signal-dependent shot noise plus Gaussian read noise:
/// <c>y = Poisson(peak · x) / peak + N(0, 1) · σ / 255</c>, clipped to [0, 1]. Same size as the input; all draws come from a
/// <c>torch.Generator</c> seeded from the caller's <see cref="Random"/>.
/// </summary>
public sealed class PoissonGaussianDegradation : IDegradation
{
    /// <summary>The registration of the <c>poisson-gaussian</c> degradation.</summary>
    public static DegradationDescriptor Descriptor { get; } = DegradationDescriptor.Of<PoissonGaussianDegradation, PoissonGaussianOptions>(
        "poisson-gaussian", "shot noise Poisson(peak x)/peak plus Gaussian read noise (sigma on the 0-255 scale), clipped to [0, 1]",
        new PoissonGaussianOptions(), o => new PoissonGaussianDegradation(o));

    /// <summary>Checks the options.</summary>
    /// <exception cref="ArgumentException">The peak is not positive or σ is negative.</exception>
    public PoissonGaussianDegradation(PoissonGaussianOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!double.IsFinite(options.Peak) || options.Peak <= 0)
            throw new ArgumentException($"poisson-gaussian: peak must be a positive number, got {options.Peak}");
        if (!double.IsFinite(options.Sigma) || options.Sigma < 0)
            throw new ArgumentException($"poisson-gaussian: sigma must be a finite number >= 0, got {options.Sigma}");
        Options = options;
    }

    /// <summary>The options.</summary>
    public PoissonGaussianOptions Options { get; }

    /// <inheritdoc />
    public string Name => "poisson-gaussian";

    /// <inheritdoc />
    public Tensor Degrade(Tensor clean, Random rng)
    {
        ArgumentNullException.ThrowIfNull(clean);
        ArgumentNullException.ThrowIfNull(rng);
        using var scope = NewDisposeScope();
        using var generator = new Generator((ulong)rng.NextInt64());
        var x = clean.to(ScalarType.Float32).clamp(0f, 1f);
        var shot = poisson(x * (float)Options.Peak, generator) / (float)Options.Peak;
        var noisy = shot + randn(clean.shape, ScalarType.Float32, generator: generator) * (float)(Options.Sigma / 255.0);
        if (Options.Clip) noisy = noisy.clamp(0f, 1f);
        return noisy.MoveToOuterDisposeScope();
    }
}
