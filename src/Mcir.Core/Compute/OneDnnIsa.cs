using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Mcir.Core.Compute;

/// <summary>
/// Caps the instruction set of libtorch's oneDNN kernels where its AVX-512 kernels were found to compute wrong
/// results, before any kernel is chosen (oneDNN reads <c>ONEDNN_MAX_CPU_ISA</c> once, at its first ISA query).
/// </summary>
/// <remarks>
/// libtorch 2.10 ships oneDNN 3.7.1. On AMD Zen 5 (family 0x1A) with AVX-512, its AVX-512 float32 kernels return wrong
/// values for some convolutions even with channels-last inputs (a 1×1 stride-2 convolution 256→512 on 14×14 off by 36;
/// the ResNet18 embedding's output off by 0.42), while its AVX2 kernels are exact to float32 rounding on the same
/// machine. There the engine sets <c>ONEDNN_MAX_CPU_ISA=AVX2</c> in the native environment. A value the user set
/// (<c>ONEDNN_MAX_CPU_ISA</c> or the older <c>DNNL_MAX_CPU_ISA</c>) is never overridden. Known-answer tests of
/// these convolutions run on every machine in the test suite, so another CPU with the same fault shows up there.
/// <para>
/// On a virtual machine that reports no cache hierarchy (an AMD EPYC guest whose CPUID cache-topology leaf is empty and
/// whose kernel lists no caches), oneDNN's brgemm 1×1 convolution blocking (<c>brg_blocking_t::est_eff_1x1</c>, AVX2 and
/// up) divides by zero for NAFNet width 32's convolutions and the process dies with SIGFPE. Where the kernel lists no
/// caches the cap is <c>AVX</c> (no brgemm kernels; convolutions about 1.5× slower): a slower run rather than a crash.
/// </para>
/// <para>
/// Both faults, and the NCHW faults <see cref="ChannelsLast"/> and <see cref="ConvolutionLayout"/> guard against, turned
/// out to come from one cause on that guest: oneDNN read its caches as 1 byte each (<see cref="OneDnnCacheSizes"/>).
/// Where the engine corrects the sizes (this module initializer, before the cap is chosen) all of them are exact and no
/// cap is set; the caps remain for machines where the correction cannot be made.
/// </para>
/// </remarks>
public static class OneDnnIsa
{
    private static string isaNote = "oneDNN: default ISA";

    /// <summary>The ISA cap in force for this process and why, and the cache-size correction where one was made
    /// (<see cref="OneDnnCacheSizes"/>), for run logs and <c>bench</c>.</summary>
    public static string Note
    {
        get => OneDnnCacheSizes.Note is { } cache ? $"{isaNote}; {cache}" : isaNote;
        private set => isaNote = value;
    }

    /// <summary>
    /// True when the cap in force keeps oneDNN from its native bfloat16 kernels (AVX512-BF16/AMX), so bfloat16 is
    /// emulated in this process even on a CPU that has it.
    /// </summary>
    public static bool CapsBelowBFloat16 { get; private set; }

    /// <summary>The cap the user set (<c>ONEDNN_MAX_CPU_ISA</c> or <c>DNNL_MAX_CPU_ISA</c>), or null.</summary>
    public static string? UserCap { get; private set; }

    /// <summary>The cap the engine set for a known fault of this machine (<see cref="Choose"/>), or null.</summary>
    public static string? EngineCap { get; private set; }

    /// <summary>
    /// Replaces the engine's cap with <paramref name="choice"/>'s (measured by <see cref="IsaProbe"/>). Only effective
    /// before oneDNN's first kernel in this process (it reads the cap once): the host calls it before building any model.
    /// </summary>
    public static void Apply(IsaChoice choice)
    {
        ArgumentNullException.ThrowIfNull(choice);
        if (UserCap is not null) throw new InvalidOperationException("the user's ONEDNN_MAX_CPU_ISA is not replaced");
        if (!OperatingSystem.IsLinux() || setenv("ONEDNN_MAX_CPU_ISA", choice.Isa, 1) != 0) return;
        Environment.SetEnvironmentVariable("ONEDNN_MAX_CPU_ISA", choice.Isa);
        EngineCap = choice.Isa;
        CapsBelowBFloat16 = IsBelowBFloat16(choice.Isa);
        Note = $"oneDNN: ISA {choice.Isa}, measured (see the compute settings)";
    }

    /// <summary>True when an <c>ONEDNN_MAX_CPU_ISA</c> value excludes oneDNN's bfloat16 ISAs (e.g. <c>AVX2</c>, <c>AVX512_CORE</c>).</summary>
    public static bool IsBelowBFloat16(string isa) =>
        isa.Trim().ToUpperInvariant() is "SSE41" or "AVX" or "AVX2" or "AVX2_VNNI" or "AVX2_VNNI_2" or "AVX512_CORE" or "AVX512_CORE_VNNI";

    /// <summary>True when an <c>ONEDNN_MAX_CPU_ISA</c> value excludes AVX-512 (SSE41, AVX, AVX2 and its VNNI forms).</summary>
    public static bool IsBelowAvx512(string isa) =>
        isa.Trim().ToUpperInvariant() is "SSE41" or "AVX" or "AVX2" or "AVX2_VNNI" or "AVX2_VNNI_2";

    /// <summary>True when <paramref name="cpu"/> is one whose oneDNN AVX-512 kernels are known to be wrong (Zen 5 with AVX-512).</summary>
    public static bool NeedsAvx2Cap(CpuFeatures cpu) =>
        cpu.Avx512F && cpu.Vendor == "AuthenticAMD" && cpu.Family >= 0x1A;

    /// <summary>
    /// The cap this process needs and why, or null for none: none where the engine corrected oneDNN's cache sizes
    /// (<paramref name="cacheSizesCorrected"/>: the faults below were all oneDNN blocking for 1-byte caches, see
    /// <see cref="OneDnnCacheSizes"/>); else <c>AVX</c> when the machine reports no cache hierarchy
    /// (<paramref name="cachesReported"/> false; oneDNN's AVX2+ brgemm kernels would divide by zero), else <c>AVX2</c> on
    /// CPUs whose AVX-512 kernels are wrong (<see cref="NeedsAvx2Cap"/>).
    /// </summary>
    public static (string Isa, string Reason)? Choose(CpuFeatures cpu, bool cachesReported, bool cacheSizesCorrected = false)
    {
        ArgumentNullException.ThrowIfNull(cpu);
        if (cacheSizesCorrected) return null;
        if (!cachesReported && cpu.Avx2)
            return ("AVX", "this machine reports no CPU caches, where oneDNN's AVX2+ brgemm convolutions can divide by zero; see OneDnnIsa");
        if (NeedsAvx2Cap(cpu))
            return ("AVX2", "its AVX-512 kernels are wrong on this CPU; see OneDnnIsa");
        return null;
    }

    /// <summary>
    /// True when the kernel lists CPU caches (<c>{sysCpuRoot}/cpu0/cache/index*</c>, which Linux fills from CPUID's
    /// cache leaves); false on guests that report none. True off Linux.
    /// </summary>
    public static bool CachesReported(string sysCpuRoot = "/sys/devices/system/cpu")
    {
        if (!OperatingSystem.IsLinux()) return true;
        string cache = Path.Combine(sysCpuRoot, "cpu0", "cache");
        return Directory.Exists(cache) && Directory.EnumerateDirectories(cache, "index*").Any();
    }

    // A library module initializer on purpose (CA2255): the cap must be in the native environment before the first
    // kernel runs, and any process that builds models through the engine (host, tests, third-party programs) loads
    // this assembly first.
#pragma warning disable CA2255
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Initialize()
    {
        OneDnnCacheSizes.Apply();
        string? user = Environment.GetEnvironmentVariable("ONEDNN_MAX_CPU_ISA") ?? Environment.GetEnvironmentVariable("DNNL_MAX_CPU_ISA");
        if (user is not null)
        {
            UserCap = user;
            Note = $"oneDNN: ISA cap {user} (set by the environment)";
            CapsBelowBFloat16 = IsBelowBFloat16(user);
            return;
        }
        if (!OperatingSystem.IsLinux() || Choose(CpuFeatures.Machine, CachesReported(), OneDnnCacheSizes.Corrected) is not { } cap) return;
        // .NET's Environment.SetEnvironmentVariable does not reach native getenv: set it in libc's environment.
        if (setenv("ONEDNN_MAX_CPU_ISA", cap.Isa, 0) == 0)
        {
            Environment.SetEnvironmentVariable("ONEDNN_MAX_CPU_ISA", cap.Isa);
            EngineCap = cap.Isa;
            CapsBelowBFloat16 = true;
            Note = $"oneDNN: ISA capped at {cap.Isa} ({cap.Reason})";
        }
    }

    /// <summary>Makes sure the module initializer has run (the host calls it first thing).</summary>
    public static void EnsureApplied() => RuntimeHelpers.RunModuleConstructor(typeof(OneDnnIsa).Module.ModuleHandle);

    [DllImport("libc", SetLastError = true)]
    private static extern int setenv(string name, string value, int overwrite);
}
