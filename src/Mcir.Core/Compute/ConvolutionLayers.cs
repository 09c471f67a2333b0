using System.Runtime.CompilerServices;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mcir.Core.Compute;

/// <summary>
/// The engine's routes for a restoration network's own 3×3 convolutions (target, negatives, target EMA, inference):
/// every <c>Conv2d</c> with a 3×3 kernel, stride 1, zero padding 1, dilation 1 and one group.
/// <list type="number">
/// <item><b>Winograd F(4×4, 3×3)</b> (<see cref="WinogradConvolution"/>) where <c>MCIR_WINOGRAD</c>'s rule takes its
/// shape (<see cref="WinogradConvolution.Choose(Tensor, long, Func{Tensor}, Func{Tensor})"/>). With a gradient (the target
/// in training) the forward and the input's gradient run by Winograd, the weight's gradient by libtorch's
/// backward-weights kernel and the bias's as a sum (<see cref="WinogradConvolution.Conv2dTrainable"/>); without
/// (negatives, EMA, inference) the forward only. On EDSR-light ×4 this is the upsampler's 64 → 256 convolution at 96×96
/// (forward 64 → 256, input gradient 256 → 64 channels: measured on two Zen 4 cores, 4 images, 58 → 47 ms and 57 → 38 ms).</item>
/// <item><b>Trainable layers left to libtorch</b> (a CPU layer with a channels-last input whose bias needs a gradient):
/// libtorch's own kernels for the forward and the input's and weight's gradients, the bias's gradient as a sum
/// (<see cref="ConvolutionBackward.Conv2d"/>: oneDNN's channels-last backward-weights kernel computes it in a slow loop of
/// its own). Measured on a plain EDSR-light ×4 step, one process alternating the route per step (medians of paired
/// ratios, Zen 5 guest): 0.966 of the time with it; under the AVX2 cap 0.998 channels-last, but 1.048 with a contiguous
/// network (oneDNN's blocked-format kernels, whose bias loop is not the slow one), so contiguous inputs stay with the module.</item>
/// <item>Everything else (another device, no gradient for the bias, …) runs through the module untouched.</item>
/// </list>
/// No architecture changes: the parameters, their names and the state_dict stay the layer's own.
/// </summary>
/// <remarks>
/// TorchSharp's <c>Conv2d</c> is sealed and its <c>forward</c> cannot be replaced, so the engine routes a call through
/// the module's hooks (<see cref="RoutedLayer"/>: the module is passed an empty batch, and the route's result replaces
/// its empty output). The Winograd route takes only what it applies to (CPU float32, channels-last,
/// channel counts that are multiples of <c>Vector&lt;float&gt;.Count</c>). With a gradient the weight is transformed at every call (it changes every step); without, the
/// transform is kept and computed again only when the weight's values changed (<see cref="WinogradWeightCache"/>: once
/// per EMA refresh for a negative). Memory: for each model run without gradient, 5× the
/// weights of its Winograd layers (the copy and the transform, 36 values per 9) — for EDSR-light the upsampler's two
/// layers, 1.5 MB; for EDSR's 256-channel body ~0.8 GB per negative.
/// </remarks>
public static class ConvolutionLayers
{
    private static readonly ConditionalWeakTable<Conv2d, RoutedLayer> Hooked = new();

    /// <summary>Whether <paramref name="conv"/> is a layer Winograd F(4×4, 3×3) computes: 3×3 kernel, stride 1, zero padding 1, dilation 1, one group.</summary>
    public static bool IsWinogradShape(Conv2d conv)
    {
        ArgumentNullException.ThrowIfNull(conv);
        var w = conv.weight;
        if (w is null || w.dim() != 4 || w.shape[2] != 3 || w.shape[3] != 3) return false;
        if (conv.groups != 1 || conv.padding_mode != PaddingModes.Zeros) return false;
        if (conv.stride is not { Length: 2 } s || s[0] != 1 || s[1] != 1) return false;
        if (conv.dilation is not { Length: 2 } d || d[0] != 1 || d[1] != 1) return false;
        if (conv.padding is { Length: 2 } p) return p[0] == 1 && p[1] == 1;
        return conv.padding_type == Padding.Same;
    }

    /// <summary>
    /// Registers, once per layer, the hooks described above on every <c>Conv2d</c> of <paramref name="model"/> (itself
    /// included) of <see cref="IsWinogradShape"/>. Register them after the layout hooks
    /// (<see cref="ChannelsLast.ForConvolutions"/> does), so the layer sees its channels-last input.
    /// </summary>
    /// <returns><paramref name="model"/>, for chaining.</returns>
    public static T ForModel<T>(T model) where T : nn.Module => ForModel(model, mode: null);

    // mode: overrides MCIR_WINOGRAD for these layers ("auto", "benchmark", "on", "off"; null: the variable's value). Tests.
    internal static T ForModel<T>(T model, string? mode) where T : nn.Module
    {
        RoutedLayer.Register<Conv2d>(model, Hooked, conv => IsWinogradShape(conv) ? new Layer(conv, mode) : null);
        return model;
    }

    /// <summary>
    /// Layers (of models given to <see cref="ForModel{T}(T)"/>) that ran by Winograd so far on the calling thread (a
    /// model's forward runs on the thread that calls it, so concurrent runs on other threads do not count). Tests and logs.
    /// </summary>
    public static long WinogradCalls => _calls;

    [ThreadStatic] private static long _calls;

    /// <summary>Trainable layers that ran by <see cref="ConvolutionBackward.Conv2d"/> (the second route) so far on the calling thread. Tests and logs.</summary>
    public static long DirectCalls => _directCalls;

    [ThreadStatic] private static long _directCalls;

    // One layer's routing state and its weight's cached transform.
    private sealed class Layer(Conv2d conv, string? mode) : RoutedLayer
    {
        private readonly WeakReference<Conv2d> _conv = new(conv);
        private bool _direct;
        private readonly WinogradWeightCache _transformed = new();

        protected override bool Takes(Tensor x)
        {
            if (!_conv.TryGetTarget(out var conv) || conv.weight is not { } weight) return false;
            var bias = conv.bias;
            bool grad = is_grad_enabled() && (x.requires_grad || weight.requires_grad || bias?.requires_grad == true);
            bool take = false;
            if (Operands(x, weight, bias) && !(grad && (weight.requires_grad || bias?.requires_grad == true) && !ConvolutionBackward.Available))
            {
                using (no_grad())
                using (var xd = x.detach())
                    take = WinogradConvolution.Choose(mode ?? WinogradConvolution.Mode, xd, weight.shape[0],
                        () => nn.functional.conv2d(xd, weight, bias, padding: [1, 1]),
                        () =>
                        {
                            using var t = WinogradConvolution.TransformWeight(weight);
                            return WinogradConvolution.Conv2d(xd, t, bias, relu: false);
                        });
            }
            // A trainable layer left to libtorch on the CPU, channels-last: its bias's gradient by a sum
            // (ConvolutionBackward.Conv2d). Not for a contiguous input, where it measured slower (see the class's summary).
            _direct = !take && grad && bias?.requires_grad == true && x.device_type == DeviceType.CPU && x.shape[0] > 0
                      && ChannelsLast.IsChannelsLast(x) && ConvolutionBackward.Available;
            return take || _direct;
        }

        protected override Tensor Run(Tensor input)
        {
            // The hook runs inside the layer's own call, so the layer is alive.
            if (!_conv.TryGetTarget(out var conv) || conv.weight is not { } weight)
                throw new InvalidOperationException("convolution route: the layer or its weight is gone during its own call");
            var bias = conv.bias;
            if (_direct)
            {
                _directCalls++;
                return ConvolutionBackward.Conv2d(input, weight, bias);
            }
            bool grad = is_grad_enabled() && (input.requires_grad || weight.requires_grad || bias?.requires_grad == true);
            Tensor result;
            if (grad)
            {
                // A trainable layer's weight changes every step: transformed for this call only, not cached (the cache
                // would hold 5× the layer's weights for nothing).
                using var t = WinogradConvolution.TransformWeight(weight);
                result = WinogradConvolution.Conv2dTrainable(input, weight, bias, t);
            }
            else result = WinogradConvolution.Conv2d(input, _transformed.Weight(weight), bias, relu: false);
            _calls++;
            return result;
        }

        // The operands Winograd computes: CPU float32, channels-last input, channel counts multiples of the vector width.
        private static bool Operands(Tensor x, Tensor weight, Tensor? bias)
        {
            using var noGrad = no_grad(); // Applies refuses operands that need a gradient; here only their kind matters
            return WinogradConvolution.Applies(x, weight, bias);
        }
    }
}
