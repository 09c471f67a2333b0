using System.Globalization;
using System.Text;
using System.Text.Json;
using Mcir.Core.IO;

namespace Mcir.Core.Training;

/// <summary>One logged training iteration (written every <c>print_freq</c> iterations and at iteration 1).</summary>
/// <param name="Iteration">The iteration (from 1).</param>
/// <param name="TotalIter">The run's last iteration.</param>
/// <param name="Lr">The learning rate this iteration's optimiser step used.</param>
/// <param name="Parts">The loss parts of this iteration (every term's parts plus "total").</param>
/// <param name="SecondsPerIter">Mean wall time per iteration since the previous record.</param>
/// <param name="EtaSeconds">Estimated time to the end of the run.</param>
/// <param name="GradNorm">Global gradient norm before clipping (only when clipping is on).</param>
public sealed record IterationRecord(long Iteration, long TotalIter, double Lr, IReadOnlyDictionary<string, double> Parts,
    double SecondsPerIter, double EtaSeconds, double? GradNorm);

/// <summary>Every iteration's progress (for a live progress display; not written to the logs).</summary>
/// <param name="Iteration">The iteration just done (from 1).</param>
/// <param name="TotalIter">The run's last iteration.</param>
/// <param name="IterationsPerSecond">Smoothed rate (exponential moving average of the step time, weight 0.1 on the newest).</param>
/// <param name="EtaSeconds">Estimated time to the end of the run at that rate.</param>
/// <param name="Loss">This iteration's total loss (the "total" part; the sum of the terms).</param>
public sealed record StepProgress(long Iteration, long TotalIter, double IterationsPerSecond, double EtaSeconds, double Loss);

/// <summary>
/// Receives the events of a run. Every method has a no-op default, so a sink implements only what it needs
/// (metrics file, progress text, TensorBoard, a test recorder ...).
/// </summary>
public interface ITrainingLog
{
    /// <summary>The run starts (or resumes) after iteration <paramref name="startIteration"/>.</summary>
    void OnStart(long startIteration, long totalIter, string? resumedFrom) { }

    /// <summary>A print event.</summary>
    void OnIteration(IterationRecord record) { }

    /// <summary>Every iteration, after the optimiser step (before its print event, if any).</summary>
    void OnStep(StepProgress progress) { }

    /// <summary>Validation results at <paramref name="iteration"/>.</summary>
    void OnValidation(long iteration, IReadOnlyDictionary<string, double> metrics) { }

    /// <summary>A complete checkpoint was written.</summary>
    void OnCheckpoint(long iteration, string path) { }

    /// <summary>A free-form message (warnings, notes).</summary>
    void OnMessage(long iteration, string message) { }

    /// <summary>The run ended.</summary>
    void OnEnd(TrainingResult result) { }
}

/// <summary>Forwards every event to several sinks in order.</summary>
public sealed class CompositeTrainingLog(params IReadOnlyList<ITrainingLog> sinks) : ITrainingLog
{
    /// <inheritdoc />
    public void OnStart(long startIteration, long totalIter, string? resumedFrom) { foreach (var s in sinks) s.OnStart(startIteration, totalIter, resumedFrom); }
    /// <inheritdoc />
    public void OnIteration(IterationRecord record) { foreach (var s in sinks) s.OnIteration(record); }
    /// <inheritdoc />
    public void OnStep(StepProgress progress) { foreach (var s in sinks) s.OnStep(progress); }
    /// <inheritdoc />
    public void OnValidation(long iteration, IReadOnlyDictionary<string, double> metrics) { foreach (var s in sinks) s.OnValidation(iteration, metrics); }
    /// <inheritdoc />
    public void OnCheckpoint(long iteration, string path) { foreach (var s in sinks) s.OnCheckpoint(iteration, path); }
    /// <inheritdoc />
    public void OnMessage(long iteration, string message) { foreach (var s in sinks) s.OnMessage(iteration, message); }
    /// <inheritdoc />
    public void OnEnd(TrainingResult result) { foreach (var s in sinks) s.OnEnd(result); }
}

/// <summary>
/// The metrics log: one JSON object per line, appended and flushed per event, in <c>metrics.jsonl</c> of the run
/// folder. Records (<c>"event"</c> field): <c>start</c> {iter, total_iter, resumed_from}; <c>train</c> {iter, lr,
/// loss: {part: value}, time_per_iter (s), eta (s), grad_norm?}; <c>val</c> {iter, metrics: {name: value}};
/// <c>checkpoint</c> {iter, path}; <c>message</c> {iter, text}; <c>end</c> {iter, status, message}. Every record
/// also has <c>time</c> (UTC, ISO 8601). Non-finite numbers are written as the strings "NaN", "Infinity",
/// "-Infinity" (JSON has no literal for them).
/// </summary>
public sealed class JsonLinesMetricsLog : ITrainingLog, IDisposable
{
    private readonly FileStream _stream;

    /// <summary>Opens (creates or appends to) <paramref name="path"/>.</summary>
    public JsonLinesMetricsLog(string path)
    {
        Path = System.IO.Path.GetFullPath(path);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(Path)!);
        _stream = new FileStream(Path, FileMode.Append, FileAccess.Write, FileShare.Read);
    }

    /// <summary>The file.</summary>
    public string Path { get; }

    /// <summary>
    /// Removes every record whose <c>iter</c> is greater than <paramref name="iteration"/> (atomically), so a run resumed
    /// from a checkpoint at that iteration continues one consistent log. Missing file: nothing to do.
    /// </summary>
    public static void TruncateAfter(string path, long iteration)
    {
        if (!File.Exists(path)) return;
        var kept = new StringBuilder();
        bool changed = false;
        foreach (var line in File.ReadLines(path))
        {
            if (line.Length == 0) { changed = true; continue; }
            long? it = null;
            try
            {
                using var doc = JsonDocument.Parse(line);
                if (doc.RootElement.TryGetProperty("iter", out var e) && e.ValueKind == JsonValueKind.Number) it = e.GetInt64();
            }
            catch (JsonException) { changed = true; continue; } // a torn last line from a crash
            if (it > iteration) { changed = true; continue; }
            kept.Append(line).Append('\n');
        }
        if (changed) AtomicFile.WriteAllText(path, kept.ToString());
    }

    /// <inheritdoc />
    public void OnStart(long startIteration, long totalIter, string? resumedFrom) => Write("start", startIteration, w =>
    {
        w.WriteNumber("total_iter", totalIter);
        if (resumedFrom is null) w.WriteNull("resumed_from"); else w.WriteString("resumed_from", resumedFrom);
    });

    /// <inheritdoc />
    public void OnIteration(IterationRecord r) => Write("train", r.Iteration, w =>
    {
        Number(w, "lr", r.Lr);
        w.WriteStartObject("loss");
        foreach (var (k, v) in r.Parts) Number(w, k, v);
        w.WriteEndObject();
        Number(w, "time_per_iter", r.SecondsPerIter);
        Number(w, "eta", r.EtaSeconds);
        if (r.GradNorm is { } g) Number(w, "grad_norm", g);
    });

    /// <inheritdoc />
    public void OnValidation(long iteration, IReadOnlyDictionary<string, double> metrics) => Write("val", iteration, w =>
    {
        w.WriteStartObject("metrics");
        foreach (var (k, v) in metrics) Number(w, k, v);
        w.WriteEndObject();
    });

    /// <inheritdoc />
    public void OnCheckpoint(long iteration, string path) => Write("checkpoint", iteration, w => w.WriteString("path", path));

    /// <inheritdoc />
    public void OnMessage(long iteration, string message) => Write("message", iteration, w => w.WriteString("text", message));

    /// <inheritdoc />
    public void OnEnd(TrainingResult result) => Write("end", result.Iteration, w =>
    {
        w.WriteString("status", result.Status.ToString().ToLowerInvariant());
        w.WriteString("message", result.Message);
    });

    private void Write(string kind, long iteration, Action<Utf8JsonWriter> body)
    {
        var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("event", kind);
            w.WriteNumber("iter", iteration);
            body(w);
            w.WriteString("time", DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture));
            w.WriteEndObject();
        }
        buffer.WriteByte((byte)'\n');
        _stream.Write(buffer.GetBuffer(), 0, (int)buffer.Length);
        _stream.Flush();
    }

    private static void Number(Utf8JsonWriter w, string name, double v)
    {
        if (double.IsFinite(v)) w.WriteNumber(name, v);
        else w.WriteString(name, double.IsNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
    }

    /// <summary>Reads a double written by this log (number or one of the non-finite strings).</summary>
    public static double ReadNumber(JsonElement e) => e.ValueKind == JsonValueKind.Number ? e.GetDouble() : e.GetString() switch
    {
        "NaN" => double.NaN,
        "Infinity" => double.PositiveInfinity,
        "-Infinity" => double.NegativeInfinity,
        var s => throw new FormatException($"not a metrics number: '{s}'"),
    };

    /// <summary>Closes the file.</summary>
    public void Dispose() => _stream.Dispose();
}

/// <summary>
/// Human-readable progress on a <see cref="TextWriter"/>: one line per print event, e.g.
/// <c>[iter    200/  2000] lr 2.000e-04 | l1 0.03121 spn -0.00110 total 0.03011 | 0.052 s/it, eta 0:01:33</c>,
/// plus lines for validation, checkpoints, messages and the end of the run.
/// </summary>
public sealed class ProgressTextLog(TextWriter writer) : ITrainingLog
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    private int _width = 1;

    /// <inheritdoc />
    public void OnStart(long startIteration, long totalIter, string? resumedFrom)
    {
        _width = totalIter.ToString(Inv).Length;
        writer.WriteLine(resumedFrom is null
            ? $"training: {totalIter} iterations"
            : $"training: resumed from {resumedFrom} at iteration {startIteration} of {totalIter}");
        writer.Flush();
    }

    /// <inheritdoc />
    public void OnIteration(IterationRecord r)
    {
        var sb = new StringBuilder();
        sb.Append("[iter ").Append(r.Iteration.ToString(Inv).PadLeft(_width)).Append('/').Append(r.TotalIter.ToString(Inv))
          .Append("] lr ").Append(r.Lr.ToString("0.000e+00", Inv)).Append(" |");
        foreach (var (k, v) in r.Parts) sb.Append(' ').Append(k).Append(' ').Append(v.ToString("G5", Inv));
        if (r.GradNorm is { } g) sb.Append(" | grad_norm ").Append(g.ToString("G4", Inv));
        sb.Append(" | ").Append(r.SecondsPerIter.ToString("0.000", Inv)).Append(" s/it, eta ").Append(Eta(r.EtaSeconds));
        writer.WriteLine(sb.ToString());
        writer.Flush();
    }

    /// <inheritdoc />
    public void OnValidation(long iteration, IReadOnlyDictionary<string, double> metrics)
    {
        writer.WriteLine($"[iter {iteration.ToString(Inv).PadLeft(_width)}] validation: " +
            string.Join(", ", metrics.Select(kv => $"{kv.Key} {kv.Value.ToString("0.0000", Inv)}")));
        writer.Flush();
    }

    /// <inheritdoc />
    public void OnCheckpoint(long iteration, string path) { writer.WriteLine($"[iter {iteration.ToString(Inv).PadLeft(_width)}] checkpoint: {path}"); writer.Flush(); }

    /// <inheritdoc />
    public void OnMessage(long iteration, string message) { writer.WriteLine($"[iter {iteration.ToString(Inv).PadLeft(_width)}] {message}"); writer.Flush(); }

    /// <inheritdoc />
    public void OnEnd(TrainingResult result) { writer.WriteLine($"training {result.Status.ToString().ToLowerInvariant()}: {result.Message}"); writer.Flush(); }

    /// <summary>A duration as <c>H:MM:SS</c> (<c>Nd HH:MM:SS</c> from a day on); "?" when unknown.</summary>
    public static string Eta(double seconds)
    {
        if (!double.IsFinite(seconds) || seconds < 0) return "?";
        var t = TimeSpan.FromSeconds(Math.Round(seconds));
        return t.TotalDays >= 1 ? $"{(int)t.TotalDays}d {t:hh\\:mm\\:ss}" : $"{(int)t.TotalHours}:{t:mm\\:ss}";
    }
}
