using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Mcir.Host.Tests;

/// <summary>Ctrl-C (SIGINT) on a real mcir-host process: checkpoint, clean exit, resumable.</summary>
public class InterruptTests
{
    private const int SigInt = 2;

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    [Fact]
    public async Task SigintWritesACheckpointExitsCleanlyAndTheRunResumes()
    {
        if (!OperatingSystem.IsLinux()) return; // SIGINT is sent with libc's kill(2)
        using var tmp = new TempDir();
        string config = TinyRun.Write(tmp, "interrupted");
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
        try
        {
            Assert.True(started.Wait(TimeSpan.FromSeconds(120)), "training did not start: " + stderr);
            Assert.Equal(0, Kill(p.Id, SigInt));
            Assert.True(p.WaitForExit(60_000), "mcir-host did not exit after SIGINT");
        }
        finally
        {
            if (!p.HasExited) p.Kill(entireProcessTree: true);
        }
        await p.WaitForExitAsync();
        await readOut;

        string err;
        lock (stderr) err = stderr.ToString();
        Assert.True(p.ExitCode == 130, $"exit code {p.ExitCode}; stderr:\n{err}");
        Assert.Contains("interrupt", err);
        string runDir = Path.Combine(tmp.Path, "runs", "interrupted");
        var checkpoints = Directory.GetDirectories(Path.Combine(runDir, "checkpoints"), "iter_*");
        Assert.Single(checkpoints);
        Assert.True(File.Exists(Path.Combine(checkpoints[0], "MANIFEST.json")));
        long stoppedAt = long.Parse(Path.GetFileName(checkpoints[0])["iter_".Length..]);
        Assert.InRange(stoppedAt, 1, 100000 - 1);

        // The interrupted run continues where it stopped.
        var resumed = HostRunner.Run("run", "--config", config, "--resume", "auto", "--set", $"train.total_iter={stoppedAt + 2}", "train.checkpoint_freq=0");
        Assert.True(resumed.Code == 0, resumed.Err);
        Assert.Contains($"(iteration {stoppedAt})", resumed.Err);
        var iters = File.ReadAllLines(Path.Combine(runDir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!)
            .Where(m => (string?)m["event"] == "train").Select(m => (long)m["iter"]!).ToList();
        Assert.Equal(Enumerable.Range(1, (int)stoppedAt + 2).Select(i => (long)i), iters);
    }
}
