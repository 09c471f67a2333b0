using System.Runtime.InteropServices;

namespace Mcir.Core.Compute;

/// <summary>
/// How glibc's <c>malloc</c> — libtorch's CPU allocator — keeps the memory of freed tensors. By default glibc serves
/// every block of 32 MB or more (one 64-channel 192×192 activation of a batch of 16 is 151 MB) with its own <c>mmap</c>
/// and returns it with <c>munmap</c> when the tensor is freed, so the next step's tensor of the same size is fresh memory
/// again and every one of its pages is faulted in and zeroed by the kernel. In a virtual machine a page fault is
/// expensive: measured on a 2-vCPU AMD EPYC guest, an EDSR-light ×4 + SPN (K = 4, VGG16 to relu3_3) training step took
/// 11.4 s, a third of it in the kernel, against 2.6 s with the heap kept (PyTorch 1.13 on the same machine: 8.3 s and
/// 2.7 s the same way).
/// </summary>
/// <remarks>
/// The engine sets, before any tensor is allocated, <c>M_MMAP_MAX = 0</c> (large blocks come from the heap and go back to
/// it), <c>M_TRIM_THRESHOLD</c> = 2 GiB (the top of the heap is not given back after every step) and
/// <c>M_TOP_PAD</c> = 256 MiB (the heap grows in large steps) — the settings of glibc's <c>mallopt(3)</c>, also
/// reachable as the environment variables <c>MALLOC_MMAP_MAX_</c>, <c>MALLOC_TRIM_THRESHOLD_</c>,
/// <c>MALLOC_TOP_PAD_</c>. The price: the process keeps the heap's peak size (a training run's resident memory is its
/// largest step's, plus fragmentation); <see cref="Trim"/> gives free memory back after phases that allocate
/// differently-sized tensors (validation, tests). glibc still maps blocks larger than 64 MB with <c>mmap</c> when the
/// allocating thread is not on its main arena; libtorch allocates a step's tensors on the thread that runs the step,
/// which for <c>mcir-host</c> is the main thread. Not applied when the user set any <c>MALLOC_*</c> variable of glibc's
/// (their choice wins) or <c>MCIR_NATIVE_HEAP=default</c>, and off glibc (musl, macOS, Windows).
/// </remarks>
public static class NativeHeap
{
    private const int M_TRIM_THRESHOLD = -1, M_TOP_PAD = -2, M_MMAP_MAX = -4;

    // The engine's values (see the remarks): one place for mallopt and for the environment a child process is given.
    private const int MmapMax = 0, TrimThreshold = int.MaxValue, TopPad = 256 << 20;

    /// <summary>What is in force for this process, for run logs and <c>bench</c>.</summary>
    public static string Note { get; private set; } = "native heap: default";

    /// <summary>True when the engine's heap settings are in force.</summary>
    public static bool Kept { get; private set; }

    /// <summary>
    /// Why the engine leaves glibc's defaults alone, or null to apply its settings: a <c>MALLOC_*</c> variable or
    /// <c>MCIR_NATIVE_HEAP=default</c> in <paramref name="environment"/>, or no glibc.
    /// </summary>
    public static string? ReasonToKeepDefaults(IReadOnlyDictionary<string, string?> environment, bool glibc)
    {
        ArgumentNullException.ThrowIfNull(environment);
        if (!glibc) return "not glibc";
        if (environment.TryGetValue("MCIR_NATIVE_HEAP", out var mode) && mode is not null)
        {
            if (string.Equals(mode, "default", StringComparison.OrdinalIgnoreCase)) return "MCIR_NATIVE_HEAP=default";
            if (!string.Equals(mode, "kept", StringComparison.OrdinalIgnoreCase))
                throw new McirException($"MCIR_NATIVE_HEAP: expected 'kept' or 'default', got '{mode}'");
        }
        var user = environment.Keys.Where(k => k.StartsWith("MALLOC_", StringComparison.Ordinal)).Order(StringComparer.Ordinal).FirstOrDefault();
        return user is null ? null : $"{user} set by the environment";
    }

    /// <summary>
    /// The one-line error when <c>MCIR_NATIVE_HEAP</c> has a value other than <c>kept</c> or <c>default</c> (the host
    /// prints it and exits with 1), else null.
    /// </summary>
    public static string? ConfigurationError { get; private set; }

    /// <summary>Makes sure the settings were applied (the module initializer does it before any tensor exists).</summary>
    public static void EnsureApplied() => System.Runtime.CompilerServices.RuntimeHelpers.RunModuleConstructor(typeof(NativeHeap).Module.ModuleHandle);

    // A library module initializer on purpose (CA2255), like OneDnnIsa's: the settings must be in force before libtorch
    // allocates, in every process that uses the engine (host, tests, third-party programs).
#pragma warning disable CA2255
    [System.Runtime.CompilerServices.ModuleInitializer]
#pragma warning restore CA2255
    internal static void Initialize()
    {
        var env = Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
            .ToDictionary(e => (string)e.Key, e => (string?)e.Value, StringComparer.Ordinal);
        string? keep;
        try
        {
            keep = ReasonToKeepDefaults(env, IsGlibc());
        }
        catch (McirException e)
        {
            ConfigurationError = e.Message;
            keep = "MCIR_NATIVE_HEAP invalid";
        }
        if (keep is not null)
        {
            Note = $"native heap: glibc defaults ({keep})";
            return;
        }
        bool ok = mallopt(M_MMAP_MAX, MmapMax) == 1 & mallopt(M_TRIM_THRESHOLD, TrimThreshold) == 1 & mallopt(M_TOP_PAD, TopPad) == 1;
        Kept = ok;
        Note = ok ? "native heap: kept between steps (glibc mmap off, no trim; see NativeHeap)" : "native heap: glibc defaults (mallopt refused)";
    }

    /// <summary>
    /// The engine's settings as glibc's environment variables (<c>MALLOC_MMAP_MAX_=0</c>,
    /// <c>MALLOC_TRIM_THRESHOLD_=2147483647</c>, <c>MALLOC_TOP_PAD_=268435456</c>) when they are in force, else empty:
    /// what a child process compared with this one (<c>bench --compare-pytorch</c>) is given, so both sides allocate
    /// the same way.
    /// </summary>
    public static IReadOnlyDictionary<string, string> EnvironmentEquivalent => Kept
        ? new Dictionary<string, string>
        {
            ["MALLOC_MMAP_MAX_"] = MmapMax.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["MALLOC_TRIM_THRESHOLD_"] = TrimThreshold.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["MALLOC_TOP_PAD_"] = TopPad.ToString(System.Globalization.CultureInfo.InvariantCulture),
        }
        : new Dictionary<string, string>();

    /// <summary>
    /// Gives the heap's free memory back to the system (glibc's <c>malloc_trim(0)</c>); a no-op when the settings are not
    /// in force. Cheap next to a validation pass; call it after one.
    /// </summary>
    public static void Trim()
    {
        if (Kept) malloc_trim(0);
    }

    /// <summary>
    /// Bytes glibc's <c>malloc</c> holds from the system for the main arena and its own <c>mmap</c>ed blocks
    /// (<c>mallinfo2</c>'s <c>arena + hblkhd</c>), or null off glibc (or before glibc 2.33). With the engine's settings
    /// the heap is not trimmed, so a process's resident memory from it can only grow towards this figure, as pages of
    /// held free memory are first written; a leak shows as this figure growing.
    /// </summary>
    public static long? ReservedBytes()
    {
        if (!IsGlibc()) return null;
        try
        {
            var info = mallinfo2();
            return (long)(info.arena + info.hblkhd);
        }
        catch (EntryPointNotFoundException) { return null; }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MallInfo2
    {
        public nuint arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
    }

    [DllImport("libc")]
    private static extern MallInfo2 mallinfo2();

    private static bool IsGlibc()
    {
        if (!OperatingSystem.IsLinux()) return false;
        try { return gnu_get_libc_version() != IntPtr.Zero; }
        catch (EntryPointNotFoundException) { return false; }
        catch (DllNotFoundException) { return false; }
    }

    [DllImport("libc")]
    private static extern int mallopt(int param, int value);

    [DllImport("libc")]
    private static extern int malloc_trim(nuint pad);

    [DllImport("libc")]
    private static extern IntPtr gnu_get_libc_version();
}
