using Mcir.Abstractions.Components;
using Mcir.Abstractions.Losses;
using static TorchSharp.torch;

namespace Mcir.Plugins.Denoising;

/// <summary>Options of the <c>charbonnier</c> loss term (<c>loss.reconstruction_options</c>).</summary>
public sealed record CharbonnierOptions
{
    /// <summary>ε of <c>sqrt(d² + ε²)</c>, on the [0, 1] image scale. Default 1e-3.</summary>
    public double Eps { get; init; } = 1e-3;

    /// <summary>Multiplier of the term. Default 1.</summary>
    public double Weight { get; init; } = 1.0;
}

/// <summary>
/// The Charbonnier penalty, a differentiable L1: <c>weight · mean(sqrt((o − y)² + ε²))</c> (LapSRN, MPRNet; ε = 1e-3).
/// Part <c>"charbonnier"</c> = the weighted value.
/// </summary>
public sealed class CharbonnierLoss : ILossTerm
{
    /// <summary>The registration of the <c>charbonnier</c> loss term.</summary>
    public static LossTermDescriptor Descriptor { get; } = LossTermDescriptor.Of<CharbonnierLoss, CharbonnierOptions>(
        "charbonnier", "mean sqrt((o - y)^2 + eps^2), eps 1e-3 (a smooth L1)", new CharbonnierOptions(), o => new CharbonnierLoss(o));

    /// <summary>Checks the options.</summary>
    /// <exception cref="ArgumentException">ε is not positive, or the weight is not finite.</exception>
    public CharbonnierLoss(CharbonnierOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!double.IsFinite(options.Eps) || options.Eps <= 0)
            throw new ArgumentException($"charbonnier: eps must be a positive number, got {options.Eps}");
        if (!double.IsFinite(options.Weight))
            throw new ArgumentException($"charbonnier: weight must be a finite number, got {options.Weight}");
        Options = options;
    }

    /// <summary>The options.</summary>
    public CharbonnierOptions Options { get; }

    /// <inheritdoc />
    public string Name => "charbonnier";

    /// <inheritdoc />
    public bool NeedsNegatives => false;

    /// <inheritdoc />
    public LossResult Compute(LossContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (!context.Output.shape.SequenceEqual(context.Target.shape))
            throw new ArgumentException(
                $"charbonnier: output [{string.Join(", ", context.Output.shape)}] and target [{string.Join(", ", context.Target.shape)}] differ in shape.");
        Tensor value;
        using (var scope = NewDisposeScope())
        {
            var diff = context.Output - context.Target.detach();
            value = ((diff * diff + Options.Eps * Options.Eps).sqrt().mean() * Options.Weight).MoveToOuterDisposeScope();
        }
        return new LossResult(value, new Dictionary<string, double> { [Name] = value.item<float>() });
    }
}
