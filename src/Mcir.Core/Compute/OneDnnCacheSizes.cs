using System.Globalization;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using System.Text.Json;
using ELFSharp.ELF;
using ELFSharp.ELF.Sections;

namespace Mcir.Core.Compute;

/// <summary>Per-core data cache sizes in bytes (L1d, L2, L3), as oneDNN's blocking heuristics use them.</summary>
public readonly record struct CacheSizes(uint L1, uint L2, uint L3)
{
    /// <summary>oneDNN's own sizes for a CPU whose caches it cannot read (<c>platform::get_per_core_cache_size</c>'s guess).</summary>
    public static CacheSizes OneDnnGuess => new(32 * 1024, 512 * 1024, 1024 * 1024);

    /// <summary>"L1d 48 KB, L2 1024 KB, L3 1024 KB".</summary>
    public string Describe() => string.Create(CultureInfo.InvariantCulture, $"L1d {L1 / 1024} KB, L2 {L2 / 1024} KB, L3 {L3 / 1024} KB");
}

/// <summary>
/// Gives libtorch's oneDNN the CPU's real cache sizes on AMD machines whose CPUID cache-topology leaf
/// (<c>0x8000001D</c>) is empty — virtual machines that leave it empty (even with <c>topoext</c> in <c>/proc/cpuinfo</c>). oneDNN 3.7.1's Xbyak
/// (<c>Xbyak::util::Cpu::setCacheHierarchy</c>, <c>src/cpu/x64/xbyak/xbyak_util.h</c>; unchanged upstream) reads AMD
/// caches from that leaf only and, from an empty leaf, computes every cache level as <b>1 byte</b>. Every kernel
/// heuristic then blocks for a 1-byte L1/L2: the brgemm convolutions reject themselves (slower direct kernels run
/// instead), the brgemm 1×1 blocking divides by zero (SIGFPE), and some direct kernels return wrong values (measured on
/// an AMD EPYC Zen 5 guest: a 1×1 stride-2 256→512 convolution off by 50 % under AVX-512 kernels, the blocked NCHW
/// input gradient of a 64→3 convolution off by 42–78 %, a 60-channel NCHW convolution off by 13–23 %). With the sizes
/// corrected all three are exact to float32 rounding under AVX2, AVX-512 and all ISAs, and the VGG16 convolutions run
/// 5–10 % faster.
/// </summary>
/// <remarks>
/// The sizes come from the legacy AMD leaves that such guests still fill (<c>0x80000005</c>: L1d; <c>0x80000006</c>: L2;
/// both per core on every AMD core since K8); L3 stays at oneDNN's own guess for unknown caches (1 MB per core), since
/// how many cores share it cannot be read without the topology leaf. The correction is written into oneDNN's CPU
/// description (the static <c>Xbyak::util::Cpu</c> behind <c>dnnl::impl::cpu::x64::cpu()</c>, found through
/// libtorch_cpu.so's symbol table) before the first oneDNN kernel, and only when that object holds exactly the
/// empty-leaf pattern (3 levels of 1 byte) at the field offsets of oneDNN 3.7.1's Xbyak; anything else (another
/// libtorch, a stripped library, a machine with a topology leaf) leaves it untouched and the engine's ISA caps for
/// such machines (<see cref="OneDnnIsa"/>) stay in force. <c>MCIR_ONEDNN_CACHE_SIZES=off</c> turns it off. The two symbol
/// offsets are cached per libtorch file (name, size, time) in <c>$XDG_CACHE_HOME/mcir/libtorch-symbols.json</c>: reading
/// the 460 MB library's symbol table with ELFSharp takes about 3 s and 400 MB once per machine.
/// </remarks>
public static class OneDnnCacheSizes
{
    /// <summary>Environment variable that turns the correction off (<c>off</c>).</summary>
    public const string SwitchVariable = "MCIR_ONEDNN_CACHE_SIZES";

    /// <summary>libtorch's function returning oneDNN's CPU description (<c>dnnl::impl::cpu::x64::cpu()</c>).</summary>
    public const string CpuFunctionSymbol = "_ZN4dnnl4impl3cpu3x643cpuEv";

    /// <summary>The function-local static it returns.</summary>
    public const string CpuObjectSymbol = "_ZZN4dnnl4impl3cpu3x643cpuEvE4cpu_";

    // Xbyak::util::Cpu (oneDNN 3.7.1): Type type_ (2 × uint64), bool x2APIC_supported_, uint32 numCores_[2],
    // uint32 dataCacheSize_[10], uint32 coresSharignDataCache_[10], uint32 dataCacheLevels_, uint32 avx10version_.
    internal const int SizesOffset = 28, SharingOffset = 68, LevelsOffset = 108, ObjectBytes = 116;

    private static readonly object Gate = new();
    private static bool applied;

    /// <summary>What was done, for the run log and <c>bench</c> (null where nothing needed doing).</summary>
    public static string? Note { get; private set; }

    /// <summary>True when this process's oneDNN now has the corrected sizes.</summary>
    public static bool Corrected { get; private set; }

    /// <summary>
    /// One line naming <see cref="SwitchVariable"/>'s value when it is neither <c>on</c> nor <c>off</c>, else null (the
    /// host refuses to start with it, as with its other settings).
    /// </summary>
    public static string? ConfigurationError => CheckSwitch(Environment.GetEnvironmentVariable(SwitchVariable));

    /// <summary>
    /// Null for an unset, <c>on</c> or <c>off</c> value (any case) of the switch <paramref name="variable"/> (default
    /// <see cref="SwitchVariable"/>), else the error line naming it.
    /// </summary>
    public static string? CheckSwitch(string? value, string variable = SwitchVariable) =>
        value is { Length: > 0 } v && !v.Equals("on", StringComparison.OrdinalIgnoreCase) && !v.Equals("off", StringComparison.OrdinalIgnoreCase)
            ? $"{variable}: expected 'on' or 'off', got '{v}'"
            : null;

    /// <summary>
    /// True on an AMD CPU whose cache-topology leaf <c>0x8000001D</c> is empty: the machines whose caches oneDNN's Xbyak
    /// reads as 1 byte. False off x86.
    /// </summary>
    public static bool TopologyLeafEmpty()
    {
        if (!X86Base.IsSupported) return false;
        var (_, b, c, d) = X86Base.CpuId(0, 0);
        if (!(b == 0x68747541 && d == 0x69746E65 && c == 0x444D4163)) return false; // "AuthenticAMD"
        var leaf = X86Base.CpuId(unchecked((int)0x8000001D), 0);
        return leaf == (0, 0, 0, 0);
    }

    /// <summary>
    /// The per-core sizes from AMD's legacy leaves: L1d KB in <c>0x80000005</c> ECX[31:24], L2 KB in <c>0x80000006</c>
    /// ECX[31:16] (AMD64 Architecture Programmer's Manual, CPUID Fn8000_0005/6); L3 is oneDNN's guess. Null when either
    /// field is empty.
    /// </summary>
    public static CacheSizes? FromLegacyLeaves(uint ecx80000005, uint ecx80000006)
    {
        uint l1Kb = ecx80000005 >> 24, l2Kb = ecx80000006 >> 16;
        if (l1Kb == 0 || l2Kb == 0) return null;
        return new CacheSizes(l1Kb * 1024, l2Kb * 1024, CacheSizes.OneDnnGuess.L3);
    }

    /// <summary>This CPU's legacy-leaf sizes (<see cref="FromLegacyLeaves"/>), or null off x86 or where they are empty.</summary>
    public static CacheSizes? ReadLegacyLeaves()
    {
        if (!X86Base.IsSupported) return null;
        var (max, _, _, _) = X86Base.CpuId(unchecked((int)0x80000000), 0);
        if (unchecked((uint)max) < 0x80000006) return null;
        return FromLegacyLeaves(unchecked((uint)X86Base.CpuId(unchecked((int)0x80000005), 0).Ecx),
            unchecked((uint)X86Base.CpuId(unchecked((int)0x80000006), 0).Ecx));
    }

    /// <summary>
    /// Rewrites an Xbyak CPU description in place when it holds the empty-leaf pattern (3 cache levels of 1 byte):
    /// <paramref name="sizes"/> with one core per cache. Returns false, writing nothing, for any other content.
    /// </summary>
    /// <param name="cpuObject">The object's first <see cref="ObjectBytes"/> bytes.</param>
    /// <param name="sizes">The sizes to give it.</param>
    public static bool Rewrite(Span<byte> cpuObject, CacheSizes sizes)
    {
        if (cpuObject.Length < ObjectBytes) throw new ArgumentException($"expected {ObjectBytes} bytes, got {cpuObject.Length}", nameof(cpuObject));
        var words = MemoryMarshal.Cast<byte, uint>(cpuObject);
        const int s = SizesOffset / 4, share = SharingOffset / 4, levels = LevelsOffset / 4;
        bool emptyLeafPattern = words[levels] == 3 && words[s] == 1 && words[s + 1] == 1 && words[s + 2] == 1
            && words[share] >= 1 && words[share + 1] >= 1 && words[share + 2] >= 1;
        if (!emptyLeafPattern || sizes.L1 == 0 || sizes.L2 == 0 || sizes.L3 == 0) return false;
        words[s] = sizes.L1; words[s + 1] = sizes.L2; words[s + 2] = sizes.L3;
        words[share] = words[share + 1] = words[share + 2] = 1;
        return true;
    }

    /// <summary>
    /// Applies the correction once per process where it is needed (<see cref="TopologyLeafEmpty"/>), loading libtorch
    /// to do so; must run before oneDNN's first kernel (<see cref="OneDnnIsa"/>'s module initializer calls it). Never
    /// throws: a failure leaves oneDNN as it was and says why in <see cref="Note"/>.
    /// </summary>
    public static void Apply()
    {
        lock (Gate)
        {
            if (applied) return;
            applied = true;
            if (!OperatingSystem.IsLinux() || !TopologyLeafEmpty()) return;
            if (ConfigurationError is not null) return; // the host stops with it before any kernel
            if (string.Equals(Environment.GetEnvironmentVariable(SwitchVariable), "off", StringComparison.OrdinalIgnoreCase))
            {
                Note = $"oneDNN cache sizes not corrected ({SwitchVariable}=off)";
                return;
            }
            try
            {
                var sizes = ReadLegacyLeaves() ?? CacheSizes.OneDnnGuess;
                string? failure = Correct(sizes);
                Corrected = failure is null;
                Note = failure is null
                    ? $"oneDNN cache sizes corrected to {sizes.Describe()} (CPUID leaf 0x8000001D is empty; see OneDnnCacheSizes)"
                    : $"oneDNN cache sizes not corrected: {failure}";
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or FormatException
                or ArgumentException or DllNotFoundException or TypeInitializationException or EntryPointNotFoundException)
            {
                Note = $"oneDNN cache sizes not corrected: {e.Message}";
            }
        }
    }

    private static string? Correct(CacheSizes sizes)
    {
        _ = TorchSharp.torch.get_num_threads(); // loads libtorch; creates no oneDNN kernel
        if (LoadedLibrary("libtorch_cpu.so") is not { } lib) return "libtorch_cpu.so is not loaded";
        if (Symbols(lib.Path) is not { } symbols) return $"{lib.Path} has no symbol table entry for oneDNN's CPU description";
        nint function = (nint)(lib.Base + symbols.Function), expected = (nint)(lib.Base + symbols.Object);
        var cpu = Marshal.GetDelegateForFunctionPointer<CpuFunction>(function);
        nint obj = cpu(); // initializes the static on first call
        if (obj != expected) return $"oneDNN's cpu() returned 0x{obj:x}, not its symbol's address 0x{expected:x}";
        var bytes = new byte[ObjectBytes];
        Marshal.Copy(obj, bytes, 0, ObjectBytes);
        if (!Rewrite(bytes, sizes)) return "oneDNN's CPU description does not hold the empty-leaf cache pattern";
        Marshal.Copy(bytes, SizesOffset, obj + SizesOffset, LevelsOffset - SizesOffset);
        return null;
    }

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate nint CpuFunction();

    /// <summary>The file and load address of a shared library mapped into this process (<c>/proc/self/maps</c>).</summary>
    internal static (string Path, ulong Base)? LoadedLibrary(string fileName) => LoadedLibrary(name => name == fileName);

    /// <summary>The first shared library mapped into this process whose file name <paramref name="matches"/> (<c>/proc/self/maps</c>).</summary>
    internal static (string Path, ulong Base)? LoadedLibrary(Func<string, bool> matches)
    {
        foreach (var line in File.ReadLines("/proc/self/maps"))
        {
            var parts = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length < 6 || parts[2] != "00000000") continue;
            string path = parts[5].Trim();
            if (!matches(Path.GetFileName(path))) continue;
            return (path, ulong.Parse(parts[0].AsSpan(0, parts[0].IndexOf('-')), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
        }
        return null;
    }

    /// <summary>
    /// The offsets of <see cref="CpuFunctionSymbol"/> and <see cref="CpuObjectSymbol"/> in <paramref name="library"/>'s
    /// symbol table (null when either is missing), through the cache file when it knows this file (name, size, time).
    /// </summary>
    internal static (ulong Function, ulong Object)? Symbols(string library, string? cachePath = null)
    {
        cachePath ??= Path.Combine(Path.GetDirectoryName(IsaProbe.DefaultCachePath())!, "libtorch-symbols.json");
        var info = new FileInfo(library);
        // Name, size and time, not the folder: every build output holds a copy of the same NuGet file (same time).
        string key = string.Create(CultureInfo.InvariantCulture, $"{info.Name}|{info.Length}|{info.LastWriteTimeUtc.Ticks}");
        var cache = ReadCache(cachePath);
        if (cache.TryGetValue(key, out var known)) return known.Function == 0 ? null : (known.Function, known.Object);
        var found = ReadSymbolTable(library);
        cache[key] = new CachedSymbols(found?.Function ?? 0, found?.Object ?? 0);
        WriteCache(cachePath, cache);
        return found;
    }

    /// <summary>Reads the two symbols from the ELF symbol table (ELFSharp).</summary>
    internal static (ulong Function, ulong Object)? ReadSymbolTable(string library)
    {
        using var elf = ELFReader.Load<ulong>(library);
        if (!elf.TryGetSection(".symtab", out var section) || section is not ISymbolTable table) return null;
        ulong function = 0, obj = 0;
        foreach (var entry in table.Entries)
        {
            if (entry.Name == CpuFunctionSymbol) function = ((SymbolEntry<ulong>)entry).Value;
            else if (entry.Name == CpuObjectSymbol) obj = ((SymbolEntry<ulong>)entry).Value;
        }
        return function != 0 && obj != 0 ? (function, obj) : null;
    }

    private sealed record CachedSymbols(ulong Function, ulong Object);

    private static Dictionary<string, CachedSymbols> ReadCache(string path)
    {
        try
        {
            return File.Exists(path) ? JsonSerializer.Deserialize<Dictionary<string, CachedSymbols>>(File.ReadAllText(path)) ?? [] : [];
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException)
        {
            return []; // an unreadable cache is rebuilt
        }
    }

    private static void WriteCache(string path, Dictionary<string, CachedSymbols> cache)
    {
        try
        {
            IO.AtomicFile.WriteAllText(path, JsonSerializer.Serialize(cache));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A read-only home: the symbols are read again next time.
        }
    }
}
