using System.Diagnostics;
using Mcir.Core.Weights;

namespace Mcir.Host.Tests.Distributed;

/// <summary>
/// Data-parallel training under a real <c>mpirun -np 2</c> (Open MPI; CI installs openmpi-bin, so a missing mpirun is a
/// failure, not a skip). The tiny run (EDSR-light 8/1 ×2, L1 + SPN subtract form, K = 2 EMA negatives, global batch 2)
/// keeps each launch to seconds. Rank-specific arguments use mpirun's MPMD form (<c>-np 1 A : -np 1 B</c>).
/// </summary>
[Collection(MpiCollection.Name)]
public class MpiTrainingTests
{
    [Fact]
    public void TwoRanksMatchOneProcessOnlyRankZeroWritesAndAResumeEqualsTheUninterruptedRun()
    {
        using var tmp = new TempDir();
        string config = TinyRun.Write(tmp, "dp");
        string elsewhere = Path.Combine(tmp.Path, "rank1-root");

        // One process, the same global batch.
        var single = HostRunner.Run("run", "--config", config, "--set", $"output_root={tmp.Path}/single");
        Assert.True(single.Code == 0, single.Err);

        // Two ranks; rank 1 is told another output_root: it must write nothing there (nor anywhere else).
        var two = Mpi.Run(tmp.Path, [["run", "--config", config, "--set", $"output_root={tmp.Path}/mpi"],
            ["run", "--config", config, "--set", $"output_root={elsewhere}"]]);
        Assert.True(two.Code == 0, two.Output);
        Assert.False(Directory.Exists(elsewhere), "rank 1 wrote files");
        // The ranks' weights, negatives and EMA were compared bit for bit at each checkpoint (iterations 2 and 4).
        Assert.Contains("[iter 2] all 2 ranks hold identical weights, negatives and EMA", two.Output);
        Assert.Contains("[iter 4] all 2 ranks hold identical weights, negatives and EMA", two.Output);
        Assert.Contains("data-parallel: MPI, 2 ranks", two.Output);
        Assert.Contains("gradients: MPI all-reduce through host memory (dist_backend = auto, device cpu)", two.Output);

        // Same global batch → same trajectory as one process; the gradient mean over the ranks differs from the
        // one-process batch mean only by float32 summation order (measured ~1e-8 after 4 iterations).
        string Ckpt(string root, string name, int it, string file) => Path.Combine(tmp.Path, root, name, "checkpoints", $"iter_{it:D6}", file);
        foreach (var file in new[] { "model.safetensors", "negatives.safetensors" })
            AssertClose(Ckpt("single", "dp", 4, file), Ckpt("mpi", "dp", 4, file), 1e-5);

        // Interrupted at 2 (a complete checkpoint), resumed under MPI to 4: the same as the uninterrupted MPI run.
        var first = Mpi.Run(tmp.Path, [["run", "--config", config, "--set", $"output_root={tmp.Path}/resumed", "train.total_iter=2"]], ranks: 2);
        Assert.True(first.Code == 0, first.Output);
        var resumed = Mpi.Run(tmp.Path, [["run", "--config", config, "--resume", "auto", "--set", $"output_root={tmp.Path}/resumed"]], ranks: 2);
        Assert.True(resumed.Code == 0, resumed.Output);
        Assert.Contains("(iteration 2)", resumed.Output);
        foreach (var file in new[] { "model.safetensors", "negatives.safetensors" })
            AssertClose(Ckpt("mpi", "dp", 4, file), Ckpt("resumed", "dp", 4, file), 0); // same ranks, same kernels: exact
    }

    [Fact]
    public void A_ranks_output_starts_with_what_it_prints_not_terminal_escapes()
    {
        using var tmp = new TempDir();
        var r = Mpi.Run(tmp.Path, [["--version"]]);
        Assert.True(r.Code == 0, $"exit {r.Code}\n{r.Output}");
        Assert.True(char.IsDigit(r.Output[0]), $"output starts with {string.Join(" ", r.Output.Take(8).Select(c => ((int)c).ToString("x2")))}");
        Assert.DoesNotContain('\u001b', r.Output);
    }

    [Fact]
    public void ANanOnOneRankStopsBothRanksWithTheGuardsMessage()
    {
        using var tmp = new TempDir();
        string config = TinyRun.Write(tmp, "nan");
        // Rank 1 alone scales its input by 1e39: float32 overflows, its L1 is NaN; rank 0's own loss is finite.
        var r = Mpi.Run(tmp.Path, [["run", "--config", config, "--set", $"output_root={tmp.Path}/runs"],
            ["run", "--config", config, "--set", $"output_root={tmp.Path}/rank1", "model.options.img_range=1e39"]]);
        Assert.True(r.Code == 3, $"exit {r.Code}\n{r.Output}"); // the collapse guard's exit code, from both ranks
        Assert.Contains("collapse: loss part 'l1' is NaN at iteration 1", r.Output);
        Assert.False(Directory.Exists(Path.Combine(tmp.Path, "runs", "nan", "checkpoints")), "a checkpoint was written from the collapsed state");
    }

    [Fact]
    public void AnErrorOnOneRankEndsEveryRank()
    {
        using var tmp = new TempDir();
        string config = TinyRun.Write(tmp, "abort");
        string missing = Path.Combine(tmp.Path, "missing");
        var r = Mpi.Run(tmp.Path, [["run", "--config", config, "--set", $"output_root={tmp.Path}/runs"],
            ["run", "--config", config, "--set", $"output_root={tmp.Path}/rank1", $"data.train.dataroot_gt={missing}"]]);
        // Rank 0 would wait forever in its first collective; MPI_Abort ends it (Mpi.Run's timeout fails a hang).
        Assert.True(r.Code == 1, $"exit {r.Code}\n{r.Output}");
        Assert.Contains("rank 1 of 2:", r.Output);
        Assert.Contains($"error: {missing}: folder not found", r.Output);
    }

    [Fact]
    public void SigtermToTheRanksStopsEveryRankAfterTheSameIterationWithACheckpoint()
    {
        using var tmp = new TempDir();
        string config = TinyRun.Write(tmp, "term");
        var r = Mpi.Run(tmp.Path, [["run", "--config", config, "--set", $"output_root={tmp.Path}/runs", "train.total_iter=100000", "train.checkpoint_freq=0"]], ranks: 2,
            signalAfter: ("[iter      3/", 15)); // what a scheduler does to the tasks
        Assert.Contains("terminate (SIGTERM)", r.Output);
        Assert.True(Directory.Exists(Path.Combine(tmp.Path, "runs", "term", "checkpoints")), $"no checkpoint folder; exit {r.Code}\n{r.Output}");
        var checkpoints = Directory.GetDirectories(Path.Combine(tmp.Path, "runs", "term", "checkpoints"), "iter_*");
        Assert.Single(checkpoints);
        Assert.True(File.Exists(Path.Combine(checkpoints[0], "MANIFEST.json")));
        Assert.Contains($"interrupted after iteration {int.Parse(Path.GetFileName(checkpoints[0])["iter_".Length..])};", r.Output);
    }

    private static void AssertClose(string expectedFile, string actualFile, double tolerance)
    {
        using var a = SafetensorsFile.Read(expectedFile);
        using var b = SafetensorsFile.Read(actualFile);
        Assert.Equal(a.Tensors.Select(t => t.Key), b.Tensors.Select(t => t.Key));
        foreach (var ((name, x), (_, y)) in a.Tensors.Zip(b.Tensors))
        {
            double diff = x.sub(y).abs().max().item<float>();
            Assert.True(diff <= tolerance, $"{Path.GetFileName(actualFile)} {name}: max |difference| {diff} > {tolerance}");
        }
    }
}

/// <summary>MPI launches use both cores: they do not run beside other tests.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MpiCollection
{
    public const string Name = "MPI";
}

/// <summary>Runs mcir-host under mpirun and collects what all ranks print.</summary>
internal static class Mpi
{
    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    public static string MpiRun()
    {
        var path = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, "mpirun")).FirstOrDefault(File.Exists);
        Assert.True(path is not null, "mpirun not found on PATH: install Open MPI (apt-get install openmpi-bin; .ci/run does)");
        return path!;
    }

    /// <summary>
    /// One command line per rank (MPMD), or one for all <paramref name="ranks"/>. Fails the test after 5 minutes (a hang).
    /// </summary>
    public static (int Code, string Output) Run(string workDir, string[][] perRank, int ranks = 1, (string Line, int Signal)? signalAfter = null)
    {
        string host = Path.Combine(AppContext.BaseDirectory, "mcir-host");
        var psi = new ProcessStartInfo(MpiRun()) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false, WorkingDirectory = workDir };
        for (int i = 0; i < perRank.Length; i++)
        {
            if (i > 0) psi.ArgumentList.Add(":");
            // CI runs as root; --bind-to none: ranks are not pinned to one core each (libtorch threads share the node).
            foreach (var a in new[] { "--allow-run-as-root", "-np", (perRank.Length == 1 ? ranks : 1).ToString(), "--bind-to", "none", host }) psi.ArgumentList.Add(a);
            foreach (var a in perRank[i]) psi.ArgumentList.Add(a);
        }
        psi.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
        psi.Environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1";
        psi.Environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
        // Oversubscription is fine here: 2 ranks on a machine that may report fewer slots.
        psi.Environment["OMPI_MCA_rmaps_base_oversubscribe"] = "1";
        using var p = Process.Start(psi)!;
        var output = new System.Text.StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (output) output.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        if (signalAfter is { } signal)
        {
            var clock = Stopwatch.StartNew();
            while (!p.HasExited && clock.Elapsed < TimeSpan.FromMinutes(3))
            {
                lock (output) if (output.ToString().Contains(signal.Line, StringComparison.Ordinal)) break;
                Thread.Sleep(200);
            }
            Assert.False(p.HasExited, "mpirun ended before the signal:\n" + output);
            // To every rank, as Slurm's srun and a scheduler's stop deliver it to the tasks. (Open MPI 4.1's mpirun, given
            // SIGTERM itself, forwards it and then kills the ranks almost at once, before a checkpoint can be written.)
            var rankPids = File.ReadAllText($"/proc/{p.Id}/task/{p.Id}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToList();
            Assert.NotEmpty(rankPids);
            foreach (int rank in rankPids) Assert.Equal(0, Kill(rank, signal.Signal));
        }
        if (!p.WaitForExit(300_000))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail("mpirun did not finish within 5 minutes (a rank hangs?):\n" + output);
        }
        p.WaitForExit();
        lock (output) return (p.ExitCode, output.ToString());
    }
}
