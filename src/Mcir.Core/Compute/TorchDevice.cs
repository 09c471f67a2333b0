using System.Globalization;
using System.Reflection;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Compute;

/// <summary>
/// The device a run or command computes on, from its setting: <c>auto</c> (the first CUDA device when the CUDA backend
/// is present and sees one, else the CPU), <c>cpu</c>, <c>cuda</c> (= <c>cuda:0</c>) or <c>cuda:N</c>. The target,
/// negatives, embedding, target EMA, batches and metrics' forward passes all live on it; files are read and written
/// through the CPU.
/// </summary>
public static class TorchDevice
{
    /// <summary>The settings accepted, for messages.</summary>
    public const string Choices = "auto, cpu, cuda or cuda:N";

    /// <summary>The libtorch backend this build carries: <c>cpu</c> or <c>cuda</c> (<c>-p:McirTorchBackend=…</c>).</summary>
    public static string Backend { get; } =
        typeof(TorchDevice).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == "McirTorchBackend")?.Value ?? "cpu";

    /// <summary>
    /// The device for <paramref name="setting"/>; <paramref name="where"/> names the key or option in errors.
    /// </summary>
    /// <exception cref="McirException">An unknown setting; <c>cuda</c> on a CPU build (the message says how to build
    /// for CUDA); a CUDA device that is not there.</exception>
    public static Device Resolve(string? setting, string where)
    {
        string s = (setting ?? "auto").Trim().ToLowerInvariant();
        if (s == "auto") return CudaAvailable() ? CUDA : CPU;
        if (s == "cpu") return CPU;
        if (s == "cuda" || s.StartsWith("cuda:", StringComparison.Ordinal))
        {
            int index = 0;
            if (s.Length > 4 && !(int.TryParse(s[5..], NumberStyles.None, CultureInfo.InvariantCulture, out index)))
                throw new McirException($"{where}: '{setting}' is not a device; expected {Choices}");
            if (Backend != "cuda")
                throw new McirException($"{where}: '{setting}' needs the CUDA backend, but this build of mcir-host carries libtorch's CPU backend; " +
                    "build with `dotnet build -p:McirTorchBackend=cuda` (or publish with it), or use device cpu");
            int count = CudaAvailable() ? cuda.device_count() : 0;
            if (index >= count)
                throw new McirException($"{where}: '{setting}': {(count == 0 ? "no CUDA device is visible (driver, CUDA_VISIBLE_DEVICES)" : $"only {count} CUDA device(s) are visible (cuda:0 … cuda:{count - 1})")}");
            return new Device(DeviceType.CUDA, index);
        }
        throw new McirException($"{where}: '{setting}' is not a device; expected {Choices}");
    }

    /// <summary>A device as users write it: <c>cpu</c>, <c>cuda:0</c>.</summary>
    public static string Describe(Device device) =>
        device.type == DeviceType.CPU ? "cpu" : $"{device.type.ToString().ToLowerInvariant()}:{Math.Max(0, device.index)}";

    /// <summary>True when two devices are the same (Device objects do not compare by value; cuda = cuda:0).</summary>
    public static bool Same(Device a, Device b) => a.type == b.type && Math.Max(0, (int)a.index) == Math.Max(0, (int)b.index);

    /// <summary>The device of <paramref name="module"/>'s first parameter or buffer (CPU for a module without any).</summary>
    public static Device Of(nn.Module module)
    {
        var first = module.parameters().FirstOrDefault() ?? module.buffers().FirstOrDefault();
        return first?.device ?? CPU;
    }

    private static bool CudaAvailable()
    {
        if (Backend != "cuda") return false;
        try { return cuda.is_available(); }
        catch (Exception e) when (e is DllNotFoundException or NotSupportedException or InvalidOperationException) { return false; }
    }
}
