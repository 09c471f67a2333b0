using static TorchSharp.torch;

namespace Mcir.Abstractions.Losses;

/// <summary>What a loss term sees of one training step.</summary>
/// <param name="Output">The target network's output f(x) (requires grad during training).</param>
/// <param name="Target">Ground truth y.</param>
/// <param name="Input">The degraded input x.</param>
/// <param name="Negatives">Negative outputs [K, B, C, H, W] when a negative source is configured, else null.</param>
public sealed record LossContext(Tensor Output, Tensor Target, Tensor Input, Tensor? Negatives);

/// <summary>A loss value and its named parts (plain numbers, for logs and the collapse guard).</summary>
/// <param name="Value">The scalar to add to the total loss (carries the gradient).</param>
/// <param name="Parts">Named parts, e.g. "spn/neg0" → distance to negative 0, "spn" → weighted term.</param>
public sealed record LossResult(Tensor Value, IReadOnlyDictionary<string, double> Parts);

/// <summary>One term of the training objective (reconstruction, SPN, CR, ...). Terms are summed.</summary>
public interface ILossTerm
{
    /// <summary>Registered name, e.g. "l1", "spn".</summary>
    string Name { get; }

    /// <summary>True when the term needs <see cref="LossContext.Negatives"/>.</summary>
    bool NeedsNegatives { get; }

    /// <summary>Computes the term for one step; parts are reported as plain numbers.</summary>
    LossResult Compute(LossContext context);
}
