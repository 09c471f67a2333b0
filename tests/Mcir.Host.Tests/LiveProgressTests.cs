using Mcir.Core.Training;
using Mcir.Host.Commands;

namespace Mcir.Host.Tests;

public class LiveProgressTests
{
    private const string Erase = "\r\u001b[K";

    [Fact]
    public void FormatsIterationRateEtaAndLoss()
    {
        // 0.25 s per iteration: 4 it/s, 280 iterations left = 70 s.
        string line = LiveProgress.Format(new StepProgress(20, 300, 4.0, 70, 0.031214), 120);
        Assert.Equal("iter  20/300 | 4.00 it/s | ETA 0:01:10 | loss 0.031214", line);
        Assert.Equal("iter 1234/5000 | 12.3 it/s | ETA 2:03:04 | loss 1.5",
            LiveProgress.Format(new StepProgress(1234, 5000, 12.345, 2 * 3600 + 3 * 60 + 4, 1.5), 120));
        // Unknown rate and ETA.
        Assert.Equal("iter  1/10 | ? it/s | ETA ? | loss NaN", LiveProgress.Format(new StepProgress(1, 10, double.NaN, double.NaN, double.NaN), 120));
    }

    [Fact]
    public void TheLineNeverWrapsTheTerminal()
    {
        string line = LiveProgress.Format(new StepProgress(20, 300, 4.0, 70, 0.031214), 30);
        Assert.Equal(29, line.Length);
        Assert.StartsWith("iter  20/300 | 4.00 it/s", line);
        Assert.DoesNotContain(line, c => char.IsControl(c));
    }

    [Fact]
    public void LogLinesGoAboveTheStatusLine()
    {
        var terminal = new StringWriter();
        var writer = new StatusLineWriter(terminal, () => 80);
        writer.WriteLine("training: 3 iterations");
        writer.SetStatus("iter 1/3");
        writer.SetStatus("iter 2/3");
        writer.WriteLine("[iter 2/3] lr 1e-3");
        writer.SetStatus("iter 3/3");
        writer.ClearStatus();
        writer.WriteLine("training completed");

        Assert.Equal(
            "training: 3 iterations\n" +
            Erase + "iter 1/3" + Erase + "iter 2/3" +
            Erase + "[iter 2/3] lr 1e-3\n" + Erase + "iter 2/3" +
            Erase + "iter 3/3" + Erase +
            "training completed\n",
            terminal.ToString());
    }

    [Fact]
    public void AStatusDuringAPartialLineWaitsForItsEnd()
    {
        var terminal = new StringWriter();
        var writer = new StatusLineWriter(terminal, () => 80);
        writer.Write("validating ...");
        writer.SetStatus("iter 5/9");
        writer.WriteLine(" done");
        Assert.Equal("validating ... done\n" + Erase + "iter 5/9", terminal.ToString());
    }

    [Fact]
    public void RedrawsAtMostEveryHundredMillisecondsButAlwaysTheLastIteration()
    {
        var terminal = new StringWriter();
        var clock = new ManualClock();
        var log = new LiveProgressLog(new StatusLineWriter(terminal, () => 200), clock);
        log.OnStep(new StepProgress(1, 4, 1, 3, 0.5));
        clock.Advance(TimeSpan.FromMilliseconds(50));
        log.OnStep(new StepProgress(2, 4, 1, 2, 0.4)); // too soon: skipped
        clock.Advance(TimeSpan.FromMilliseconds(60));
        log.OnStep(new StepProgress(3, 4, 1, 1, 0.3));
        log.OnStep(new StepProgress(4, 4, 1, 0, 0.2)); // the last one is always drawn
        string text = terminal.ToString();
        Assert.Contains("iter 1/4", text);
        Assert.DoesNotContain("iter 2/4", text);
        Assert.Contains("iter 3/4", text);
        Assert.Contains("iter 4/4", text);
        log.OnEnd(new TrainingResult(TrainingStatus.Completed, 4, "completed 4 iterations", null, null, null));
        Assert.EndsWith("iter 4/4 | 1.00 it/s | ETA 0:00:00 | loss 0.2" + Erase, terminal.ToString());
    }

    [Fact]
    public void ARunOnATerminalDrawsTheLiveLineBetweenPlainLogLines()
    {
        using var tmp = new TempDir();
        var output = new StringWriter();
        var error = new StringWriter();
        int code = HostCommands.Run(["run", "--config", TinyRun.Write(tmp)], output, error, liveProgress: true);
        string err = error.ToString();
        Assert.True(code == 0, err);
        Assert.Contains(Erase + "iter 4/4 | ", err);
        // With the status segments removed, the log is the plain one: every line complete, in order.
        string plain = System.Text.RegularExpressions.Regex.Replace(err, @"\r\u001b\[K(iter [^\r\n]*)?", "");
        Assert.DoesNotContain('\r', plain);
        Assert.Contains("training: 4 iterations\n", plain);
        Assert.Contains("[iter 4/4] lr ", plain);
        Assert.Contains("training completed: completed 4 iterations\n", plain);
        Assert.EndsWith("\n", plain);
        // The line is erased when training ends.
        int last = err.LastIndexOf("iter 4/4 | ", StringComparison.Ordinal);
        Assert.True(err.IndexOf(Erase, last, StringComparison.Ordinal) > last, "the live line is erased at the end");
    }

    private sealed class ManualClock : TimeProvider
    {
        private long _ticks;
        public override long TimestampFrequency => TimeSpan.TicksPerSecond;
        public override long GetTimestamp() => _ticks;
        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }
}
