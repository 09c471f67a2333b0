using System.Globalization;
using System.Text.RegularExpressions;

namespace Mcir.Host.Tests.Distributed;

/// <summary>
/// <c>dist-check</c> and <c>bench --ranks</c> under a real mpirun (Open MPI; as in <see cref="MpiTrainingTests"/>, a
/// missing mpirun is a failure: CI installs openmpi-bin).
/// </summary>
[Collection(MpiCollection.Name)]
public class MpiToolsTests
{
    [Fact]
    public void TwoRanksReceiveRankZerosNcclUniqueIdOverMpi()
    {
        using var tmp = new TempDir();
        var r = Mpi.Run(tmp.Path, [["dist-check"]], ranks: 2);
        Assert.True(r.Code == 0, r.Output);
        Assert.Contains("MPI all-reduce: 3 = 1 + … + 2", r.Output);
        // Each rank prints the SHA-256 of the 128 bytes it holds; rank 0 made them (ncclGetUniqueId, or random bytes
        // without libnccl), rank 1 received them by the broadcast the NCCL set-up uses.
        var ids = Regex.Matches(r.Output, @"rank (\d) of 2: NCCL unique id (\d+) bytes, sha256 ([0-9a-f]{16})")
            .ToDictionary(m => m.Groups[1].Value, m => (Bytes: m.Groups[2].Value, Digest: m.Groups[3].Value));
        Assert.Equal(["0", "1"], ids.Keys.Order());
        Assert.Equal("128", ids["0"].Bytes);
        Assert.Equal("128", ids["1"].Bytes);
        Assert.Equal(ids["0"].Digest, ids["1"].Digest);
        Assert.Contains($"NCCL unique id: all 2 ranks hold rank 0's 128 bytes (sha256 {ids["0"].Digest}", r.Output);

        // A second launch makes a new id (it is not a constant both ranks could print without communicating).
        var again = Mpi.Run(tmp.Path, [["dist-check"]], ranks: 2);
        Assert.True(again.Code == 0, again.Output);
        Assert.DoesNotContain($"sha256 {ids["0"].Digest}", again.Output);
    }

    [Fact]
    public void BenchRanksRunsOneAndTwoRanksAndPrintsBothRows()
    {
        Mpi.MpiRun(); // fails clearly when mpirun is missing
        // Not timed: a tiny shape and one round; each launch is mpirun on mcir-host itself (bench ... --rank-worker).
        var (code, stdout, stderr) = HostRunner.Run("bench", "--ranks", "1,2", "--model", "edsr-light", "--scale", "2", "--batch", "4", "--lr-size", "8", "--rounds", "1");
        Assert.True(code == 0, stdout + stderr);
        Assert.Contains("ranks x threads   median step (s)   images/s   scaling efficiency", stdout);
        var rows = Regex.Matches(stdout, @"^(\d+) x (\d+) +([\d.]+) +([\d.]+) +([\d.]+)\s*$", RegexOptions.Multiline)
            .Select(m => (Ranks: int.Parse(m.Groups[1].Value), Threads: int.Parse(m.Groups[2].Value), Step: D(m.Groups[3].Value), ImagesPerSecond: D(m.Groups[4].Value), Efficiency: D(m.Groups[5].Value)))
            .ToList();
        Assert.Equal([1, 2], rows.Select(r => r.Ranks));
        // Threads per rank: the logical processors split between the ranks, as the ranks themselves reported them.
        Assert.Equal([Math.Max(1, Environment.ProcessorCount), Math.Max(1, Environment.ProcessorCount / 2)], rows.Select(r => r.Threads));
        foreach (var r in rows)
        {
            Assert.True(r.Step > 0, stdout);
            // images/s = global batch / median step, up to the printed rounding (3 decimals of the step)
            Assert.InRange(r.ImagesPerSecond, 4 / (r.Step + 0.0005) - 0.01, 4 / Math.Max(1e-9, r.Step - 0.0005) + 0.01);
        }
        Assert.Equal(1.00, rows[0].Efficiency);
        // The 2-rank workers trained with the MPI gradient all-reduce (a CPU build: dist_backend auto is mpi).
        Assert.Contains("gradients: MPI all-reduce through host memory (dist_backend = auto, device cpu)", stderr);

        static double D(string s) => double.Parse(s, CultureInfo.InvariantCulture);
    }
}
