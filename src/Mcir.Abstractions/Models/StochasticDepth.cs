using static TorchSharp.torch;

namespace Mcir.Abstractions.Models;

/// <summary>Stochastic depth, as timm's <c>drop_path</c> / <c>DropPath</c> (used by SwinIR, IDT and other transformer ports).</summary>
public static class StochasticDepth
{
    /// <summary>
    /// timm's <c>drop_path(x, drop_prob, training)</c>: in training with <paramref name="dropProb"/> &gt; 0, each sample of
    /// the batch is zeroed with probability <paramref name="dropProb"/> and the others scaled by 1 / (1 − p)
    /// (<c>x / keep · floor(keep + U[0, 1))</c>); otherwise <paramref name="x"/> itself.
    /// </summary>
    /// <param name="x">[N, …]: any rank, the first dimension is the batch.</param>
    /// <param name="dropProb">The drop probability p in [0, 1).</param>
    /// <param name="training">The module's training flag.</param>
    public static Tensor DropPath(Tensor x, double dropProb, bool training)
    {
        if (dropProb == 0 || !training) return x;
        double keep = 1 - dropProb;
        var shape = new long[x.dim()];
        Array.Fill(shape, 1L);
        shape[0] = x.shape[0];
        using var random = (rand(shape, dtype: x.dtype, device: x.device) + keep).floor_();
        return x.div(keep) * random;
    }
}
