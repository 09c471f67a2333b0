using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Compute;

/// <summary>
/// The weight and bias gradients of a 2-D convolution from its input and output gradient, by libtorch's own
/// <c>aten::convolution_backward</c> with <c>output_mask = [false, true, bias]</c> — on the CPU oneDNN's backward-weights
/// kernel, the one autograd runs for <c>conv2d</c> (the same values). Used by the engine's own convolution backward
/// (<see cref="WinogradConvolution.Conv2dTrainable"/>), whose input gradient is computed another way. TorchSharp has no
/// binding for the op; it is reached through the C entry point libtorch exports for AOTInductor,
/// <c>aoti_torch_cpu_convolution_backward</c> (torch/csrc/inductor/aoti_torch/generated/c_shim_cpu.h), as
/// <see cref="FusedConvolution"/> reaches <c>_convolution_pointwise</c>.
/// </summary>
public static class ConvolutionBackward
{
    /// <summary>libtorch's exported C entry point of <c>aten::convolution_backward</c>.</summary>
    public const string EntryPoint = "aoti_torch_cpu_convolution_backward";

    private static readonly Lazy<nint> Function = new(() => FusedConvolution.ResolveExport(EntryPoint));

    /// <summary>True when this process's libtorch exports <see cref="EntryPoint"/> (Linux's libtorch_cpu.so).</summary>
    public static bool Available => Function.Value != 0;

    /// <summary>
    /// ∂L/∂weight and ∂L/∂bias of <c>conv2d(input, weight, bias, stride, padding, dilation, groups)</c>.
    /// </summary>
    /// <param name="gradOutput">∂L/∂output, [N, O, H', W'].</param>
    /// <param name="input">The convolution's input [N, C, H, W] (the same dtype and device).</param>
    /// <param name="weight">[O, C, kH, kW].</param>
    /// <param name="withBias">Also compute the bias gradient (the convolution has a bias).</param>
    /// <param name="stride">Stride, both axes (pixels).</param>
    /// <param name="padding">Zero padding, both axes (pixels).</param>
    /// <param name="dilation">Dilation, both axes.</param>
    /// <param name="groups">Groups (the weight is then [O, C / groups, kH, kW]).</param>
    /// <returns>The weight gradient [O, C, kH, kW] and the bias gradient [O] (null without bias), without autograd history.</returns>
    /// <exception cref="InvalidOperationException">The entry point is missing, or libtorch reported a failure for these operands.</exception>
    public static (Tensor Weight, Tensor? Bias) WeightAndBias(Tensor gradOutput, Tensor input, Tensor weight, bool withBias,
        long stride = 1, long padding = 1, long dilation = 1, long groups = 1)
    {
        var (_, w, b) = Gradients(gradOutput, input, weight, forInput: false, forWeight: true, forBias: withBias, stride, padding, dilation, groups);
        return (w!, b);
    }

    /// <summary>
    /// The gradients <c>aten::convolution_backward</c> computes for <c>conv2d(input, weight, bias, stride, padding,
    /// dilation, groups)</c>, those asked for only (its <c>output_mask</c>).
    /// </summary>
    /// <param name="gradOutput">∂L/∂output, [N, O, H', W'].</param>
    /// <param name="input">The convolution's input [N, C, H, W] (the same dtype and device).</param>
    /// <param name="weight">[O, C / groups, kH, kW].</param>
    /// <param name="forInput">Compute ∂L/∂input [N, C, H, W].</param>
    /// <param name="forWeight">Compute ∂L/∂weight [O, C / groups, kH, kW].</param>
    /// <param name="forBias">Compute ∂L/∂bias [O] (the convolution has a bias).</param>
    /// <param name="stride">Stride, both axes (pixels).</param>
    /// <param name="padding">Zero padding, both axes (pixels).</param>
    /// <param name="dilation">Dilation, both axes.</param>
    /// <param name="groups">Groups.</param>
    /// <returns>The three gradients, null where not asked for, without autograd history.</returns>
    /// <exception cref="InvalidOperationException">The entry point is missing, or libtorch reported a failure for these operands.</exception>
    public static unsafe (Tensor? Input, Tensor? Weight, Tensor? Bias) Gradients(Tensor gradOutput, Tensor input, Tensor weight,
        bool forInput, bool forWeight, bool forBias, long stride = 1, long padding = 1, long dilation = 1, long groups = 1)
    {
        ArgumentNullException.ThrowIfNull(gradOutput);
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(weight);
        if (!Available) throw new InvalidOperationException($"convolution backward: {EntryPoint} is not exported by this process's libtorch");
        long* str = stackalloc long[] { stride, stride };
        long* pad = stackalloc long[] { padding, padding };
        long* dil = stackalloc long[] { dilation, dilation };
        long* outPad = stackalloc long[] { 0, 0 };
        long* biasSizes = stackalloc long[] { weight.shape[0] };
        long** biasSizesRef = stackalloc long*[] { biasSizes };
        int* mask = stackalloc int[] { forInput ? 1 : 0, forWeight ? 1 : 0, forBias ? 1 : 0 };
        nint r0 = 0, r1 = 0, r2 = 0;
        var call = (delegate* unmanaged<nint, nint, nint, long**, long, long*, long, long*, long, long*, long, int, long*, long, long, int*, long, nint*, nint*, nint*, int>)Function.Value;
        int code = call(gradOutput.Handle, input.Handle, weight.Handle, forBias ? biasSizesRef : null, forBias ? 1 : 0,
            str, 2, pad, 2, dil, 2, 0, outPad, 2, groups, mask, 3, &r0, &r1, &r2);
        GC.KeepAlive(gradOutput); GC.KeepAlive(input); GC.KeepAlive(weight); // their handles were used by the native call
        // Every result is a handle (masked-out ones of undefined tensors): each released unless asked for.
        Tensor? Take(nint handle, bool wanted)
        {
            if (handle == 0) return null;
            var t = Tensor.UnsafeCreateTensor(handle);
            if (wanted) return t;
            t.Dispose();
            return null;
        }
        var gi = Take(r0, forInput && code == 0);
        var gw = Take(r1, forWeight && code == 0);
        var gb = Take(r2, forBias && code == 0);
        if (code != 0 || (forInput && gi is null) || (forWeight && gw is null) || (forBias && gb is null))
        {
            gi?.Dispose(); gw?.Dispose(); gb?.Dispose();
            throw new InvalidOperationException($"convolution backward: {EntryPoint} failed (code {code}) for input [{string.Join(", ", input.shape)}], weight [{string.Join(", ", weight.shape)}], output gradient [{string.Join(", ", gradOutput.shape)}]");
        }
        return (gi, gw, gb);
    }

    /// <summary>
    /// <c>conv2d(input, weight, bias, padding: 1)</c> (3×3, stride 1) with autograd for every operand that requires a
    /// gradient: the forward and the input's and weight's gradients by libtorch's own kernels (the values autograd gives
    /// for <c>conv2d</c>, bit for bit), the bias's gradient as the sum of the output gradient over batch and pixels
    /// (ATen's reduction: the same value up to float32 summation order). oneDNN's backward-weights kernel, asked for
    /// the bias's gradient too, computes it in a slower loop of its own (measured on a Zen 5 guest, 64 → 64 channels,
    /// 4 images at 48×48: 2.49 ms with it, 2.30 ms weight-only plus the sum).
    /// </summary>
    /// <param name="input">[N, C, H, W].</param>
    /// <param name="weight">[O, C, 3, 3].</param>
    /// <param name="bias">[O] or null.</param>
    /// <returns>[N, O, H, W], in the layout libtorch's <c>conv2d</c> gives.</returns>
    /// <exception cref="InvalidOperationException">The entry point is missing (<see cref="Available"/>).</exception>
    public static Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(weight);
        if (!Available) throw new InvalidOperationException($"convolution backward: {EntryPoint} is not exported by this process's libtorch");
        using var scope = NewDisposeScope();
        return DirectConvFunction.apply(input, weight, bias!).MoveToOuterDisposeScope();
    }

    // The autograd node of Conv2d: saves the input and the weight.
    private sealed class DirectConvFunction : torch.autograd.SingleTensorFunction<DirectConvFunction>
    {
        public override string Name => "ConvolutionBackward0";

        public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
        {
            var input = (Tensor)vars[0];
            var weight = (Tensor)vars[1];
            var bias = vars[2] is Tensor b && !b.IsInvalid ? b : null;
            Tensor y;
            using (no_grad()) y = nn.functional.conv2d(input, weight, bias, padding: [1, 1]);
            ctx.save_for_backward([input.detach(), weight.detach()]);
            ctx.save_data("needs", (input.requires_grad, weight.requires_grad, bias?.requires_grad == true));
            return y;
        }

        public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor grad_output)
        {
            var saved = ctx.get_saved_variables();
            Tensor input = saved[0], weight = saved[1];
            var (inputNeeds, weightNeeds, biasNeeds) = ((bool, bool, bool))ctx.get_data("needs");
            Tensor? gi = null, gw = null, gb = null;
            if (inputNeeds || weightNeeds)
                (gi, gw, _) = Gradients(grad_output, input, weight, inputNeeds, weightNeeds, forBias: false);
            if (biasNeeds) gb = grad_output.sum([0, 2, 3]);
            input.Dispose();
            weight.Dispose();
            return [gi!, gw!, gb!];
        }
    }
}
