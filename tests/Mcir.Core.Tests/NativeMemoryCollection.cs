namespace Mcir.Core.Tests;

/// <summary>
/// Tests that measure process-wide memory (RSS), use the global torch generator or toggle libtorch or engine switches run in this collection: xunit runs
/// it alone, after the parallel test classes, so other tests cannot disturb the measurement.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class NativeMemoryCollection
{
    public const string Name = "NativeMemory";
}
