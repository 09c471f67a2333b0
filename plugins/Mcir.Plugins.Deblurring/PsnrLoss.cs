using Mcir.Abstractions.Components;
using Mcir.Abstractions.Losses;
using static TorchSharp.torch;

namespace Mcir.Plugins.Deblurring;

/// <summary>Options of the <c>psnr-loss</c> loss term (<c>loss.reconstruction_options</c>), NAFNet's <c>PSNRLoss</c> arguments.</summary>
public sealed record PsnrLossOptions
{
    /// <summary>Multiplier of the term (<c>loss_weight</c>). Default 1.</summary>
    public double LossWeight { get; init; } = 1.0;

    /// <summary>
    /// Compare the luma instead of the RGB channels (<c>toY</c>; configuration key <c>to_y</c>): Y = (65.481 R + 128.553 G +
    /// 24.966 B + 16) / 255 on [0, 1] RGB data. Needs 3-channel RGB images. Default false (NAFNet's GoPro setting).
    /// </summary>
    public bool ToY { get; init; }
}

/// <summary>
/// NAFNet's PSNR loss (<c>basicsr/models/losses/losses.py</c>, <c>PSNRLoss</c>, reduction <c>mean</c>):
/// <c>loss_weight · 10/ln(10) · mean over the batch of ln(mse_i + 1e-8)</c>, where <c>mse_i</c> is the mean squared error of
/// image i over its channels and pixels. It equals minus the batch-mean PSNR (peak 1) up to the 1e-8 guard, so minimising
/// it maximises PSNR. Part <c>"psnr-loss"</c> = the weighted value (negative for any mse below 1).
/// </summary>
public sealed class PsnrLoss : ILossTerm
{
    private const double MseGuard = 1e-8;
    private static readonly double Scale = 10.0 / Math.Log(10.0);

    /// <summary>The registration of the <c>psnr-loss</c> loss term.</summary>
    public static LossTermDescriptor Descriptor { get; } = LossTermDescriptor.Of<PsnrLoss, PsnrLossOptions>(
        "psnr-loss", "NAFNet's PSNRLoss: 10/ln(10) * mean over the batch of ln(per-image mse + 1e-8) (minus the PSNR)",
        new PsnrLossOptions(), o => new PsnrLoss(o));

    /// <summary>Checks the options.</summary>
    /// <exception cref="ArgumentException">The weight is not finite.</exception>
    public PsnrLoss(PsnrLossOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!double.IsFinite(options.LossWeight))
            throw new ArgumentException($"psnr-loss: loss_weight must be a finite number, got {options.LossWeight}");
        Options = options;
    }

    /// <summary>The options.</summary>
    public PsnrLossOptions Options { get; }

    /// <inheritdoc />
    public string Name => "psnr-loss";

    /// <inheritdoc />
    public bool NeedsNegatives => false;

    /// <inheritdoc />
    public LossResult Compute(LossContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var output = context.Output;
        var target = context.Target;
        if (!output.shape.SequenceEqual(target.shape))
            throw new ArgumentException(
                $"psnr-loss: output [{string.Join(", ", output.shape)}] and target [{string.Join(", ", target.shape)}] differ in shape.");
        if (output.dim() != 4)
            throw new ArgumentException($"psnr-loss: expects [N, C, H, W] images, got [{string.Join(", ", output.shape)}].");
        if (Options.ToY && output.shape[1] != 3)
            throw new ArgumentException($"psnr-loss: to_y needs 3-channel RGB images, got {output.shape[1]} channels.");

        Tensor value;
        using (var scope = NewDisposeScope())
        {
            var pred = output;
            var gt = target.detach();
            if (Options.ToY)
            {
                var coef = tensor(new[] { 65.481f, 128.553f, 24.966f }, dtype: pred.dtype, device: pred.device).view(1, 3, 1, 1);
                pred = ((pred * coef).sum(1, keepdim: true) + 16.0) / 255.0;
                gt = ((gt * coef).sum(1, keepdim: true) + 16.0) / 255.0;
            }
            var diff = pred - gt;
            var mse = (diff * diff).mean(new long[] { 1, 2, 3 });
            value = ((mse + MseGuard).log().mean() * (Options.LossWeight * Scale)).MoveToOuterDisposeScope();
        }
        return new LossResult(value, new Dictionary<string, double> { [Name] = value.item<float>() });
    }
}
