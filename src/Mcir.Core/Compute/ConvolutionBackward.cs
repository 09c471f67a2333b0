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
    /// ∂L/∂weight and ∂L/∂bias of <c>conv2d(input, weight, bias, stride, padding, dilation, groups: 1)</c>.
    /// </summary>
    /// <param name="gradOutput">∂L/∂output, [N, O, H', W'].</param>
    /// <param name="input">The convolution's input [N, C, H, W] (the same dtype and device).</param>
    /// <param name="weight">[O, C, kH, kW].</param>
    /// <param name="withBias">Also compute the bias gradient (the convolution has a bias).</param>
    /// <param name="stride">Stride, both axes (pixels).</param>
    /// <param name="padding">Zero padding, both axes (pixels).</param>
    /// <param name="dilation">Dilation, both axes.</param>
    /// <returns>The weight gradient [O, C, kH, kW] and the bias gradient [O] (null without bias), without autograd history.</returns>
    /// <exception cref="InvalidOperationException">The entry point is missing, or libtorch reported a failure for these operands.</exception>
    public static unsafe (Tensor Weight, Tensor? Bias) WeightAndBias(Tensor gradOutput, Tensor input, Tensor weight, bool withBias,
        long stride = 1, long padding = 1, long dilation = 1)
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
        int* mask = stackalloc int[] { 0, 1, withBias ? 1 : 0 };
        nint r0 = 0, r1 = 0, r2 = 0;
        var call = (delegate* unmanaged<nint, nint, nint, long**, long, long*, long, long*, long, long*, long, int, long*, long, long, int*, long, nint*, nint*, nint*, int>)Function.Value;
        int code = call(gradOutput.Handle, input.Handle, weight.Handle, withBias ? biasSizesRef : null, withBias ? 1 : 0,
            str, 2, pad, 2, dil, 2, 0, outPad, 2, 1, mask, 3, &r0, &r1, &r2);
        GC.KeepAlive(gradOutput); GC.KeepAlive(input); GC.KeepAlive(weight); // their handles were used by the native call
        // The masked-out results are handles of undefined tensors: released as any handle.
        if (r0 != 0) Tensor.UnsafeCreateTensor(r0).Dispose();
        if (code != 0 || r1 == 0)
        {
            if (r1 != 0) Tensor.UnsafeCreateTensor(r1).Dispose();
            if (r2 != 0) Tensor.UnsafeCreateTensor(r2).Dispose();
            throw new InvalidOperationException($"convolution backward: {EntryPoint} failed (code {code}) for input [{string.Join(", ", input.shape)}], weight [{string.Join(", ", weight.shape)}], output gradient [{string.Join(", ", gradOutput.shape)}]");
        }
        var w = Tensor.UnsafeCreateTensor(r1);
        Tensor? b = null;
        if (r2 != 0)
        {
            b = Tensor.UnsafeCreateTensor(r2);
            if (!withBias) { b.Dispose(); b = null; }
        }
        return (w, b);
    }
}
