namespace Mcir.Core.Training;

/// <summary>The no-GC region each training iteration runs in (<see cref="Trainer"/>'s step).</summary>
internal static class StepGcRegion
{
    /// <summary>Managed bytes one iteration may allocate without a garbage collection (see <see cref="NoCollectionDuring{T}"/>).</summary>
    internal const long AllocationBudget = 128L << 20;

    /// <summary>
    /// Runs one iteration inside a no-GC region, so no finalizer can run for an object of this iteration while libtorch
    /// still uses its native memory. TorchSharp turns numbers into <c>Scalar</c>s implicitly (<c>x + y</c> passes
    /// alpha 1, optimizers pass their rates) and leaves them to the finalizer; a collection during the native call can
    /// free one in use (libtorch then fails with <c>Scalar::toFloat</c> "Expected false to be true", or reads garbage;
    /// dotnet/TorchSharp#1434). Collections happen between iterations instead. When the iteration (or another thread,
    /// e.g. the batch prefetcher) allocates more than <see cref="AllocationBudget"/>, the runtime collects anyway,
    /// as without the region.
    /// </summary>
    internal static T NoCollectionDuring<T>(Func<T> step)
    {
        bool region = false;
        try { region = GC.TryStartNoGCRegion(AllocationBudget, disallowFullBlockingGC: true); }
        catch (InvalidOperationException) { /* already in a region (nested use) */ }
        catch (ArgumentOutOfRangeException) { /* budget above this runtime's limit: run without */ }
        try { return step(); }
        finally
        {
            if (region && System.Runtime.GCSettings.LatencyMode == System.Runtime.GCLatencyMode.NoGCRegion)
            {
                try { GC.EndNoGCRegion(); }
                catch (InvalidOperationException) { /* the budget was exceeded and a collection ended the region */ }
            }
        }
    }
}
