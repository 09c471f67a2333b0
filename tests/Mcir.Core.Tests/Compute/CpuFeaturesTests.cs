using Mcir.Core.Compute;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Compute;

public class CpuFeaturesTests
{
    private static CpuFeatures Parse(string vendor, int family, string flags)
    {
        string path = Path.Combine(Path.GetTempPath(), $"cpuinfo-{Guid.NewGuid():N}");
        // Two processor blocks, as /proc/cpuinfo lists them; only the first is read.
        File.WriteAllText(path, $"processor\t: 0\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel name\t: Test CPU\nflags\t\t: {flags}\n\n"
            + "processor\t: 1\nvendor_id\t: Other\ncpu family\t: 1\nmodel name\t: Second\nflags\t\t: amx_bf16\n\n");
        try { return CpuFeatures.Read(path); }
        finally { File.Delete(path); }
    }

    private static readonly CpuFeatures Avx2Only = Parse("AuthenticAMD", 25, "fpu sse2 avx fma avx2");
    private static readonly CpuFeatures Zen4 = Parse("AuthenticAMD", 25, "avx2 avx512f avx512bw avx512_bf16");
    private static readonly CpuFeatures Zen5 = Parse("AuthenticAMD", 26, "avx2 avx512f avx512_bf16 avx512_vp2intersect");
    private static readonly CpuFeatures SapphireRapids = Parse("GenuineIntel", 6, "avx2 avx512f amx_bf16 amx_tile");

    [Fact]
    public void ReadsTheFirstProcessorsModelVendorFamilyAndFlags()
    {
        Assert.Equal("Test CPU", Zen5.ModelName);
        Assert.Equal("AuthenticAMD", Zen5.Vendor);
        Assert.Equal(26, Zen5.Family);
        Assert.True(Zen5.Avx2 && Zen5.Avx512F && Zen5.Avx512Bf16);
        Assert.False(Zen5.AmxBf16);
        Assert.False(Avx2Only.Avx512F);
        Assert.False(Avx2Only.AmxBf16); // the second block's amx_bf16 is not this processor's
        Assert.Equal("Test CPU, family 0x1A (AVX2, AVX-512F, AVX512-BF16)", Zen5.Describe());
    }

    [Fact]
    public void ThreadsPerCore_is_siblings_over_cores_and_one_when_not_said()
    {
        string path = Path.Combine(Path.GetTempPath(), $"cpuinfo-{Guid.NewGuid():N}");
        try
        {
            File.WriteAllText(path, "processor\t: 0\nmodel name\t: SMT CPU\nsiblings\t: 32\ncpu cores\t: 16\nflags\t\t: avx2\n\n");
            Assert.Equal(2, CpuFeatures.Read(path).ThreadsPerCore);
            File.WriteAllText(path, "processor\t: 0\nmodel name\t: Guest\nsiblings\t: 2\ncpu cores\t: 2\nflags\t\t: avx2\n\n");
            Assert.Equal(1, CpuFeatures.Read(path).ThreadsPerCore);
        }
        finally { File.Delete(path); }
        Assert.Equal(1, Zen5.ThreadsPerCore); // neither line given
    }

    [Fact]
    public void NativeBFloat16_IsAvx512Bf16OrAmx()
    {
        Assert.False(Avx2Only.NativeBFloat16);
        Assert.True(Zen4.NativeBFloat16);
        Assert.True(SapphireRapids.NativeBFloat16);
    }

    [Fact]
    public void AutoPrecision_IsFloat32WithoutNativeBFloat16_AndBFloat16WithIt()
    {
        Assert.Equal(NegativePrecision.Float32, NegativePrecision.Auto.Resolve(Avx2Only));
        Assert.Equal(NegativePrecision.BFloat16, NegativePrecision.Auto.Resolve(Zen4));
        Assert.Equal(NegativePrecision.BFloat16, NegativePrecision.Auto.Resolve(SapphireRapids));
        Assert.Equal(NegativePrecision.BFloat16, NegativePrecision.BFloat16.Resolve(Avx2Only)); // explicit stays explicit
        Assert.Equal(NegativePrecision.Float32, NegativePrecision.Float32.Resolve(Zen4));
    }

    [Fact]
    public void ExplicitBFloat16OnAnEmulatingCpu_IsSaidPlainly()
    {
        Assert.Contains("EMULATED", NegativePrecision.BFloat16.Describe(Avx2Only));
        Assert.DoesNotContain("EMULATED", NegativePrecision.BFloat16.Describe(Zen4));
        Assert.Contains("float32 (auto: this CPU has no native bfloat16)", NegativePrecision.Auto.Describe(Avx2Only));
        Assert.Contains("bfloat16 (auto: this CPU has native bfloat16)", NegativePrecision.Auto.Describe(Zen4));
    }

    [Fact]
    public void AutoIsAConfigurationValue()
    {
        var options = System.Text.Json.JsonSerializer.Deserialize<Mcir.Core.ModelContrast.NegativeBankOptions>(
            """{"precision":"auto"}""", new System.Text.Json.JsonSerializerOptions { PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.SnakeCaseLower, Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() } });
        Assert.Equal(NegativePrecision.Auto, options!.Precision);
    }

    [Fact]
    public void AutoInThisProcess_IsFloat32UnderAnIsaCapBelowBFloat16()
    {
        // This process: bfloat16 only when the CPU has it and the oneDNN cap in force does not exclude those kernels.
        bool expectBf16 = CpuFeatures.Machine.NativeBFloat16 && !OneDnnIsa.CapsBelowBFloat16;
        Assert.Equal(expectBf16 ? NegativePrecision.BFloat16 : NegativePrecision.Float32, NegativePrecision.Auto.Resolve());
        // The cap this machine gets (none, AVX2 or AVX) is what Choose says, unless the environment set one.
        if (OperatingSystem.IsLinux() && !OneDnnIsa.Note.Contains("set by the environment", StringComparison.Ordinal)) // the cap is applied on Linux
        {
            if (OneDnnIsa.Choose(CpuFeatures.Machine, OneDnnIsa.CachesReported(), OneDnnCacheSizes.Corrected) is { } c)
            {
                Assert.Equal(c.Isa, Environment.GetEnvironmentVariable("ONEDNN_MAX_CPU_ISA"));
                Assert.True(OneDnnIsa.CapsBelowBFloat16 && OneDnnIsa.Note.Contains($"capped at {c.Isa}", StringComparison.Ordinal), OneDnnIsa.Note);
            }
            else Assert.StartsWith("oneDNN: default ISA", OneDnnIsa.Note, StringComparison.Ordinal);
        }
        Assert.True(OneDnnIsa.IsBelowBFloat16("AVX2"));
        Assert.True(OneDnnIsa.IsBelowBFloat16("avx512_core"));
        Assert.False(OneDnnIsa.IsBelowBFloat16("AVX512_CORE_BF16"));
        Assert.False(OneDnnIsa.IsBelowBFloat16("AVX512_CORE_AMX"));
    }

    [Fact]
    public void OneDnnAvx2Cap_OnlyWhereItsAvx512KernelsWereFoundWrong()
    {
        Assert.True(OneDnnIsa.NeedsAvx2Cap(Zen5));
        Assert.False(OneDnnIsa.NeedsAvx2Cap(Zen4));
        Assert.False(OneDnnIsa.NeedsAvx2Cap(Avx2Only));
        Assert.False(OneDnnIsa.NeedsAvx2Cap(SapphireRapids));
    }

    [Fact]
    public void OneDnnCap_AvxWhereCpuidReportsNoCaches_Avx2WhereAvx512IsWrong()
    {
        Assert.Equal("AVX", OneDnnIsa.Choose(Zen5, cachesReported: false)?.Isa);
        Assert.Equal("AVX", OneDnnIsa.Choose(Avx2Only, cachesReported: false)?.Isa);
        Assert.Equal("AVX2", OneDnnIsa.Choose(Zen5, cachesReported: true)?.Isa);
        Assert.Null(OneDnnIsa.Choose(Zen4, cachesReported: true));
        Assert.Null(OneDnnIsa.Choose(SapphireRapids, cachesReported: true));
        Assert.Contains("no CPU caches", OneDnnIsa.Choose(Zen4, cachesReported: false)!.Value.Reason);
        // Where the engine corrected oneDNN's cache sizes, the faults behind both caps are gone (OneDnnCacheSizesTests).
        Assert.Null(OneDnnIsa.Choose(Zen5, cachesReported: false, cacheSizesCorrected: true));
        Assert.Null(OneDnnIsa.Choose(Avx2Only, cachesReported: false, cacheSizesCorrected: true));
    }

    [Fact]
    public void CachesAreReportedWhenTheKernelListsThem()
    {
        using var tmp = new Mcir.Core.Tests.Embeddings.TempDir();
        Assert.False(OneDnnIsa.CachesReported(tmp.Path));
        Directory.CreateDirectory(Path.Combine(tmp.Path, "cpu0", "cache"));
        Assert.False(OneDnnIsa.CachesReported(tmp.Path));
        Directory.CreateDirectory(Path.Combine(tmp.Path, "cpu0", "cache", "index0"));
        Assert.True(OneDnnIsa.CachesReported(tmp.Path));
    }

    // Known-answer checks of the convolutions found wrong with some CPU/oneDNN kernel pairs, on this machine as the
    // engine configures it (OneDnnIsa, channels-last inputs). float32 against float64 on the same values; the sums
    // have ≤ 2,304 terms of N(0,1)·N(0,1), so float32 rounding stays below 1e-4 of the output scale; the faults seen
    // were off by O(10) or NaN.
    [Theory]
    [InlineData(256, 512, 14, 1, 2)]
    [InlineData(64, 64, 56, 3, 1)]
    [InlineData(128, 256, 28, 3, 2)]
    [InlineData(60, 60, 32, 3, 1)]
    [InlineData(24, 48, 32, 3, 1)]
    public void ChannelsLastConvolutionMatchesFloat64(int cin, int cout, int size, int kernel, int stride)
    {
        using var scope = NewDisposeScope();
        var gen = new Generator((ulong)(cin * 1000 + cout));
        var x = randn(new long[] { 2, cin, size, size }, generator: gen);
        var w = randn(new long[] { cout, cin, kernel, kernel }, generator: gen);
        long pad = kernel / 2;
        var expected = nn.functional.conv2d(x.to(ScalarType.Float64), w.to(ScalarType.Float64), null, [stride, stride], [pad, pad]);
        var got = nn.functional.conv2d(ChannelsLast.Of(x), w, null, [stride, stride], [pad, pad]).to(ScalarType.Float64);
        double err = (got - expected).abs().max().item<double>(), scale = expected.abs().max().item<double>();
        Assert.True(err <= 1e-4 * scale, $"conv {cin}->{cout} k{kernel} s{stride} on {size}x{size}: max |err| {err:E3}, scale {scale:E3} ({OneDnnIsa.Note}; {CpuFeatures.Machine.Describe()})");
    }
}
