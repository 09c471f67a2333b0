namespace Mcir.Abstractions.Models;

/// <summary>
/// A network whose reference implementation keeps buffers in its state dict that this port recomputes instead (for
/// example SwinIR's shifted-window <c>attn_mask</c>, which BasicSR stores for <c>img_size</c> and the port computes for
/// every input size). Weights loaders accept such keys in a checkpoint and skip them by name, in strict mode too.
/// </summary>
public interface IRecomputedStateKeys
{
    /// <summary>True when <paramref name="key"/> (a full state-dict key) names a tensor this network recomputes.</summary>
    bool IsRecomputed(string key);
}
