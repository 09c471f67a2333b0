using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mcir.Plugins.SuperResolution;

/// <summary>
/// BasicSR's <c>Upsample</c> (basicsr/archs/arch_util.py), shared by EDSR and SwinIR's classical upsampler:
/// for a power-of-two scale, log2(scale) × (3×3 conv <c>num_feat → 4·num_feat</c>, <c>PixelShuffle(2)</c>); for scale 3,
/// one 3×3 conv <c>num_feat → 9·num_feat</c> and <c>PixelShuffle(3)</c>. Input [N, num_feat, H, W] → output
/// [N, num_feat, scale·H, scale·W]. State-dict keys are the Sequential's indices (<c>0.weight</c>, <c>2.weight</c>, …),
/// as in BasicSR.
/// </summary>
internal static class Upsample
{
    /// <summary>True for the scales BasicSR's <c>Upsample</c> builds: 3 and powers of two ≥ 2.</summary>
    public static bool Supports(int scale) => scale == 3 || (scale >= 2 && (scale & (scale - 1)) == 0);

    /// <summary>Builds the upsampler.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The scale is neither 3 nor a power of two ≥ 2 (BasicSR raises too).</exception>
    public static Sequential Build(int scale, int numFeat)
    {
        if (!Supports(scale))
            throw new ArgumentOutOfRangeException(nameof(scale), scale, "scale must be 3 or a power of two >= 2 (BasicSR's Upsample)");
        var layers = new List<nn.Module<Tensor, Tensor>>();
        if (scale == 3)
        {
            layers.Add(nn.Conv2d(numFeat, 9 * numFeat, 3, stride: 1, padding: 1));
            layers.Add(nn.PixelShuffle(3));
        }
        else
        {
            for (int s = scale; s > 1; s /= 2)
            {
                layers.Add(nn.Conv2d(numFeat, 4 * numFeat, 3, stride: 1, padding: 1));
                layers.Add(nn.PixelShuffle(2));
            }
        }
        return nn.Sequential(layers.ToArray());
    }
}
