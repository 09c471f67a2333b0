using System.Diagnostics;
using System.Text.Json.Nodes;
using Mcir.Core.Runs;

namespace Mcir.Host.Tests;

/// <summary>
/// Stopping a real mcir-host process: Ctrl-C (SIGINT) and a scheduler's SIGTERM finish the iteration, write a complete
/// checkpoint and exit with their own codes (130, 75), and the run resumes as one run; while a run lives, a second run
/// on its folder is refused and damages nothing.
/// </summary>
public class StopSignalTests
{
    private const int SigInt = 2, SigTerm = 15;

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    [Fact]
    public async Task SigintWritesACheckpointExitsCleanlyAndTheRunResumes()
    {
        if (!OperatingSystem.IsLinux()) return; // the signal is sent with libc's kill(2)
        // A test run started in the background by a shell without job control (`cmd &`, nohup) ignores SIGINT, and its
        // children inherit that (POSIX), .NET included: no Ctrl-C can reach them, so there is nothing to test.
        if (SigIntIgnoredHere()) return;
        using var tmp = new TempDir();
        string config = TinyRun.Write(tmp, "interrupted");
        string runDir = Path.Combine(tmp.Path, "runs", "interrupted");

        var (code, err, _) = await StopMidRun(config, SigInt);

        Assert.True(code == 130, $"exit code {code}; stderr:\n{err}");
        Assert.Contains("interrupt", err);
        AssertStoppedWithOneCheckpointAndResumes(config, runDir);
    }

    [Fact]
    public async Task SigtermCheckpointsAndExits75WhileASecondRunOnTheLockedFolderIsRefused()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var tmp = new TempDir();
        string config = TinyRun.Write(tmp, "terminated");
        string runDir = Path.Combine(tmp.Path, "runs", "terminated");
        (int Code, string Out, string Err) second = default;
        byte[] configBefore = [];

        var (code, err, pid) = await StopMidRun(config, SigTerm, whileRunning: p =>
        {
            Assert.StartsWith($"pid {p.Id} ", RunFolderLock.ReadHolder(runDir));
            configBefore = File.ReadAllBytes(Path.Combine(runDir, "config.resolved.json"));
            // A second run on the same folder (a requeued job while the old one still lives) is refused.
            second = HostRunner.Run("run", "--config", config, "--set", "train.total_iter=3");
        });

        Assert.True(second.Code == 1, $"second run: exit {second.Code}\n{second.Err}");
        Assert.Contains($"is in use by another run (PID {pid} on host", second.Err);
        Assert.DoesNotContain("run terminated: model", second.Out + second.Err); // refused before its model was built
        Assert.Equal(configBefore, File.ReadAllBytes(Path.Combine(runDir, "config.resolved.json")));
        Assert.True(code == 75, $"exit code {code}; stderr:\n{err}");
        Assert.Contains("terminate (SIGTERM)", err);
        Assert.Null(RunFolderLock.ReadHolder(runDir)); // released on the way out
        // The terminated run continues where it stopped, as one run (the second run's attempt left nothing in the log).
        AssertStoppedWithOneCheckpointAndResumes(config, runDir);
    }

    private static bool SigIntIgnoredHere()
    {
        string mask = File.ReadLines("/proc/self/status").First(l => l.StartsWith("SigIgn:", StringComparison.Ordinal))[7..].Trim();
        return (Convert.ToUInt64(mask, 16) & (1UL << (SigInt - 1))) != 0;
    }

    // Starts a long run of the tiny configuration, waits for its first iteration, runs whileRunning, sends the signal and
    // waits for the exit: exit code, standard error, process id.
    private static async Task<(int Code, string Err, int Pid)> StopMidRun(string config, int signal, Action<Process>? whileRunning = null)
    {
        var psi = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "mcir-host")) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "run", "--config", config, "--set", "train.total_iter=100000", "train.checkpoint_freq=0" }) psi.ArgumentList.Add(a);
        psi.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
        psi.Environment["MCIR_ISA_PROBE"] = "off"; // the ISA probe has its own tests; here it would only add child processes
        using var p = Process.Start(psi)!;
        var stderr = new System.Text.StringBuilder();
        var started = new ManualResetEventSlim();
        p.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (stderr) stderr.AppendLine(e.Data);
            if (e.Data.StartsWith("[iter", StringComparison.Ordinal)) started.Set();
        };
        p.BeginErrorReadLine();
        var readOut = p.StandardOutput.ReadToEndAsync();
        try
        {
            Assert.True(started.Wait(TimeSpan.FromSeconds(120)), "training did not start: " + stderr);
            whileRunning?.Invoke(p);
            Assert.Equal(0, Kill(p.Id, signal));
            if (!p.WaitForExit(120_000))
                lock (stderr) Assert.Fail($"mcir-host did not exit within 2 minutes after signal {signal}; stderr so far:\n{stderr}");
        }
        finally
        {
            if (!p.HasExited) p.Kill(entireProcessTree: true);
        }
        await p.WaitForExitAsync();
        await readOut;
        lock (stderr) return (p.ExitCode, stderr.ToString(), p.Id);
    }

    // One complete checkpoint at the iteration the run stopped after; --resume auto continues from it and the metrics
    // log reads as one uninterrupted run.
    private static void AssertStoppedWithOneCheckpointAndResumes(string config, string runDir)
    {
        var checkpoints = Directory.GetDirectories(Path.Combine(runDir, "checkpoints"), "iter_*");
        Assert.Single(checkpoints);
        Assert.True(File.Exists(Path.Combine(checkpoints[0], "MANIFEST.json")));
        long stoppedAt = long.Parse(Path.GetFileName(checkpoints[0])["iter_".Length..]);
        Assert.InRange(stoppedAt, 1, 100000 - 1);

        var resumed = HostRunner.Run("run", "--config", config, "--resume", "auto", "--set", $"train.total_iter={stoppedAt + 2}", "train.checkpoint_freq=0");
        Assert.True(resumed.Code == 0, resumed.Err);
        Assert.Contains($"(iteration {stoppedAt})", resumed.Err);
        var iters = File.ReadAllLines(Path.Combine(runDir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!)
            .Where(m => (string?)m["event"] == "train").Select(m => (long)m["iter"]!).ToList();
        Assert.Equal(Enumerable.Range(1, (int)stoppedAt + 2).Select(i => (long)i), iters);
    }
}
