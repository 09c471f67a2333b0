namespace Mcir.Core.Compute;

/// <summary>
/// What this machine's CPU offers that changes libtorch's kernels: model name, vendor/family, and the ISA extensions
/// that matter for training speed and correctness (AVX2, AVX-512F, AVX512-BF16, AMX-BF16). Read from
/// <c>/proc/cpuinfo</c> (Linux x86-64; elsewhere from .NET's intrinsics where they say it, else "unknown").
/// </summary>
public sealed record CpuFeatures(string ModelName, string Vendor, int Family, IReadOnlySet<string> Flags)
{
    private static readonly Lazy<CpuFeatures> Current = new(() => Read("/proc/cpuinfo"));

    /// <summary>This machine's CPU (read once per process).</summary>
    public static CpuFeatures Machine => Current.Value;

    /// <summary>Hardware threads per physical core (SMT: <c>siblings</c> / <c>cpu cores</c> of <c>/proc/cpuinfo</c>; 1 when not known).</summary>
    public int ThreadsPerCore { get; init; } = 1;

    public bool Avx2 => Flags.Contains("avx2");
    public bool Avx512F => Flags.Contains("avx512f");
    public bool Avx512Bf16 => Flags.Contains("avx512_bf16");
    public bool AmxBf16 => Flags.Contains("amx_bf16");

    /// <summary>
    /// True when the CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16). Elsewhere libtorch emulates bfloat16
    /// and it is several times slower than float32 (measured: SPN step 23.7 s against 5.1 s on an AVX2-only EPYC).
    /// </summary>
    public bool NativeBFloat16 => Avx512Bf16 || AmxBf16;

    /// <summary>One line for logs: the model and the ISA features that matter, e.g. <c>AMD EPYC (AVX2, AVX-512F, AVX512-BF16)</c>.</summary>
    public string Describe()
    {
        var f = new List<string>();
        if (Avx2) f.Add("AVX2");
        if (Avx512F) f.Add("AVX-512F");
        if (Avx512Bf16) f.Add("AVX512-BF16");
        if (AmxBf16) f.Add("AMX-BF16");
        string family = Family > 0 ? $", family 0x{Family:X}" : "";
        return $"{ModelName}{family} ({(f.Count == 0 ? "none of AVX2/AVX-512F/AVX512-BF16/AMX-BF16" : string.Join(", ", f))})";
    }

    /// <summary>Parses a <c>/proc/cpuinfo</c>-format file (its first processor block); falls back to .NET's intrinsics when it is absent.</summary>
    public static CpuFeatures Read(string path)
    {
        string model = "unknown CPU", vendor = "", flags = "";
        int family = 0, siblings = 0, cores = 0;
        if (File.Exists(path))
        {
            foreach (var line in File.ReadLines(path))
            {
                if (line.Length == 0 && flags.Length > 0) break; // first processor block only
                int colon = line.IndexOf(':');
                if (colon < 0) continue;
                string key = line[..colon].Trim(), value = line[(colon + 1)..].Trim();
                switch (key)
                {
                    case "model name": model = value; break;
                    case "vendor_id": vendor = value; break;
                    case "cpu family": int.TryParse(value, out family); break;
                    case "flags": flags = value; break;
                    case "siblings": int.TryParse(value, out siblings); break;
                    case "cpu cores": int.TryParse(value, out cores); break;
                }
            }
            return new CpuFeatures(model, vendor, family, flags.Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal))
            {
                ThreadsPerCore = cores > 0 && siblings >= cores ? siblings / cores : 1,
            };
        }

        var set = new HashSet<string>(StringComparer.Ordinal);
        if (System.Runtime.Intrinsics.X86.Avx2.IsSupported) set.Add("avx2");
        if (System.Runtime.Intrinsics.X86.Avx512F.IsSupported) set.Add("avx512f");
        return new CpuFeatures(model, vendor, family, set);
    }
}
