using System.Runtime;
using Mcir.Core.Training;

namespace Mcir.Core.Tests.Training;

/// <summary>
/// One training iteration runs without garbage collections, so TorchSharp's implicitly created Scalars cannot be
/// finalized while libtorch still uses them (see <c>StepGcRegion.NoCollectionDuring</c>).
/// </summary>
[Collection(nameof(NoCollectionDuringStepTests))] // the no-GC region is process-wide
[CollectionDefinition(nameof(NoCollectionDuringStepTests), DisableParallelization = true)]
public class NoCollectionDuringStepTests
{
    [Fact]
    public void AStepRunsInANoGcRegionAndCollectionsResumeAfterIt()
    {
        int collections = -1;
        var mode = StepGcRegion.NoCollectionDuring(() =>
        {
            int before = GC.CollectionCount(0);
            var keep = new List<byte[]>();
            for (int i = 0; i < 64; i++) keep.Add(new byte[64 * 1024]); // 4 MB, well inside the budget
            collections = GC.CollectionCount(0) - before;
            GC.KeepAlive(keep);
            return GCSettings.LatencyMode;
        });
        Assert.Equal(GCLatencyMode.NoGCRegion, mode);
        Assert.Equal(0, collections);
        Assert.NotEqual(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode);
    }

    [Fact]
    public void TheStepsGarbageIsCollectedRightAfterIt()
    {
        // Without the collection after the region, one region per iteration meant almost no collections at all, and the
        // garbage TorchSharp leaves to the finalizer kept its native memory (bench --long: RSS growing without bound).
        int before = GC.CollectionCount(0);
        var garbage = StepGcRegion.NoCollectionDuring(() => new WeakReference(new byte[1024]));
        Assert.False(garbage.IsAlive);
        Assert.True(GC.CollectionCount(0) > before);
    }

    [Fact]
    public void ExceedingTheBudgetCollectsAsUsualAndEndsCleanly()
    {
        long total = 0;
        StepGcRegion.NoCollectionDuring(() =>
        {
            for (int i = 0; i < 48; i++) total += new byte[4 << 20].Length; // 192 MB > the 128 MB budget
            return 0;
        });
        Assert.True(total > StepGcRegion.AllocationBudget);
        Assert.NotEqual(GCLatencyMode.NoGCRegion, GCSettings.LatencyMode);
        Assert.Equal(7, StepGcRegion.NoCollectionDuring(() => 7)); // and the next step gets its region again
    }
}
