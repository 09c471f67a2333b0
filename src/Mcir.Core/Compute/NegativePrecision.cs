using System.Text.Json.Serialization;
using static TorchSharp.torch;

namespace Mcir.Core.Compute;

/// <summary>
/// Arithmetic of the no-gradient passes that make hard negatives (negative models' forwards, their embedding
/// features). <c>float32</c> reproduces the authors' numbers; <c>bfloat16</c> halves their cost on CPUs with
/// AVX512-BF16/AMX (negatives are approximations by nature; gradients still flow in float32 through φ(f(x))).
/// </summary>
public enum NegativePrecision
{
    [JsonStringEnumMemberName("float32")] Float32,
    [JsonStringEnumMemberName("bfloat16")] BFloat16,
}

public static class NegativePrecisionExtensions
{
    public static ScalarType ToScalarType(this NegativePrecision p) => p == NegativePrecision.BFloat16 ? ScalarType.BFloat16 : ScalarType.Float32;
}
