using Mcir.Abstractions.Components;
using Mcir.Abstractions.Losses;
using static TorchSharp.torch;

namespace McirPlugin.Template;

/// <summary>Options of the <c>mcirtask-gradient-l1</c> loss term (<c>loss.reconstruction_options</c>).</summary>
public sealed record GradientL1Options
{
    /// <summary>Multiplier of the gradient part. Default 0.5.</summary>
    public double GradientWeight { get; init; } = 0.5;

    /// <summary>Multiplier of the whole term. Default 1.</summary>
    public double Weight { get; init; } = 1.0;
}

/// <summary>
/// L1 plus an L1 on horizontal and vertical differences (edges), which penalises block edges and blur:
/// <c>weight · (mean|d| + gradient_weight · (mean|d[.., :, 1:] − d[.., :, :-1]| + mean|d[.., 1:, :] − d[.., :-1, :]|))</c>
/// with <c>d = output − target</c> on [N, C, H, W] images in [0, 1] (H, W ≥ 2). Parts: <c>l1</c> and <c>gradient</c>
/// (unweighted means).
/// </summary>
public sealed class GradientL1Loss : ILossTerm
{
    /// <summary>The registration of the <c>mcirtask-gradient-l1</c> loss term.</summary>
    public static LossTermDescriptor Descriptor { get; } = LossTermDescriptor.Of<GradientL1Loss, GradientL1Options>(
        "mcirtask-gradient-l1", "mean|o - y| + gradient_weight * mean|grad(o - y)| (L1 on values and on edges)",
        new GradientL1Options(), o => new GradientL1Loss(o));

    /// <summary>Checks the options.</summary>
    /// <exception cref="ArgumentException">A weight is negative or not finite.</exception>
    public GradientL1Loss(GradientL1Options options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!double.IsFinite(options.GradientWeight) || options.GradientWeight < 0)
            throw new ArgumentException($"mcirtask-gradient-l1: gradient_weight must be a finite number >= 0, got {options.GradientWeight}");
        if (!double.IsFinite(options.Weight) || options.Weight < 0)
            throw new ArgumentException($"mcirtask-gradient-l1: weight must be a finite number >= 0, got {options.Weight}");
        Options = options;
    }

    /// <summary>The options.</summary>
    public GradientL1Options Options { get; }

    /// <inheritdoc />
    public string Name => "mcirtask-gradient-l1";

    /// <inheritdoc />
    public bool NeedsNegatives => false;

    /// <inheritdoc />
    public LossResult Compute(LossContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (!context.Output.shape.SequenceEqual(context.Target.shape))
            throw new ArgumentException($"{Name}: output [{string.Join(", ", context.Output.shape)}] and target [{string.Join(", ", context.Target.shape)}] differ in shape.");
        Tensor value;
        double l1, gradient;
        using (var scope = NewDisposeScope())
        {
            var d = context.Output - context.Target.detach();
            var l1Part = d.abs().mean();
            var dx = d[.., .., .., 1..] - d[.., .., .., ..^1];
            var dy = d[.., .., 1.., ..] - d[.., .., ..^1, ..];
            var gradientPart = dx.abs().mean() + dy.abs().mean();
            value = ((l1Part + gradientPart * Options.GradientWeight) * Options.Weight).MoveToOuterDisposeScope();
            l1 = l1Part.item<float>();
            gradient = gradientPart.item<float>();
        }
        return new LossResult(value, new Dictionary<string, double> { ["l1"] = l1, ["gradient"] = gradient });
    }
}
