using System.Globalization;
using System.Text;
using Mcir.Core.Training;

namespace Mcir.Host.Commands;

/// <summary>
/// The live progress line of <c>mcir-host run</c> on a terminal: <c>iter 120/300 | 4.12 it/s | ETA 0:00:44 | loss
/// 0.03121</c>, redrawn in place with a carriage return every iteration (at most every 100 ms), kept below the log
/// lines: <see cref="StatusLineWriter"/> erases it before a log line is written and draws it again after. Used only
/// when standard error (where run logs) is a terminal; logs and CI output (redirected) get plain lines only.
/// </summary>
internal static class LiveProgress
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>The progress line for <paramref name="p"/>, cut to <paramref name="width"/> − 1 characters (so the terminal
    /// never wraps it); no control characters.</summary>
    public static string Format(StepProgress p, int width)
    {
        ArgumentNullException.ThrowIfNull(p);
        string digits = p.TotalIter.ToString(Inv);
        string rate = double.IsFinite(p.IterationsPerSecond) && p.IterationsPerSecond > 0
            ? (p.IterationsPerSecond >= 10 ? p.IterationsPerSecond.ToString("0.0", Inv) : p.IterationsPerSecond.ToString("0.00", Inv)) + " it/s"
            : "? it/s";
        string line = $"iter {p.Iteration.ToString(Inv).PadLeft(digits.Length)}/{digits} | {rate} | ETA {ProgressTextLog.Eta(p.EtaSeconds)} | loss {p.Loss.ToString("G5", Inv)}";
        int max = Math.Max(1, width - 1);
        return line.Length <= max ? line : line[..max];
    }

    /// <summary>Whether <c>run</c> draws the live line: standard error is a terminal and TERM is not "dumb".</summary>
    public static bool TerminalWanted() =>
        !Console.IsErrorRedirected && !string.Equals(Environment.GetEnvironmentVariable("TERM"), "dumb", StringComparison.Ordinal);
}

/// <summary>
/// A <see cref="TextWriter"/> over a terminal stream with one status line at the bottom: text written through it goes
/// above the status line (erased with <c>\r</c> and ESC[K before, redrawn after each complete line).
/// </summary>
internal sealed class StatusLineWriter(TextWriter inner, Func<int> width) : TextWriter
{
    private const string EraseLine = "\r\u001b[K";
    private readonly object _gate = new();
    private string? _status;
    private bool _statusShown;
    private bool _atLineStart = true;

    public override Encoding Encoding => inner.Encoding;

    /// <summary>Terminal width, 80 when unknown.</summary>
    public int Width
    {
        get
        {
            try { int w = width(); return w > 0 ? w : 80; }
            catch (Exception e) when (e is IOException or InvalidOperationException or PlatformNotSupportedException) { return 80; }
        }
    }

    /// <summary>Shows <paramref name="status"/> as the status line (replacing the previous one).</summary>
    public void SetStatus(string status)
    {
        lock (_gate)
        {
            _status = status;
            if (!_atLineStart) return; // a log line is being written; it redraws the status when it ends
            inner.Write(EraseLine + status);
            _statusShown = true;
            inner.Flush();
        }
    }

    /// <summary>Removes the status line for good.</summary>
    public void ClearStatus()
    {
        lock (_gate)
        {
            _status = null;
            if (_statusShown) inner.Write(EraseLine);
            _statusShown = false;
            inner.Flush();
        }
    }

    public override void Write(char value) => Write(value.ToString());

    public override void Write(string? value)
    {
        if (string.IsNullOrEmpty(value)) return;
        lock (_gate)
        {
            if (_statusShown)
            {
                inner.Write(EraseLine);
                _statusShown = false;
            }
            inner.Write(value);
            _atLineStart = value.EndsWith('\n');
            if (_atLineStart && _status is not null)
            {
                inner.Write(EraseLine + _status);
                _statusShown = true;
            }
        }
    }

    public override void Write(char[] buffer, int index, int count) => Write(new string(buffer, index, count));

    public override void WriteLine(string? value) => Write((value ?? "") + new string(CoreNewLine));

    public override void WriteLine() => Write(new string(CoreNewLine));

    public override void Flush()
    {
        lock (_gate) inner.Flush();
    }
}

/// <summary>Feeds every iteration's <see cref="StepProgress"/> to a <see cref="StatusLineWriter"/>, at most every 100 ms
/// (and always for the last iteration); removes the line when the run ends.</summary>
internal sealed class LiveProgressLog(StatusLineWriter writer, TimeProvider? time = null) : ITrainingLog
{
    private static readonly TimeSpan MinInterval = TimeSpan.FromMilliseconds(100);
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private long _last = long.MinValue;

    public void OnStep(StepProgress progress)
    {
        long now = _time.GetTimestamp();
        if (progress.Iteration != progress.TotalIter && _last != long.MinValue && _time.GetElapsedTime(_last, now) < MinInterval) return;
        _last = now;
        writer.SetStatus(LiveProgress.Format(progress, writer.Width));
    }

    public void OnEnd(TrainingResult result) => writer.ClearStatus();
}
