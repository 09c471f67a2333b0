using System.Globalization;
using Mcir.Core.Losses;
using Mcir.Core.ModelContrast;
using Mcir.Core.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Runs;

/// <summary>One sample of <see cref="MemoryGrowthRun"/>: the process's memory after <paramref name="Iteration"/> iterations.</summary>
/// <param name="Iteration">Iterations completed (1-based).</param>
/// <param name="RssBytes">Resident set size, bytes (<c>VmRSS</c> of <c>/proc/self/status</c>).</param>
/// <param name="ManagedHeapBytes">The .NET heap size after the last collection, bytes (<see cref="GCMemoryInfo.HeapSizeBytes"/>).</param>
/// <param name="LiveTensors">Tensors of this thread not yet disposed (TorchSharp's <c>DisposeScopeManager.Statistics.ThreadTotalLiveCount</c>).</param>
/// <param name="PendingFinalizers">Objects the last collection found ready for finalization (<see cref="GCMemoryInfo.FinalizationPendingCount"/>):
/// TorchSharp objects left to the finalizer hold native memory until it runs.</param>
/// <param name="HeapReservedBytes">What glibc's malloc holds from the system (<see cref="Compute.NativeHeap.ReservedBytes"/>), bytes; null off glibc.</param>
public sealed record MemoryRecord(long Iteration, long RssBytes, long ManagedHeapBytes, long LiveTensors, long PendingFinalizers, long? HeapReservedBytes = null);

/// <summary>What <see cref="MemoryGrowthRun.Run"/> measured.</summary>
/// <param name="Records">Every sample, in order (every <c>recordEvery</c> iterations, plus the warm-up and the last iteration).</param>
/// <param name="WarmupIteration">The iteration whose sample is the baseline: min(N / 10, 1000), at least 1.</param>
/// <param name="Seconds">Wall time of the N iterations, seconds.</param>
public sealed record MemoryGrowthResult(IReadOnlyList<MemoryRecord> Records, long WarmupIteration, double Seconds)
{
    /// <summary>The sample at <see cref="WarmupIteration"/>.</summary>
    public MemoryRecord Warmup => Records.First(r => r.Iteration == WarmupIteration);

    /// <summary>The sample after the last iteration.</summary>
    public MemoryRecord Final => Records[^1];

    /// <summary>RSS growth from the warm-up sample to the final one, percent of the warm-up RSS.</summary>
    public double GrowthPercent => 100.0 * (Final.RssBytes - Warmup.RssBytes) / Warmup.RssBytes;
}

/// <summary>
/// A long L1 + SPN training loop that samples the process's resident memory, to show whether memory keeps growing
/// (<c>mcir-host bench --long N</c>). Each iteration is the trainer's: a full step (zero_grad, forward, the negatives'
/// forward, L1 + SPN, backward, Adam) in <see cref="StepBenchmark"/>'s stepper, then the negative bank's
/// <see cref="NegativeBank.OnIterationEnd"/> (EMA updates at the paper's periods 100, 500, 1000, 2000 for K ≤ 4,
/// else every 100·(j+1)), all inside the trainer's per-iteration no-GC region (<see cref="StepGcRegion"/>). One fixed
/// random batch is used (no data loading). Linux only (reads <c>/proc/self/status</c>).
/// </summary>
public static class MemoryGrowthRun
{
    /// <summary>Runs <paramref name="iterations"/> iterations (≥ 1) and samples memory every <paramref name="recordEvery"/> iterations.</summary>
    public static MemoryGrowthResult Run(Func<nn.Module<Tensor, Tensor>> createModel, SpnLossOptions spnOptions, int negatives,
        int batch, int lrSize, int scale, long iterations, int recordEvery = 100, Action<MemoryRecord>? onRecord = null,
        Compute.NegativePrecision negativePrecision = Compute.NegativePrecision.Float32, Device? device = null)
    {
        if (iterations < 1) throw new McirException($"--long {iterations}: expected 1 or more iterations");
        if (negatives < 1) throw new McirException($"--negatives {negatives}: expected 1 or more");
        device ??= CPU;
        long warmupAt = Math.Max(1, Math.Min(iterations / 10, 1000));
        using var gen = new Generator(7);
        using var lq = rand(new long[] { batch, 3, lrSize, lrSize }, generator: gen).to(device);
        using var gt = rand(new long[] { batch, 3, lrSize * scale, lrSize * scale }, generator: gen).to(device);
        manual_seed(0);
        using var net = createModel();
        if (device.type != DeviceType.CPU) net.to(device);
        using var spn = SpnLoss.FromOptions(spnOptions with { NegativePrecision = negativePrecision });
        spn.To(device);
        var steps = negatives <= NegativeBankOptions.PaperSteps.Count
            ? NegativeBankOptions.PaperSteps.Take(negatives).ToArray()
            : Enumerable.Range(0, negatives).Select(j => 100L * (j + 1)).ToArray();
        using var bank = NegativeBank.Create(net, new NegativeBankOptions { Steps = steps, Precision = negativePrecision });
        var stepper = new StepBenchmark.Stepper(net, [new L1Loss(), spn], bank, lq, gt);

        var records = new List<MemoryRecord>();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (long it = 1; it <= iterations; it++)
        {
            long i = it;
            StepGcRegion.NoCollectionDuring(() =>
            {
                stepper.Step();
                bank.OnIterationEnd(i, net);
                return 0;
            });
            if (it % recordEvery == 0 || it == warmupAt || it == iterations)
            {
                var gc = GC.GetGCMemoryInfo();
                var record = new MemoryRecord(it, ResidentBytes(), gc.HeapSizeBytes, DisposeScopeManager.Statistics.ThreadTotalLiveCount,
                    gc.FinalizationPendingCount, Compute.NativeHeap.ReservedBytes());
                records.Add(record);
                onRecord?.Invoke(record);
            }
        }
        return new MemoryGrowthResult(records, warmupAt, clock.Elapsed.TotalSeconds);
    }

    /// <summary>This process's resident set size in bytes (<c>VmRSS</c> of <c>/proc/self/status</c>).</summary>
    /// <exception cref="McirException">Not on Linux (no <c>/proc/self/status</c> with a VmRSS line).</exception>
    public static long ResidentBytes()
    {
        const string status = "/proc/self/status";
        if (File.Exists(status))
            foreach (var line in File.ReadLines(status))
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    // "VmRSS:	  123456 kB"
                    var parts = line["VmRSS:".Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    return long.Parse(parts[0], CultureInfo.InvariantCulture) * 1024;
                }
        throw new McirException($"{status}: no VmRSS line; the resident memory is read from Linux's /proc");
    }
}
