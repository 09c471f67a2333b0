using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Compute;

/// <summary>
/// Inference-only 2-D convolution with its ReLU fused into the oneDNN kernel (a post-op: the activation is applied to
/// each output block while it is still in registers, so the output is written once and no separate ReLU pass reads and
/// rewrites it). Used for the frozen embedding's no-gradient passes (the negatives' VGG features: on EDSR-light ×4
/// with K = 4, 141 M activations per step).
/// </summary>
/// <remarks>
/// The kernel is PyTorch's <c>torch.ops.mkldnn._convolution_pointwise(X, W, B, padding, stride, dilation, groups,
/// "relu", [], None)</c> (aten/src/ATen/native/mkldnn/Conv.cpp, the op Inductor emits for conv + ReLU), reached through
/// the C entry point libtorch exports for AOTInductor, <c>aoti_torch_cpu_mkldnn__convolution_pointwise</c>
/// (torch/csrc/inductor/aoti_torch/shim_mkldnn.cpp); TorchSharp's tensor handles are <c>at::Tensor*</c>, the shim's
/// <c>AtenTensorHandle</c>. Same oneDNN, same ISA, same memory format as the unfused convolution (channels-last output
/// when the input or the weight is channels-last, else contiguous). Values: the same kernel where libtorch's own
/// convolution uses oneDNN (bit-identical on the benchmark's VGG16 shapes, measured; the tests bound the difference by
/// float32 rounding); where libtorch picks another algorithm for a small shape, equal to float32 (bfloat16) rounding.
/// Contiguous shapes that oneDNN computes wrongly where its cache sizes could not be corrected
/// (<see cref="ConvolutionLayout.ContiguousIsCorrect"/>) are refused there, as the layout guard refuses them to the
/// unfused ones. Not for tensors that need a gradient: the result has no autograd history, so <see cref="CanFuse"/>
/// refuses whenever gradient mode is on and any operand requires grad.
/// <c>MCIR_FUSED_CONVOLUTION=off</c> turns it off (the convolution and ReLU then run as two kernels).
/// </remarks>
public static class FusedConvolution
{
    /// <summary>Environment variable: <c>on</c> (default) or <c>off</c>.</summary>
    public const string SwitchVariable = "MCIR_FUSED_CONVOLUTION";

    /// <summary>libtorch's exported C entry point of <c>mkldnn::_convolution_pointwise</c>.</summary>
    public const string EntryPoint = "aoti_torch_cpu_mkldnn__convolution_pointwise";

    private static readonly Lazy<nint> Function = new(() => ResolveExport(EntryPoint));

    /// <summary>Null for an unset, <c>on</c> or <c>off</c> value of <see cref="SwitchVariable"/> (any case), else the error line.</summary>
    public static string? ConfigurationError => OneDnnCacheSizes.CheckSwitch(Environment.GetEnvironmentVariable(SwitchVariable), SwitchVariable);

    /// <summary>True when the switch allows it and this process's libtorch exports <see cref="EntryPoint"/>.</summary>
    public static bool Available => !SwitchedOff && Function.Value != 0;

    /// <summary>One clause for run logs and <c>bench</c>: whether the embedding's no-gradient convolutions are fused with their ReLU.</summary>
    public static string Note => SwitchedOff ? $"convolution + ReLU not fused ({SwitchVariable}=off)"
        : Function.Value == 0 ? $"convolution + ReLU not fused (libtorch does not export {EntryPoint})"
        : "convolution + ReLU fused in the embedding's no-gradient passes";

    private static bool SwitchedOff => string.Equals(Environment.GetEnvironmentVariable(SwitchVariable), "off", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// True where bfloat16 operands are fused: the CPU has native bfloat16 (AVX512-BF16 or AMX) and no ISA cap in force
    /// keeps oneDNN below it. libtorch's fused bfloat16 convolution refuses CPUs without AVX-512 (BW, VL, DQ) or under a
    /// lower <c>ONEDNN_MAX_CPU_ISA</c>; there bfloat16 is emulated anyway and the unfused pair runs.
    /// </summary>
    public static bool NativeBFloat16 => CpuFeatures.Machine.NativeBFloat16 && !OneDnnIsa.CapsBelowBFloat16;

    /// <summary>
    /// Whether <see cref="Conv2dRelu"/> takes these operands: available; CPU tensors of float32, or of bfloat16 where
    /// <see cref="NativeBFloat16"/>, of one dtype; input [N, C, H, W] dense (contiguous or channels-last; contiguous
    /// only where <see cref="ConvolutionLayout.ContiguousIsCorrect"/> or the cache sizes are corrected); weight
    /// [O, C, kH, kW] (one group); bias [O] or none; and no gradient needed (gradient mode off, or no operand requires grad).
    /// </summary>
    public static bool CanFuse(Tensor input, Tensor weight, Tensor? bias)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(weight);
        if (input.device_type != DeviceType.CPU || weight.device_type != DeviceType.CPU) return false;
        if (input.dtype is not (ScalarType.Float32 or ScalarType.BFloat16) || weight.dtype != input.dtype) return false;
        if (input.dtype == ScalarType.BFloat16 && !NativeBFloat16) return false;
        if (input.dim() != 4 || weight.dim() != 4 || weight.shape[1] != input.shape[1]) return false;
        if (bias is not null && (bias.dtype != input.dtype || bias.device_type != DeviceType.CPU || bias.dim() != 1 || bias.shape[0] != weight.shape[0])) return false;
        if (torch.is_grad_enabled() && (input.requires_grad || weight.requires_grad || bias?.requires_grad == true)) return false;
        bool contiguous = ConvolutionLayout.IsDenseContiguous(input);
        if (!contiguous && !ChannelsLast.IsChannelsLast(input)) return false;
        if (contiguous && ConvolutionLayout.GuardContiguous && !ConvolutionLayout.ContiguousIsCorrect(input.shape[1], weight.shape[0])) return false;
        return Available;
    }

    /// <summary>
    /// relu(conv2d(input, weight, bias, stride, padding, dilation)) in one oneDNN kernel.
    /// </summary>
    /// <param name="input">[N, C, H, W], float32 or bfloat16, on the CPU.</param>
    /// <param name="weight">[O, C, kH, kW], the input's dtype.</param>
    /// <param name="bias">[O] or null.</param>
    /// <param name="stride">Stride, both axes (pixels).</param>
    /// <param name="padding">Zero padding, both axes (pixels).</param>
    /// <param name="dilation">Dilation, both axes.</param>
    /// <returns>[N, O, H', W'] in the input's dtype and memory format, with no autograd history.</returns>
    /// <exception cref="ArgumentException">The operands are not ones <see cref="CanFuse"/> accepts.</exception>
    /// <exception cref="InvalidOperationException">libtorch reported a failure (its message is on standard error).</exception>
    public static unsafe Tensor Conv2dRelu(Tensor input, Tensor weight, Tensor? bias, long stride = 1, long padding = 0, long dilation = 1)
    {
        if (!CanFuse(input, weight, bias))
            throw new ArgumentException(
                $"fused convolution: input {Shape(input)} {input.dtype} on {input.device_type}, weight {Shape(weight)} {weight.dtype}" +
                (Available ? " are not float32 (or natively supported bfloat16) CPU tensors of one dtype with matching channels, dense, without gradient" : $" — {EntryPoint} is not available"));
        long* pad = stackalloc long[] { padding, padding };
        long* str = stackalloc long[] { stride, stride };
        long* dil = stackalloc long[] { dilation, dilation };
        byte* attr = stackalloc byte[] { (byte)'r', (byte)'e', (byte)'l', (byte)'u', 0 };
        nint biasHandle = bias?.Handle ?? 0;
        nint result = 0;
        var call = (delegate* unmanaged<nint, nint, nint*, long*, long, long*, long, long*, long, long, byte*, nint, long, nint, nint*, int>)Function.Value;
        int code = call(input.Handle, weight.Handle, bias is null ? null : &biasHandle, pad, 2, str, 2, dil, 2, 1, attr, 0, 0, 0, &result);
        GC.KeepAlive(input); GC.KeepAlive(weight); GC.KeepAlive(bias); // their handles were used by the native call
        if (code != 0 || result == 0)
            throw new InvalidOperationException($"fused convolution: {EntryPoint} failed (code {code}) for input {Shape(input)}, weight {Shape(weight)}");
        return Tensor.UnsafeCreateTensor(result);
    }

    // The address of a C function libtorch_cpu.so exports (its AOTInductor shims), or 0 where there is none.
    internal static nint ResolveExport(string entryPoint)
    {
        // Linux's libtorch only (the engine's CPU backend; /proc/self/maps names the file TorchSharp loaded).
        if (!OperatingSystem.IsLinux()) return 0;
        _ = torch.get_num_threads(); // loads libtorch
        if (OneDnnCacheSizes.LoadedLibrary("libtorch_cpu.so") is not { } lib) return 0;
        return NativeLibrary.TryLoad(lib.Path, out var handle) && NativeLibrary.TryGetExport(handle, entryPoint, out var f) ? f : 0;
    }

    private static string Shape(Tensor t) => "[" + string.Join(", ", t.shape) + "]";
}
