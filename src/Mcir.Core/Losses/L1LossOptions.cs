namespace Mcir.Core.Losses;

/// <summary>Options of the <c>l1</c> loss term (<c>loss.reconstruction_options</c>).</summary>
public sealed record L1LossOptions
{
    /// <summary>Multiplier of the mean absolute error (BasicSR's <c>loss_weight</c>). Default 1.</summary>
    public double Weight { get; init; } = 1.0;
}
