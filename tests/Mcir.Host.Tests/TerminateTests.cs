using System.Diagnostics;
using System.Text.Json.Nodes;
using Mcir.Core.Runs;

namespace Mcir.Host.Tests;

/// <summary>
/// Cluster life on a real mcir-host process: a scheduler's SIGTERM writes a complete checkpoint and exits with its own
/// code; while the run lives, a second run on its folder is refused and damages nothing.
/// </summary>
public class TerminateTests
{
    private const int SigTerm = 15;

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    [Fact]
    public async Task SigtermCheckpointsAndExits75WhileASecondRunOnTheLockedFolderIsRefused()
    {
        if (!OperatingSystem.IsLinux()) return; // SIGTERM is sent with libc's kill(2)
        using var tmp = new TempDir();
        string config = TinyRun.Write(tmp, "terminated");
        string runDir = Path.Combine(tmp.Path, "runs", "terminated");
        string host = Path.Combine(AppContext.BaseDirectory, "mcir-host");

        var psi = new ProcessStartInfo(host) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "run", "--config", config, "--set", "train.total_iter=100000", "train.checkpoint_freq=0" }) psi.ArgumentList.Add(a);
        psi.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
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
        (int Code, string Out, string Err) second;
        byte[] configBefore;
        try
        {
            Assert.True(started.Wait(TimeSpan.FromSeconds(120)), "training did not start: " + stderr);
            Assert.StartsWith($"pid {p.Id} ", RunFolderLock.ReadHolder(runDir));
            configBefore = File.ReadAllBytes(Path.Combine(runDir, "config.resolved.json"));
            // A second run on the same folder (a requeued job while the old one still lives) is refused.
            second = HostRunner.Run("run", "--config", config, "--set", "train.total_iter=3");
            Assert.Equal(0, Kill(p.Id, SigTerm));
            Assert.True(p.WaitForExit(60_000), "mcir-host did not exit after SIGTERM");
        }
        finally
        {
            if (!p.HasExited) p.Kill(entireProcessTree: true);
        }
        await p.WaitForExitAsync();
        await readOut;
        string err;
        lock (stderr) err = stderr.ToString();

        Assert.True(second.Code == 1, $"second run: exit {second.Code}\n{second.Err}");
        Assert.Contains($"is in use by another run (PID {p.Id} on host", second.Err);
        Assert.Equal(configBefore, File.ReadAllBytes(Path.Combine(runDir, "config.resolved.json")));

        Assert.True(p.ExitCode == 75, $"exit code {p.ExitCode}; stderr:\n{err}");
        Assert.Contains("terminate (SIGTERM)", err);
        var checkpoints = Directory.GetDirectories(Path.Combine(runDir, "checkpoints"), "iter_*");
        Assert.Single(checkpoints);
        Assert.True(File.Exists(Path.Combine(checkpoints[0], "MANIFEST.json")));
        long stoppedAt = long.Parse(Path.GetFileName(checkpoints[0])["iter_".Length..]);
        Assert.InRange(stoppedAt, 1, 100000 - 1);
        Assert.Null(RunFolderLock.ReadHolder(runDir)); // released on the way out

        // The terminated run continues where it stopped, as one run (the second run's attempt left nothing in the log).
        var resumed = HostRunner.Run("run", "--config", config, "--resume", "auto", "--set", $"train.total_iter={stoppedAt + 2}", "train.checkpoint_freq=0");
        Assert.True(resumed.Code == 0, resumed.Err);
        Assert.Contains($"(iteration {stoppedAt})", resumed.Err);
        var iters = File.ReadAllLines(Path.Combine(runDir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!)
            .Where(m => (string?)m["event"] == "train").Select(m => (long)m["iter"]!).ToList();
        Assert.Equal(Enumerable.Range(1, (int)stoppedAt + 2).Select(i => (long)i), iters);
    }
}
