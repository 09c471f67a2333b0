using System.Runtime.InteropServices;
using TorchSharp;

namespace Mcir.Core.Compute;

/// <summary>
/// libtorch's NNPACK convolution path. On a machine whose CPU reports no cache hierarchy (see
/// <see cref="OneDnnIsa.CachesReported"/>), NNPACK cannot initialize, and libtorch 2.10 tries again — printing
/// "Could not initialize NNPACK! Reason: Unsupported hardware." — on every convolution it would have given NNPACK
/// (hundreds of lines per training step), then uses another kernel anyway. There the engine turns NNPACK off, as
/// <c>torch.backends.nnpack.set_flags(False)</c> does in PyTorch: the same kernels run, without the attempts and the lines.
/// </summary>
public static class Nnpack
{
    /// <summary>True when NNPACK was turned off in this process.</summary>
    public static bool Disabled { get; private set; }

    /// <summary>
    /// Turns NNPACK off when the machine reports no CPU caches (<paramref name="cachesReported"/>, default: read from
    /// the kernel); loads libtorch if it is not loaded yet. Linux x86-64 only (libtorch's C++ symbols are called by their
    /// Itanium-ABI names, which TorchSharp does not wrap); elsewhere nothing happens.
    /// </summary>
    public static void DisableWhereUnsupported(bool? cachesReported = null)
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64) return;
        if (cachesReported ?? OneDnnIsa.CachesReported()) return;
        torch.get_num_threads(); // loads libtorch (TorchSharp loads it on first use)
        Enabled = false;
        Disabled = !Enabled;
    }

    /// <summary>libtorch's own switch (<c>at::globalContext().userEnabledNNPACK()</c>); libtorch must be loaded.</summary>
    internal static bool Enabled
    {
        get => userEnabledNNPACK(globalContext());
        set => setUserEnabledNNPACK(globalContext(), value);
    }

    [DllImport("libtorch_cpu.so", EntryPoint = "_ZN2at13globalContextEv")]
    private static extern IntPtr globalContext();

    [DllImport("libtorch_cpu.so", EntryPoint = "_ZN2at7Context20setUserEnabledNNPACKEb")]
    private static extern void setUserEnabledNNPACK(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool enabled);

    [DllImport("libtorch_cpu.so", EntryPoint = "_ZNK2at7Context17userEnabledNNPACKEv")]
    [return: MarshalAs(UnmanagedType.U1)]
    private static extern bool userEnabledNNPACK(IntPtr context);
}
