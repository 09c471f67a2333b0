using Mcir.Abstractions.Losses;
using static TorchSharp.torch;

namespace Mcir.Core.Losses;

/// <summary>Reconstruction term <c>weight · mean|o − y|</c> (BasicSR L1Loss, reduction mean). Part "l1" = the weighted value.</summary>
public sealed class L1Loss(double weight = 1.0) : ILossTerm
{
    /// <summary>Multiplier of the mean absolute error.</summary>
    public double Weight { get; } = weight;

    /// <inheritdoc />
    public string Name => "l1";

    /// <inheritdoc />
    public bool NeedsNegatives => false;

    /// <inheritdoc />
    public LossResult Compute(LossContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (!context.Output.shape.SequenceEqual(context.Target.shape))
            throw new ArgumentException($"l1: output {Fmt(context.Output.shape)} and target {Fmt(context.Target.shape)} differ in shape.");
        using var diff = context.Output - context.Target.detach();
        using var abs = diff.abs();
        using var mean = abs.mean();
        var value = Weight == 1.0 ? mean.alias() : mean * Weight;
        return new LossResult(value, new Dictionary<string, double> { ["l1"] = value.item<float>() });
    }

    private static string Fmt(long[] s) => "[" + string.Join(", ", s) + "]";
}
