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
    /// as without the region. After the region a generation-1 collection runs (below).
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
            // A region that starts with its budget free starts without a collection, so with one region per iteration
            // the runtime would hardly ever collect: the iterations' garbage that TorchSharp leaves to the finalizer
            // (Scalars, parameter handles) piled up with its native memory, and the process's RSS grew by megabytes per
            // iteration (bench --long). A collection of the young generations (0 and 1) between iterations lets the finalizer free it.
            if (region)
            {
                GC.Collect(1, GCCollectionMode.Forced, blocking: true);
                GC.WaitForPendingFinalizers();
            }
        }
    }
}
