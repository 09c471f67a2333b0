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
    /// <summary><see cref="NegativePrecision.Auto"/> made concrete for <paramref name="cpu"/> (this machine when null); others as they are.</summary>
    public static NegativePrecision Resolve(this NegativePrecision p, CpuFeatures? cpu = null) =>
        p != NegativePrecision.Auto ? p
        : (cpu ?? CpuFeatures.Machine).NativeBFloat16 ? NegativePrecision.BFloat16 : NegativePrecision.Float32;

    /// <summary>The tensor dtype of the resolved precision.</summary>
    public static ScalarType ToScalarType(this NegativePrecision p) => p.Resolve() == NegativePrecision.BFloat16 ? ScalarType.BFloat16 : ScalarType.Float32;

    /// <summary>
    /// One line for the run log and <c>bench</c>: what the setting resolved to on this CPU, and a plain warning when
    /// bfloat16 is asked for explicitly on a CPU that only emulates it.
    /// </summary>
    public static string Describe(this NegativePrecision p, CpuFeatures? cpu = null)
    {
        cpu ??= CpuFeatures.Machine;
        var resolved = p.Resolve(cpu);
        string name = resolved == NegativePrecision.BFloat16 ? "bfloat16" : "float32";
        if (p == NegativePrecision.Auto)
            return $"negatives in {name} (auto: this CPU {(cpu.NativeBFloat16 ? "has" : "has no")} native bfloat16)";
        if (resolved == NegativePrecision.BFloat16 && !cpu.NativeBFloat16)
            return "negatives in bfloat16, EMULATED: this CPU has no AVX512-BF16/AMX-BF16, so bfloat16 is several times slower than float32 here (use auto or float32)";
        return $"negatives in {name}";
    }
}
