using Mcir.Core.Compute;
using Mcir.Core.ModelContrast;
using Mcir.Core.Runs;
using static TorchSharp.torch;

namespace Mcir.Host.Commands;

/// <summary><c>mcir-host bench --long N</c>: N L1 + SPN training iterations with the process's resident memory sampled (<see cref="MemoryGrowthRun"/>).</summary>
internal static class BenchLong
{
    /// <summary>Every how many iterations memory is sampled.</summary>
    internal const int RecordEvery = 100;

    public static int Run(HostConsole console, Func<nn.Module<Tensor, Tensor>> createModel, SpnLossOptions spn, int negatives,
        int batch, int lrSize, int scale, long iterations, NegativePrecision precision, Device device)
    {
        console.Error.WriteLine($"bench --long: {iterations} L1 + SPN iterations; memory sampled every {RecordEvery} iterations");
        var result = MemoryGrowthRun.Run(createModel, spn, negatives, batch, lrSize, scale, iterations, RecordEvery,
            r => console.Out.WriteLine($"iteration {r.Iteration}: RSS {Mb(r.RssBytes)} MB, managed heap {Mb(r.ManagedHeapBytes)} MB, live tensors {r.LiveTensors}, pending finalizers {r.PendingFinalizers}{(r.HeapReservedBytes is { } h ? $", native heap held {Mb(h)} MB" : "")}"),
            precision, device);
        var (w, f) = (result.Warmup, result.Final);
        console.Out.WriteLine($"cpu: {CpuFeatures.Machine.Describe()}");
        console.Out.WriteLine($"threads: {get_num_threads()} libtorch threads; {OneDnnIsa.Note}; {result.Seconds / iterations:F3} s/iteration");
        console.Out.WriteLine($"RSS after warm-up (iteration {w.Iteration}): {Mb(w.RssBytes)} MB; final (iteration {f.Iteration}): {Mb(f.RssBytes)} MB; growth {result.GrowthPercent:+0.00;-0.00;0.00} %");
        if (w.HeapReservedBytes is { } hw && f.HeapReservedBytes is { } hf)
            console.Out.WriteLine($"native heap held after warm-up: {Mb(hw)} MB; final: {Mb(hf)} MB; growth {100.0 * (hf - hw) / hw:+0.00;-0.00;0.00} %");
        return 0;
    }

    private static string Mb(long bytes) => (bytes / 1048576.0).ToString("F1", System.Globalization.CultureInfo.InvariantCulture);
}
