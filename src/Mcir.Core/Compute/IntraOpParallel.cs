using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace Mcir.Core.Compute;

/// <summary>
/// The engine's CPU kernels' parallel loop, run on libtorch's own intra-op threads (its OpenMP team, through libgomp's
/// <c>GOMP_parallel</c>, as ATen's <c>at::parallel_for</c> runs) instead of .NET's thread pool. On a machine with as many
/// cores as libtorch threads, a .NET <c>Parallel.For</c> between two libtorch operations runs beside libtorch's OpenMP
/// workers, which still spin-wait for their next region (libgomp's <c>GOMP_SPINCOUNT</c>): three busy threads on two
/// cores. Measured on a 2-vCPU Zen 5 guest, EDSR-light ×4 training step: libgomp's spinning took 10 % of the samples,
/// much of it while the Winograd transforms ran on the main thread and one thread-pool worker.
/// </summary>
/// <remarks>
/// The body is managed code called from native threads (<c>UnmanagedCallersOnly</c>); once an exception in it is
/// seen no thread starts another index, and the first is rethrown on the calling thread. Indices are handed out one at a time (an atomic
/// counter), so uneven rows balance. Used where libtorch on Linux was built with OpenMP and its libgomp is loaded
/// (TorchSharp's CPU packages); elsewhere, from inside an OpenMP region, or with <c>MCIR_INTRA_OP=dotnet</c>, the
/// loop is .NET's <c>Parallel.For</c> as before.
/// </remarks>
public static unsafe class IntraOpParallel
{
    /// <summary>Environment variable: <c>openmp</c> (default: libtorch's OpenMP team where available) or <c>dotnet</c> (.NET's thread pool).</summary>
    public const string Variable = "MCIR_INTRA_OP";

    private static readonly Lazy<nint> Parallel = new(() => ResolveGomp("GOMP_parallel"));
    private static readonly Lazy<nint> InParallel = new(() => ResolveGomp("omp_in_parallel"));

    // The variable is read once: the route is fixed for the process.
    private static readonly bool DotnetChosen =
        string.Equals(Environment.GetEnvironmentVariable(Variable), "dotnet", StringComparison.OrdinalIgnoreCase);

    /// <summary>Null for an unset, <c>openmp</c> or <c>dotnet</c> value of <see cref="Variable"/> (any case), else the error line (the host prints it and exits with 1).</summary>
    public static string? ConfigurationError => ErrorFor(Environment.GetEnvironmentVariable(Variable));

    internal static string? ErrorFor(string? value) =>
        value is { Length: > 0 } v && !v.Equals("openmp", StringComparison.OrdinalIgnoreCase) && !v.Equals("dotnet", StringComparison.OrdinalIgnoreCase)
            ? $"{Variable}: expected 'openmp' or 'dotnet', got '{v}'"
            : null;

    /// <summary>Whether loops run on libtorch's OpenMP team in this process (else on .NET's thread pool).</summary>
    public static bool OnOpenMp => (Override ?? !DotnetChosen) && Parallel.Value != 0 && InParallel.Value != 0;

    /// <summary>One clause for run logs and <c>bench</c>: where the engine's own CPU kernels run their loops.</summary>
    public static string Note => OnOpenMp ? "engine kernels on libtorch's OpenMP threads"
        : Override is null && DotnetChosen ? $"engine kernels on .NET's thread pool ({Variable}=dotnet)"
        : "engine kernels on .NET's thread pool (no libgomp loaded)";

    // Tests and measurements: forces the route for this process (null: MCIR_INTRA_OP's).
    internal static bool? Override { get; set; }

    /// <summary>
    /// Runs <paramref name="body"/> for every index in [<paramref name="from"/>, <paramref name="to"/>), on up to
    /// <paramref name="threads"/> threads (libtorch's when <see cref="OnOpenMp"/>), and returns when all have run.
    /// </summary>
    /// <exception cref="AggregateException">Not thrown: the body's first exception is rethrown as it is.</exception>
    public static void For(long from, long to, int threads, Action<long> body)
    {
        ArgumentNullException.ThrowIfNull(body);
        long count = to - from;
        if (count <= 0) return;
        threads = (int)Math.Min(Math.Max(1, threads), count);
        if (threads == 1)
        {
            for (long i = from; i < to; i++) body(i);
            return;
        }
        if (!OnOpenMp || ((delegate* unmanaged<int>)InParallel.Value)() != 0)
        {
            System.Threading.Tasks.Parallel.For(from, to, new ParallelOptions { MaxDegreeOfParallelism = threads }, body);
            return;
        }
        var work = new Work(body, from, to);
        var handle = GCHandle.Alloc(work);
        try
        {
            ((delegate* unmanaged<delegate* unmanaged<nint, void>, nint, uint, uint, void>)Parallel.Value)(&Run, GCHandle.ToIntPtr(handle), (uint)threads, 0);
        }
        finally { handle.Free(); }
        if (work.Error is { } e) ExceptionDispatchInfo.Throw(e);
    }

    private sealed class Work(Action<long> body, long from, long to)
    {
        public readonly Action<long> Body = body;
        public readonly long End = to;
        public long Next = from;
        public Exception? Error;
    }

    [UnmanagedCallersOnly]
    private static void Run(nint data)
    {
        var work = (Work)GCHandle.FromIntPtr(data).Target!;
        try
        {
            long i;
            while (Volatile.Read(ref work.Error) is null && (i = Interlocked.Increment(ref work.Next) - 1) < work.End) work.Body(i);
        }
        catch (Exception e)
        {
            Interlocked.CompareExchange(ref work.Error, e, null);
        }
    }

    // A function of the libgomp libtorch loaded (its file name carries a hash in TorchSharp's packages), or 0.
    private static nint ResolveGomp(string entryPoint)
    {
        if (!OperatingSystem.IsLinux()) return 0;
        _ = get_num_threads(); // loads libtorch and its libgomp
        if (OneDnnCacheSizes.LoadedLibrary(name => name.StartsWith("libgomp", StringComparison.Ordinal)) is not { } lib) return 0;
        return NativeLibrary.TryLoad(lib.Path, out var handle) && NativeLibrary.TryGetExport(handle, entryPoint, out var f) ? f : 0;
    }
}
