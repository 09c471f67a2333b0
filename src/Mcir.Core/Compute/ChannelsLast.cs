using static TorchSharp.torch;

namespace Mcir.Core.Compute;

/// <summary>
/// NHWC ("channels last") strides for NCHW image batches. On CPU, libtorch's oneDNN convolutions run much faster on
/// channels-last inputs (measured here: EDSR-light forward 3×, VGG16 to relu3_3 1.4×), and the layout then flows
/// through the network. TorchSharp has no <c>memory_format</c> argument, so the layout is made by permuting to NHWC,
/// copying, and permuting the view back: shape and indexing stay NCHW, only the strides change.
/// </summary>
public static class ChannelsLast
{
    /// <summary>The same values with channels-last strides (a copy unless already so); other ranks are returned as they are.</summary>
    public static Tensor Of(Tensor nchw)
    {
        if (nchw.dim() != 4 || IsChannelsLast(nchw)) return nchw;
        return nchw.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
    }

    /// <summary>True when the innermost stride is the channel's (NHWC memory order).</summary>
    public static bool IsChannelsLast(Tensor t)
    {
        if (t.dim() != 4) return false;
        var s = t.stride();
        return s[1] == 1 && s[3] == t.shape[1] && s[2] == t.shape[1] * t.shape[3];
    }
}
