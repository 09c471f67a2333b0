using System.Diagnostics;
using System.Globalization;
using System.Text;
using Mcir.Abstractions.Losses;
using Mcir.Core.Distributed;
using Mcir.Core.Losses;
using Mcir.Core.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Runs;

/// <summary>One row of <see cref="RankScalingBenchmark"/>: a number of ranks, their libtorch threads and the median step.</summary>
/// <param name="Ranks">MPI ranks.</param>
/// <param name="ThreadsPerRank">libtorch (OpenMP) threads of each rank.</param>
/// <param name="MedianStepSeconds">Median over the timed rounds of the slowest rank's step, seconds.</param>
/// <param name="GlobalBatch">Images per step, over all ranks.</param>
public sealed record RankScalingRow(int Ranks, int ThreadsPerRank, double MedianStepSeconds, int GlobalBatch)
{
    /// <summary>Training images per second (global batch / median step).</summary>
    public double ImagesPerSecond => GlobalBatch / MedianStepSeconds;
}

/// <summary>
/// <c>mcir-host bench --ranks 1,2</c>: how data-parallel training scales on this machine. For each rank count R the
/// benchmark launches <c>mpirun -np R --bind-to none</c> on mcir-host itself (<c>bench … --rank-worker</c>) with
/// <c>OMP_NUM_THREADS</c> = threads per rank (the logical processors / R unless given); every rank runs plain L1
/// training steps of the benchmark model on its slice of the same global batch, with the trainer's gradient all-reduce
/// (<see cref="DataParallel.AverageGradients"/>, through <see cref="Communicators.ForGradients"/>), and rank 0 reports
/// the median over the rounds of the slowest rank's step. Scaling efficiency is images/s per thread relative to the
/// first row (with threads split, the first row's step time over the row's).
/// </summary>
public static class RankScalingBenchmark
{
    /// <summary>The line rank 0 of a worker run prints on standard output for the parent to read.</summary>
    public const string ResultPrefix = "rank-scaling:";

    /// <summary>The hidden option that makes <c>bench</c> a worker rank.</summary>
    public const string WorkerOption = "--rank-worker";

    /// <summary>Parses a rank list such as <c>1,2,4</c>.</summary>
    /// <exception cref="McirException">Not a comma-separated list of distinct positive integers.</exception>
    public static IReadOnlyList<int> ParseRanks(string text, string where = "--ranks")
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var ranks = new List<int>();
        foreach (var p in parts)
        {
            if (!int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n < 1 || n > 4096)
                throw new McirException($"{where}: '{text}' is not a list of rank counts; expected positive integers separated by commas, e.g. 1,2");
            if (ranks.Contains(n)) throw new McirException($"{where}: '{text}' lists {n} twice");
            ranks.Add(n);
        }
        if (ranks.Count == 0) throw new McirException($"{where}: '{text}' is not a list of rank counts; expected positive integers separated by commas, e.g. 1,2");
        return ranks;
    }

    /// <summary>Threads per rank: <paramref name="given"/>, else the logical processors split between the ranks (at least 1).</summary>
    public static int ThreadsPerRank(int ranks, int? given, int processors) => given ?? Math.Max(1, processors / ranks);

    /// <summary>
    /// The command that runs this mcir-host again: the <c>mcir-host</c> executable next to <paramref name="hostAssembly"/>,
    /// else <c>dotnet &lt;assembly&gt;</c> (a dotnet tool install has no executable there).
    /// </summary>
    public static IReadOnlyList<string> SelfCommand(System.Reflection.Assembly hostAssembly)
    {
        string dll = hostAssembly.Location;
        string exe = Path.Combine(Path.GetDirectoryName(dll)!, "mcir-host");
        if (File.Exists(exe)) return [exe];
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host
            : Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet" ? Environment.ProcessPath! : "dotnet";
        return [dotnet, dll];
    }

    /// <summary>
    /// The parent: one <c>mpirun</c> launch per entry of <paramref name="ranks"/>, each running
    /// <paramref name="self"/> with <paramref name="benchArguments"/> (the <c>bench</c> command line) and
    /// <see cref="WorkerOption"/>; the ranks' progress goes to <paramref name="log"/>.
    /// </summary>
    /// <exception cref="McirException">mpirun is missing, the global batch does not divide, or a launch failed.</exception>
    public static IReadOnlyList<RankScalingRow> Run(IReadOnlyList<string> self, IReadOnlyList<string> benchArguments, IReadOnlyList<int> ranks,
        int? threadsPerRank, int globalBatch, TextWriter log)
    {
        foreach (int r in ranks)
            if (globalBatch % r != 0)
                throw new McirException($"--ranks: the global batch {globalBatch} (--batch) does not split evenly over {r} ranks");
        if (threadsPerRank is < 1) throw new McirException($"--threads-per-rank: must be 1 or more, got {threadsPerRank}");
        string mpirun = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, "mpirun")).FirstOrDefault(File.Exists)
            ?? throw new McirException("--ranks: mpirun was not found on PATH; install Open MPI (Debian/Ubuntu: apt-get install openmpi-bin) or load your cluster's MPI module");
        var rows = new List<RankScalingRow>();
        foreach (int r in ranks)
        {
            int threads = ThreadsPerRank(r, threadsPerRank, Environment.ProcessorCount);
            log.WriteLine($"bench --ranks: {r} rank(s) x {threads} thread(s): mpirun -np {r} --bind-to none …");
            var psi = new ProcessStartInfo(mpirun) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { "-np", r.ToString(CultureInfo.InvariantCulture), "--bind-to", "none" }) psi.ArgumentList.Add(a);
            foreach (var a in self) psi.ArgumentList.Add(a);
            foreach (var a in benchArguments) psi.ArgumentList.Add(a);
            psi.ArgumentList.Add(WorkerOption);
            psi.Environment["OMP_NUM_THREADS"] = threads.ToString(CultureInfo.InvariantCulture);
            // Open MPI: ranks may outnumber the slots it counts (e.g. hardware threads), and root may run them
            // (a local measurement, as containers run it); other MPIs ignore these variables.
            psi.Environment["OMPI_MCA_rmaps_base_oversubscribe"] = "1";
            if (Environment.UserName == "root")
            {
                psi.Environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1";
                psi.Environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
            }
            using var p = Process.Start(psi)!;
            var stdout = new StringBuilder();
            var errors = new List<string>();
            p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (stdout) stdout.AppendLine(e.Data); };
            p.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is null) return;
                lock (errors) errors.Add(e.Data);
                lock (log) log.WriteLine($"  {e.Data}");
            };
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            p.WaitForExit();
            // mpirun forwards the ranks' output through a pseudo-terminal: the line may follow terminal control codes.
            string? result = stdout.ToString().Split('\n').Where(l => l.Contains(ResultPrefix, StringComparison.Ordinal))
                .Select(l => l[l.IndexOf(ResultPrefix, StringComparison.Ordinal)..].Trim()).FirstOrDefault();
            if (p.ExitCode != 0 || result is null)
            {
                string why;
                lock (errors) why = errors.LastOrDefault(l => l.StartsWith("error:", StringComparison.Ordinal)) ?? errors.LastOrDefault() ?? "no output";
                throw new McirException($"--ranks: the {r}-rank launch failed (mpirun exit {p.ExitCode}): {why}");
            }
            rows.Add(ParseResult(result, globalBatch));
        }
        return rows;
    }

    /// <summary>A worker's result line (<see cref="ResultPrefix"/> ranks=R threads=T median=S).</summary>
    public static RankScalingRow ParseResult(string line, int globalBatch)
    {
        var fields = line[ResultPrefix.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(f => f.Split('=', 2)).ToDictionary(f => f[0], f => f.Length > 1 ? f[1] : "");
        return new RankScalingRow(int.Parse(fields["ranks"], CultureInfo.InvariantCulture), int.Parse(fields["threads"], CultureInfo.InvariantCulture),
            double.Parse(fields["median"], CultureInfo.InvariantCulture), globalBatch);
    }

    /// <summary>
    /// One worker rank (collective: every rank of the launch calls it): builds the model (the same seed everywhere, so
    /// the same weights), takes its slice of one global batch of random LR/GT patches, runs <paramref name="warmup"/>
    /// then <paramref name="rounds"/> plain L1 training steps (zero_grad, forward, L1, backward, gradient all-reduce,
    /// Adam), and on rank 0 prints the <see cref="ResultPrefix"/> line to <paramref name="output"/>.
    /// </summary>
    public static RankScalingRow RunWorker(ICommunicator comm, Func<nn.Module<Tensor, Tensor>> createModel, int globalBatch, int lrSize, int scale,
        int rounds, Device device, TextWriter output, TextWriter log, int warmup = 3)
    {
        if (globalBatch % comm.Size != 0)
            throw new McirException($"--ranks: the global batch {globalBatch} (--batch) does not split evenly over {comm.Size} ranks");
        if (Environment.GetEnvironmentVariable("OMP_NUM_THREADS") is { } env && int.TryParse(env, out int t) && t > 0) set_num_threads(t);
        if (!comm.IsRoot) log = TextWriter.Null;
        int local = globalBatch / comm.Size;
        using var gen = new Generator(7);
        using var lqAll = rand(new long[] { globalBatch, 3, lrSize, lrSize }, generator: gen);
        using var gtAll = rand(new long[] { globalBatch, 3, lrSize * scale, lrSize * scale }, generator: gen);
        using var lq = lqAll.narrow(0, comm.Rank * local, local).contiguous().to(device);
        using var gt = gtAll.narrow(0, comm.Rank * local, local).contiguous().to(device);
        manual_seed(0);
        using var net = createModel();
        if (device.type != DeviceType.CPU) net.to(device);
        var gradients = Communicators.ForGradients(comm, "auto", device, log);
        using var ownGradients = ReferenceEquals(gradients, comm) ? null : gradients;
        var parameters = net.parameters().ToList();
        var adam = optim.Adam(parameters, 1e-4, 0.9, 0.99);
        var l1 = new L1Loss();

        double Step() => StepGcRegion.NoCollectionDuring(() =>
        {
            net.train();
            var sw = Stopwatch.StartNew();
            using (var scope = NewDisposeScope())
            {
                net.zero_grad(set_to_none: true); // as the trainer does
                var input = Compute.ConvolutionLayout.ForModel(lq);
                var output = net.call(input);
                l1.Compute(new LossContext(output, gt, input, null)).Value.backward();
                DataParallel.AverageGradients(gradients, parameters);
                adam.step();
            }
            if (device.type == DeviceType.CUDA) cuda.synchronize();
            var slowest = new[] { sw.Elapsed.TotalSeconds };
            gradients.AllReduceMax(slowest); // the step ends for the job when its slowest rank is done
            return slowest[0];
        });

        for (int i = 0; i < warmup; i++) Step();
        var times = new List<double>();
        for (int r = 0; r < rounds; r++)
        {
            times.Add(Step());
            log.WriteLine($"round {r + 1}/{rounds}: {times[^1]:F3} s ({comm.Size} rank(s) x {get_num_threads()} thread(s))");
        }
        double median = StepBenchmark.Median(times);
        var row = new RankScalingRow(comm.Size, get_num_threads(), median, globalBatch);
        if (comm.IsRoot)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{ResultPrefix} ranks={row.Ranks} threads={row.ThreadsPerRank} median={row.MedianStepSeconds:R}"));
            output.Flush();
        }
        return row;
    }

    /// <summary>The table: ranks × threads, median step, images/s and scaling efficiency (images/s per thread relative to the first row).</summary>
    public static string FormatTable(IReadOnlyList<RankScalingRow> rows)
    {
        var sb = new StringBuilder();
        sb.AppendLine("ranks x threads   median step (s)   images/s   scaling efficiency");
        if (rows.Count == 0) return sb.ToString();
        var first = rows[0];
        double perThread0 = first.ImagesPerSecond / (first.Ranks * first.ThreadsPerRank);
        foreach (var row in rows)
        {
            double efficiency = row.ImagesPerSecond / (row.Ranks * row.ThreadsPerRank) / perThread0;
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"{$"{row.Ranks} x {row.ThreadsPerRank}",-15} {row.MedianStepSeconds,17:F3} {row.ImagesPerSecond,10:F2} {efficiency,20:F2}"));
        }
        return sb.ToString();
    }
}
