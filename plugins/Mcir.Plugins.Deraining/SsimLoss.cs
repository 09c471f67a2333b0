using Mcir.Abstractions.Components;
using Mcir.Abstractions.Losses;
using static TorchSharp.torch;

namespace Mcir.Plugins.Deraining;

/// <summary>Options of the <c>ssim</c> loss term (<c>loss.reconstruction_options</c>).</summary>
public sealed record SsimLossOptions
{
    /// <summary>Side of the Gaussian window (odd, ≥ 1). Default 11 (IDT's <c>SSIM(window_size=11)</c>).</summary>
    public int WindowSize { get; init; } = 11;

    /// <summary>Multiplier of the term. Default 1.</summary>
    public double Weight { get; init; } = 1.0;
}

/// <summary>
/// IDT's training loss, SSIM as a loss: <c>weight · (1 − SSIM(output, target))</c>, with SSIM as IDT's
/// <c>loss/SSIM.py</c> computes it (jiexiaou/IDT @ d72510c): an 11×11 Gaussian window (σ 1.5, normalised) applied per
/// channel as a convolution with zero "same" padding (window // 2), C1 = 0.01², C2 = 0.03² (data range 1), the SSIM map
/// averaged over batch, channels and pixels. Part <c>"ssim"</c> = the weighted value.
/// </summary>
/// <remarks>
/// IDT's train_derain.py minimises <c>−SSIM</c>. This term adds the constant <c>weight</c> so that the value is ≥ 0 (0 for a
/// perfect output), as the engine's collapse guard expects of the reconstruction term; the gradients — hence the training —
/// are exactly those of <c>−weight · SSIM</c>.
/// </remarks>
public sealed class SsimLoss : ILossTerm
{
    /// <summary>The registration of the <c>ssim</c> loss term.</summary>
    public static LossTermDescriptor Descriptor { get; } = LossTermDescriptor.Of<SsimLoss, SsimLossOptions>(
        "ssim", "1 - SSIM (11x11 Gaussian sigma 1.5, zero padding, RGB mean): IDT's -SSIM loss offset to be >= 0, same gradients",
        new SsimLossOptions(), o => new SsimLoss(o));

    /// <summary>Checks the options.</summary>
    /// <exception cref="ArgumentException">The window size is not a positive odd number, or the weight is not finite.</exception>
    public SsimLoss(SsimLossOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.WindowSize < 1 || options.WindowSize % 2 == 0)
            throw new ArgumentException($"ssim: window_size must be a positive odd number, got {options.WindowSize}");
        if (!double.IsFinite(options.Weight))
            throw new ArgumentException($"ssim: weight must be a finite number, got {options.Weight}");
        Options = options;
    }

    /// <summary>The options.</summary>
    public SsimLossOptions Options { get; }

    /// <inheritdoc />
    public string Name => "ssim";

    /// <inheritdoc />
    public bool NeedsNegatives => false;

    /// <summary>
    /// IDT's <c>gaussian(window_size, 1.5)</c>: <c>exp(−(x − n // 2)² / (2σ²))</c> for x = 0 … n − 1, normalised to sum 1
    /// (computed in float64, stored in float32 as <c>torch.Tensor</c> does).
    /// </summary>
    public static float[] Gaussian(int n, double sigma = 1.5)
    {
        var g = new float[n];
        for (int x = 0; x < n; x++) g[x] = (float)Math.Exp(-Math.Pow(x - n / 2, 2) / (2 * sigma * sigma));
        float sum = 0;
        foreach (var v in g) sum += v;
        for (int x = 0; x < n; x++) g[x] /= sum;
        return g;
    }

    /// <summary>
    /// SSIM of two [B, C, H, W] images in [0, 1] as IDT's <c>_ssim(..., size_average=True)</c>: a scalar tensor (carries the
    /// gradient of <paramref name="x"/> and <paramref name="y"/>).
    /// </summary>
    public static Tensor Ssim(Tensor x, Tensor y, int windowSize = 11)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        using var scope = NewDisposeScope();
        long c = x.shape[1];
        var g = tensor(Gaussian(windowSize), [windowSize, 1L], ScalarType.Float32, x.device);
        // _1D_window.mm(_1D_window.t()) in float32, expanded to [C, 1, n, n] for a depthwise convolution.
        var window = g.mm(g.t()).to(x.dtype).expand(c, 1, windowSize, windowSize).contiguous();
        long pad = windowSize / 2;
        Tensor Filter(Tensor t) => nn.functional.conv2d(t, window, padding: [pad, pad], groups: c);
        var mu1 = Filter(x);
        var mu2 = Filter(y);
        var mu1Sq = mu1.pow(2);
        var mu2Sq = mu2.pow(2);
        var mu1Mu2 = mu1 * mu2;
        var sigma1Sq = Filter(x * x) - mu1Sq;
        var sigma2Sq = Filter(y * y) - mu2Sq;
        var sigma12 = Filter(x * y) - mu1Mu2;
        const double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
        var map = (2 * mu1Mu2 + c1) * (2 * sigma12 + c2) / ((mu1Sq + mu2Sq + c1) * (sigma1Sq + sigma2Sq + c2));
        return map.mean().MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public LossResult Compute(LossContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (!context.Output.shape.SequenceEqual(context.Target.shape))
            throw new ArgumentException(
                $"ssim: output [{string.Join(", ", context.Output.shape)}] and target [{string.Join(", ", context.Target.shape)}] differ in shape.");
        if (context.Output.dim() != 4)
            throw new ArgumentException($"ssim: expected [B, C, H, W] images, got [{string.Join(", ", context.Output.shape)}].");
        Tensor value;
        using (var scope = NewDisposeScope())
        {
            var ssim = Ssim(context.Output, context.Target.detach(), Options.WindowSize);
            value = ((1 - ssim) * Options.Weight).MoveToOuterDisposeScope();
        }
        return new LossResult(value, new Dictionary<string, double> { [Name] = value.item<float>() });
    }
}
