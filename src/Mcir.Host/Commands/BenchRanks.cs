using System.CommandLine;
using Mcir.Core.Distributed;
using Mcir.Core.Runs;
using static TorchSharp.torch;

namespace Mcir.Host.Commands;

/// <summary><c>mcir-host bench --ranks 1,2</c>: the parent that launches the MPI runs and prints the table, or one worker rank (<see cref="RankScalingBenchmark"/>).</summary>
internal static class BenchRanks
{
    public static Option<string?> RanksOption() => new("--ranks")
    {
        Description = "Data-parallel scaling instead: plain L1 steps under mpirun with each number of ranks listed (e.g. 1,2), the global --batch split between them",
    };

    public static Option<int?> ThreadsOption() => new("--threads-per-rank")
    {
        Description = "libtorch threads of each rank with --ranks (default: the logical processors divided by the ranks)",
    };

    public static Option<bool> WorkerOption() => new(RankScalingBenchmark.WorkerOption) { Hidden = true };

    public static int Run(ParseResult r, HostConsole console, string ranksText, int? threadsPerRank, bool worker,
        Func<nn.Module<Tensor, Tensor>> createModel, int batch, int lrSize, int scale, int rounds, Device device, string description)
    {
        var ranks = RankScalingBenchmark.ParseRanks(ranksText);
        if (!worker)
        {
            console.Error.WriteLine($"bench --ranks {string.Join(",", ranks)}: {description}, plain L1 steps, global batch {batch} of {lrSize}x{lrSize} LR patches, {rounds} rounds after 3 warm-up steps");
            var rows = RankScalingBenchmark.Run(RankScalingBenchmark.SelfCommand(typeof(BenchRanks).Assembly), r.Tokens.Select(t => t.Value).ToList(),
                ranks, threadsPerRank, batch, console.Error);
            console.Out.WriteLine($"cpu: {Mcir.Core.Compute.CpuFeatures.Machine.Describe()}, {Environment.ProcessorCount} logical processors");
            if (File.Exists("/proc/loadavg"))
                console.Out.WriteLine($"load average (1, 5, 15 min): {string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3))}");
            console.Out.Write(RankScalingBenchmark.FormatTable(rows));
            return 0;
        }
        using var comm = Communicators.Create("mpi", "bench --ranks");
        return HostCommands.OnEveryRank(comm, console.Error, () =>
        {
            RankScalingBenchmark.RunWorker(comm, createModel, batch, lrSize, scale, rounds, device, console.Out, console.Error);
            return 0;
        });
    }
}
