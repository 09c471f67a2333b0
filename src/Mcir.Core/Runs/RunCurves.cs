using System.Text.Json;
using ScottPlot;

namespace Mcir.Core.Runs;

/// <summary>One run's curves read from its <c>metrics.jsonl</c>: loss parts and validation metrics by iteration.</summary>
/// <param name="Label">Legend text (the run folder's name).</param>
/// <param name="Loss">Loss part (e.g. <c>l1</c>, <c>spn</c>, <c>total</c>) → (iteration, value) in file order.</param>
/// <param name="Validation">Validation metric (<c>psnr</c> in dB, <c>ssim</c>) → (iteration, value).</param>
public sealed record RunSeries(
    string Label,
    IReadOnlyDictionary<string, IReadOnlyList<(long Iter, double Value)>> Loss,
    IReadOnlyDictionary<string, IReadOnlyList<(long Iter, double Value)>> Validation);

/// <summary>
/// Training curves as a PNG (ScottPlot 5 on SkiaSharp): one panel per loss part and per validation metric, iterations on
/// x, several runs overlaid with a legend (e.g. an SPN run and its L1 baseline). Loss parts with a <c>/</c> (per-negative
/// and per-layer SPN parts) are left out: their sum is the part before the slash.
/// </summary>
public static class RunCurves
{
    /// <summary>The file every run folder gets at the end of training.</summary>
    public const string FileName = "curves.png";

    /// <summary>
    /// Reads the <c>train</c> and <c>val</c> records of a run folder's <c>metrics.jsonl</c> (or of that file itself).
    /// Non-finite values (written as strings) are skipped. A resumed run's log is already cut at the checkpoint, so an
    /// iteration appears once.
    /// </summary>
    /// <exception cref="McirException">No metrics.jsonl there, or a line that is not JSON.</exception>
    public static RunSeries Read(string runOrFile)
    {
        string file = Directory.Exists(runOrFile) ? Path.Combine(runOrFile, "metrics.jsonl") : runOrFile;
        if (!File.Exists(file))
            throw new McirException($"{runOrFile}: no metrics.jsonl (expected a run folder or its metrics.jsonl)");
        string full = Path.GetFullPath(file);
        string label = Path.GetFileName(Path.GetDirectoryName(full)) ?? full;
        var loss = new Dictionary<string, List<(long, double)>>();
        var val = new Dictionary<string, List<(long, double)>>();
        int lineNo = 0;
        // The trainer may still hold the file open for appending.
        using var reader = new StreamReader(new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete));
        while (reader.ReadLine() is { } line)
        {
            lineNo++;
            if (line.Length == 0) continue;
            JsonDocument doc;
            try { doc = JsonDocument.Parse(line); }
            catch (JsonException) { throw new McirException($"{file}: line {lineNo} is not JSON"); }
            using (doc)
            {
                var r = doc.RootElement;
                if (!r.TryGetProperty("event", out var ev) || !r.TryGetProperty("iter", out var it) || it.ValueKind != JsonValueKind.Number) continue;
                var (target, field) = ev.GetString() switch { "train" => (loss, "loss"), "val" => (val, "metrics"), _ => (null, "") };
                if (target is null || !r.TryGetProperty(field, out var values) || values.ValueKind != JsonValueKind.Object) continue;
                foreach (var p in values.EnumerateObject())
                {
                    if (p.Value.ValueKind != JsonValueKind.Number || (target == loss && p.Name.Contains('/'))) continue;
                    if (!target.TryGetValue(p.Name, out var list)) target[p.Name] = list = [];
                    list.Add((it.GetInt64(), p.Value.GetDouble()));
                }
            }
        }
        return new RunSeries(label,
            loss.ToDictionary(k => k.Key, k => (IReadOnlyList<(long, double)>)k.Value),
            val.ToDictionary(k => k.Key, k => (IReadOnlyList<(long, double)>)k.Value));
    }

    /// <summary>
    /// Draws the runs into <paramref name="output"/> (PNG): a grid of two panels per row, <paramref name="width"/> pixels
    /// wide and <paramref name="panelHeight"/> pixels per row. Panels: every loss part of any run (in order of first
    /// appearance), then validation PSNR (dB) and SSIM (and any other validation metric).
    /// </summary>
    /// <exception cref="McirException">No run has any train or val record to draw.</exception>
    public static void Write(IReadOnlyList<RunSeries> runs, string output, int width = 1200, int panelHeight = 360)
    {
        var panels = new List<(string Title, string YLabel, Alignment Legend, Func<RunSeries, IReadOnlyList<(long Iter, double Value)>?> Get)>();
        foreach (var part in runs.SelectMany(r => r.Loss.Keys).Distinct())
            panels.Add(($"loss: {part}", part, Alignment.UpperRight, r => r.Loss.GetValueOrDefault(part)));
        // Validation scores rise: their legend goes to the lower right, out of the curves' way.
        foreach (var metric in runs.SelectMany(r => r.Validation.Keys).Distinct())
            panels.Add(($"validation: {metric.ToUpperInvariant()}", metric == "psnr" ? "PSNR (dB)" : metric.ToUpperInvariant(), Alignment.LowerRight, r => r.Validation.GetValueOrDefault(metric)));
        if (panels.Count == 0)
            throw new McirException($"{string.Join(", ", runs.Select(r => r.Label))}: no train or val records to plot yet");

        // Same run, same colour in every panel; labels made unique so the legend tells runs apart.
        var labels = runs.Select(r => r.Label).ToList();
        for (int i = 0; i < labels.Count; i++)
            if (labels.Count(l => l == runs[i].Label) > 1) labels[i] = $"{runs[i].Label} ({i + 1})";
        var palette = new ScottPlot.Palettes.Category10();

        int cols = panels.Count == 1 ? 1 : 2, rows = (panels.Count + cols - 1) / cols;
        var multiplot = new Multiplot();
        multiplot.AddPlots(panels.Count);
        multiplot.Layout = new ScottPlot.MultiplotLayouts.Grid(rows, cols);
        for (int i = 0; i < panels.Count; i++)
        {
            var plot = multiplot.GetPlot(i);
            var (title, yLabel, legend, get) = panels[i];
            for (int r = 0; r < runs.Count; r++)
            {
                if (get(runs[r]) is not { Count: > 0 } points) continue;
                var line = plot.Add.ScatterLine(points.Select(p => (double)p.Iter).ToArray(), points.Select(p => p.Value).ToArray(), palette.GetColor(r));
                line.LegendText = labels[r];
                line.LineWidth = 1.5f;
                if (points.Count <= 50) line.MarkerSize = 5; // few points (validation): show each one
            }
            plot.Title(title);
            plot.XLabel("iteration");
            plot.YLabel(yLabel);
            plot.ShowLegend(legend);
        }
        var dir = Path.GetDirectoryName(Path.GetFullPath(output));
        if (dir is not null) Directory.CreateDirectory(dir);
        multiplot.SavePng(output, width, panelHeight * rows);
    }

    /// <summary>
    /// Writes <c>curves.png</c> into a finished run folder. A plotting failure (e.g. Skia's native library missing)
    /// never fails the run: it is one warning line in <paramref name="log"/>.
    /// </summary>
    public static void TryWrite(string runDir, TextWriter log)
    {
        try
        {
            Write([Read(runDir)], Path.Combine(runDir, FileName));
        }
        catch (Exception e) when (e is McirException or IOException or DllNotFoundException or TypeInitializationException or InvalidOperationException)
        {
            log.WriteLine($"warning: {FileName} not written: {e.Message}");
        }
    }
}
