using System.Runtime.CompilerServices;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mcir.Core.Compute;

/// <summary>
/// NHWC ("channels last") strides for NCHW image batches. On CPU, libtorch's oneDNN convolutions run much faster on
/// channels-last inputs (measured here: EDSR-light forward 3×, VGG16 to relu3_3 1.4×), and the layout then flows
/// through the network. TorchSharp has no <c>memory_format</c> argument, so the layout is made by permuting to NHWC,
/// copying, and permuting the view back: shape and indexing stay NCHW, only the strides change.
/// </summary>
/// <remarks>
/// Channels-last is also a matter of correctness with libtorch 2.10 (oneDNN 3.7.1) on CPU: a float32 convolution of a
/// contiguous NCHW input whose channel count is above 16 and not a multiple of the ISA's block (24, 30, 60, 120, …) goes
/// through a padded blocked layout whose padding is not always cleared, and returns wrong values or NaN depending on
/// what the allocator hands out (seen on AMD Zen 5 with AVX-512 and with AVX2 kernels alike: SwinIR's 60 channels off
/// by up to 20). The NHWC path has no padding and is exact to float32 rounding. <see cref="ForConvolutions"/> makes every
/// convolution of a model take its input channels-last, whatever the model's own code did before it.
/// </remarks>
public static class ChannelsLast
{
    private static readonly ConditionalWeakTable<nn.Module, object> Guarded = new();

    /// <summary>The same values with channels-last strides (a copy unless already so); other ranks are returned as they are.</summary>
    public static Tensor Of(Tensor nchw)
    {
        if (nchw.dim() != 4 || IsChannelsLast(nchw)) return nchw;
        // A copy into fresh NHWC storage: permute(…).contiguous() would keep the odd stride of a size-1 dimension.
        var nhwc = empty([nchw.shape[0], nchw.shape[2], nchw.shape[3], nchw.shape[1]], nchw.dtype, nchw.device);
        nhwc.copy_(nchw.permute(0, 2, 3, 1));
        return nhwc.permute(0, 3, 1, 2);
    }

    /// <summary>
    /// True when the tensor is densely laid out in NHWC memory order, every stride included: a size-1 batch with
    /// another batch stride (what a transpose-then-view gives) is not, since oneDNN then takes its strided path, which
    /// has the padding fault described above.
    /// </summary>
    public static bool IsChannelsLast(Tensor t)
    {
        if (t.dim() != 4) return false;
        var s = t.stride();
        long c = t.shape[1], h = t.shape[2], w = t.shape[3];
        return s[1] == 1 && s[3] == c && s[2] == c * w && s[0] == c * h * w;
    }

    /// <summary>
    /// Registers, once per module, a forward pre-hook on every <c>Conv2d</c> and <c>ConvTranspose2d</c> of
    /// <paramref name="model"/> (itself included) that gives the convolution its input in the restoration networks'
    /// format (<see cref="ConvolutionLayout.ForModel"/>: channels-last unless the probe or the user chose contiguous
    /// where that is correct). Values are unchanged; the engine calls it on every model it builds (target, negatives,
    /// target EMA, inference). Then registers the engine's routes for the model's 3×3 layers
    /// (<see cref="ConvolutionLayers.ForModel{T}(T)"/>: Winograd, which needs the channels-last input these hooks give,
    /// and the bias gradient by a sum) and for its <c>PixelShuffle</c> layers' backward (<see cref="PixelShuffleLayers"/>).
    /// </summary>
    /// <returns><paramref name="model"/>, for chaining.</returns>
    public static T ForConvolutions<T>(T model) where T : nn.Module
    {
        ArgumentNullException.ThrowIfNull(model);
        foreach (var module in model.modules().Prepend(model))
        {
            if (module is not (Conv2d or ConvTranspose2d) || Guarded.TryGetValue(module, out _)) continue;
            // Output channels: Conv2d's weight is [out, in/groups, kh, kw], ConvTranspose2d's [in, out/groups, kh, kw].
            long outChannels = module is Conv2d conv ? conv.weight!.shape[0] : ((ConvTranspose2d)module).weight!.shape[1] * ((ConvTranspose2d)module).groups;
            ((nn.Module<Tensor, Tensor>)module).register_forward_pre_hook((_, x) => ConvolutionLayout.ForModel(x, outChannels));
            Guarded.Add(module, Guarded);
        }
        return PixelShuffleLayers.ForModel(ConvolutionLayers.ForModel(model));
    }
}
