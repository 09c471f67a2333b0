using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Compute;

/// <summary>The address of a tensor's first element (libtorch's <c>data_ptr()</c>; a device address for CUDA tensors).</summary>
internal static class TensorData
{
    [DllImport("LibTorchSharp")] private static extern nint THSTensor_data(nint handle);

    /// <summary>
    /// The data pointer of <paramref name="tensor"/>, storage offset included (TorchSharp's own export, which
    /// <c>Tensor.bytes</c> uses on the CPU). Valid while the tensor (and its storage) is alive: keep it alive across use.
    /// </summary>
    /// <exception cref="InvalidOperationException">libtorch gave no address for a tensor that has elements (its error,
    /// if any, is raised by TorchSharp's own check).</exception>
    public static nint Pointer(Tensor tensor)
    {
        nint p = THSTensor_data(tensor.Handle);
        if (p == 0 && tensor.numel() > 0)
        {
            torch.CheckForErrors();
            throw new InvalidOperationException($"libtorch gave no data pointer for a {tensor.dtype} tensor of shape [{string.Join(", ", tensor.shape)}].");
        }
        return p;
    }
}
