using System.Runtime.CompilerServices;

namespace Mcir.Core.Tests;

internal static class EngineCpuSettings
{
    /// <summary>The engine's CPU-specific libtorch settings, before any test of this assembly runs a kernel.</summary>
    [ModuleInitializer]
    internal static void Apply() => Mcir.Core.Compute.OneDnnIsa.EnsureApplied();
}
