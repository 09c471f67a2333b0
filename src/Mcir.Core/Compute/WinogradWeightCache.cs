using static TorchSharp.torch;

namespace Mcir.Core.Compute;

/// <summary>
/// One layer's Winograd weight transforms (<see cref="WinogradConvolution.TransformWeight"/>, and on request
/// <see cref="WinogradConvolution.TransformWeightForInputGradient"/>), computed once and again only when the weight's
/// values changed (a load into the same storage, an EMA refresh): a copy of the values they were computed from is kept
/// and compared exactly at each use. Memory: 5× the weight (the copy, and 36 values per 9 for each transform held).
/// Used for layers that run without a gradient for their weight (the frozen embedding, negatives, EMA, inference).
/// </summary>
internal sealed class WinogradWeightCache : IDisposable
{
    private Tensor? _from, _weight, _inputGradientWeight;

    /// <summary>The forward transform of <paramref name="weight"/>'s current values ([36·O, C, 1, 1]); owned by the cache.</summary>
    public Tensor Weight(Tensor weight)
    {
        Refresh(weight);
        return _weight!;
    }

    /// <summary>Both transforms of <paramref name="weight"/>'s current values: the forward one and the input gradient's ([36·C, O, 1, 1]); owned by the cache.</summary>
    public (Tensor Weight, Tensor InputGradientWeight) WithInputGradient(Tensor weight)
    {
        Refresh(weight);
        return (_weight!, _inputGradientWeight ??= WinogradConvolution.TransformWeightForInputGradient(weight).DetachFromDisposeScope());
    }

    private void Refresh(Tensor weight)
    {
        using var noGrad = no_grad();
        if (_from is not null && _from.shape.SequenceEqual(weight.shape) && _from.allclose(weight, rtol: 0, atol: 0)) return; // exactly equal
        Dispose();
        _from = weight.detach().clone().DetachFromDisposeScope();
        _weight = WinogradConvolution.TransformWeight(weight).DetachFromDisposeScope();
    }

    public void Dispose()
    {
        _from?.Dispose();
        _weight?.Dispose();
        _inputGradientWeight?.Dispose();
        _from = _weight = _inputGradientWeight = null;
    }
}
