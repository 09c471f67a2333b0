using System.Text.Json.Serialization;
using static TorchSharp.torch;

namespace Mcir.Core.Compute;

/// <summary>
/// Arithmetic of the no-gradient passes that make hard negatives (negative models' forwards, their embedding
/// features). <c>float32</c> reproduces the authors' numbers (the default); <c>bfloat16</c> halves their cost on CPUs
/// with AVX512-BF16/AMX (negatives are approximations by nature; gradients still flow in float32 through φ(f(x))) but
/// is emulated, and several times slower, elsewhere; <c>auto</c> is bfloat16 where the CPU has it natively, else float32
/// (<see cref="CpuFeatures.NativeBFloat16"/>).
/// </summary>
public enum NegativePrecision
{
    [JsonStringEnumMemberName("float32")] Float32,
    [JsonStringEnumMemberName("bfloat16")] BFloat16,
    [JsonStringEnumMemberName("auto")] Auto,
}

public static class NegativePrecisionExtensions
{
    /// <summary>Environment variable that fixes what <see cref="NegativePrecision.Auto"/> resolves to in this process
    /// (<c>float32</c> | <c>bfloat16</c>): set by the probe for its children (<see cref="IsaProbe"/>).</summary>
    public const string AutoVariable = "MCIR_AUTO_PRECISION";

    /// <summary>What <see cref="NegativePrecision.Auto"/> resolves to when measured (<see cref="ApplyAuto"/>, or
    /// <see cref="AutoVariable"/>); null: by the CPU's native bfloat16.</summary>
    public static NegativePrecision? AutoChoice { get; private set; } =
        Environment.GetEnvironmentVariable(AutoVariable)?.Trim().ToLowerInvariant() switch
        {
            "float32" => NegativePrecision.Float32,
            "bfloat16" => NegativePrecision.BFloat16,
            _ => null,
        };

    /// <summary>Makes <see cref="NegativePrecision.Auto"/> resolve to <paramref name="p"/> (float32 or bfloat16) in this process.</summary>
    public static void ApplyAuto(NegativePrecision p) =>
        AutoChoice = p == NegativePrecision.Auto ? throw new ArgumentException("auto is not a concrete precision", nameof(p)) : p;

    /// <summary>Back to resolving <see cref="NegativePrecision.Auto"/> by the CPU (tests).</summary>
    internal static void ResetAuto() => AutoChoice = null;

    /// <summary>
    /// <see cref="NegativePrecision.Auto"/> made concrete: bfloat16 where bfloat16 kernels are native — for
    /// <paramref name="cpu"/> when given, else for this process (this machine's CPU, and no oneDNN ISA cap below its
    /// bfloat16 kernels: <see cref="OneDnnIsa.CapsBelowBFloat16"/>); other values as they are.
    /// </summary>
    public static NegativePrecision Resolve(this NegativePrecision p, CpuFeatures? cpu = null) =>
        p != NegativePrecision.Auto ? p
        : cpu is null && AutoChoice is { } measured ? measured
        : NativeBFloat16(cpu) ? NegativePrecision.BFloat16 : NegativePrecision.Float32;

    private static bool NativeBFloat16(CpuFeatures? cpu) =>
        cpu is not null ? cpu.NativeBFloat16 : CpuFeatures.Machine.NativeBFloat16 && !OneDnnIsa.CapsBelowBFloat16;

    /// <summary>The tensor dtype of the resolved precision.</summary>
    public static ScalarType ToScalarType(this NegativePrecision p) => p.Resolve() == NegativePrecision.BFloat16 ? ScalarType.BFloat16 : ScalarType.Float32;

    /// <summary>
    /// One line for the run log and <c>bench</c>: what the setting resolved to on this CPU, and a plain warning when
    /// bfloat16 is asked for explicitly on a CPU that only emulates it.
    /// </summary>
    public static string Describe(this NegativePrecision p, CpuFeatures? cpu = null)
    {
        bool native = NativeBFloat16(cpu);
        var resolved = p.Resolve(cpu);
        string name = resolved == NegativePrecision.BFloat16 ? "bfloat16" : "float32";
        string why = cpu is null && AutoChoice is not null ? "chosen by measurement on this machine, see the compute settings"
            : native ? "this CPU has native bfloat16"
            : cpu is null && CpuFeatures.Machine.NativeBFloat16 ? "bfloat16 kernels are off under the oneDNN ISA cap"
            : "this CPU has no native bfloat16";
        if (p == NegativePrecision.Auto)
            return $"negatives in {name} (auto: {why})";
        if (resolved == NegativePrecision.BFloat16 && !native)
            return $"negatives in bfloat16, EMULATED ({why}), so bfloat16 is several times slower than float32 here (use auto or float32)";
        return $"negatives in {name}";
    }
}
