using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace Mcir.Host.Tests;

/// <summary><c>mcir-host plot</c>: curves of runs' metrics.jsonl drawn into a PNG (ScottPlot on SkiaSharp).</summary>
public class PlotCommandTests
{
    // A metrics.jsonl as JsonLinesMetricsLog writes it: train records with loss parts (SPN's per-negative parts
    // included), val records every 5 iterations, and the other events.
    private static string WriteRun(TempDir tmp, string name, bool spn, double offset)
    {
        string dir = tmp.Sub(name);
        var lines = new List<string> { """{"event":"start","iter":0,"total_iter":20,"resumed_from":null,"time":"2026-01-01T00:00:00Z"}""" };
        for (int i = 1; i <= 20; i++)
        {
            double l1 = 0.2 / i + offset;
            string parts = spn
                ? FormattableString.Invariant($"\"l1\":{l1},\"spn\":{-0.01 * i},\"spn/neg1\":{-0.005 * i},\"total\":{l1 - 0.01 * i}")
                : FormattableString.Invariant($"\"l1\":{l1},\"total\":{l1}");
            lines.Add(FormattableString.Invariant($"{{\"event\":\"train\",\"iter\":{i},\"lr\":0.0001,\"loss\":{{{parts}}},\"time_per_iter\":0.1,\"eta\":1,\"time\":\"t\"}}"));
            if (i % 5 == 0)
                lines.Add(FormattableString.Invariant($"{{\"event\":\"val\",\"iter\":{i},\"metrics\":{{\"psnr\":{30 + i * 0.1 + offset},\"ssim\":{0.8 + i * 0.001}}},\"time\":\"t\"}}"));
        }
        lines.Add("""{"event":"checkpoint","iter":20,"path":"x","time":"t"}""");
        lines.Add("""{"event":"end","iter":20,"status":"completed","message":"","time":"t"}""");
        File.WriteAllLines(Path.Combine(dir, "metrics.jsonl"), lines);
        return dir;
    }

    [Fact]
    public void OverlaysTwoRunsInOnePngWithAPanelPerLossPartAndMetric()
    {
        using var tmp = new TempDir();
        string spn = WriteRun(tmp, "edsr-spn", spn: true, offset: 0), l1 = WriteRun(tmp, "edsr-l1", spn: false, offset: 0.01);
        string png = Path.Combine(tmp.Path, "out", "curves.png");
        var (code, _, stderr) = HostRunner.Run("plot", spn, l1, "--output", png, "--width", "1000");
        Assert.True(code == 0, stderr);

        using var image = Image.Load<Rgba32>(png);
        // Panels l1, spn, total (spn/neg1 left out), PSNR, SSIM: 3 rows of 2 panels, 360 px each.
        Assert.Equal(1000, image.Width);
        Assert.Equal(3 * 360, image.Height);
        var colours = new Dictionary<Rgba32, int>();
        image.ProcessPixelRows(a =>
        {
            for (int y = 0; y < a.Height; y++)
                foreach (var p in a.GetRowSpan(y)) colours[p] = colours.GetValueOrDefault(p) + 1;
        });
        Assert.True(colours.Count > 50, $"{colours.Count} colours"); // lines, text, anti-aliasing: not a blank image
        // The two runs' lines in the palette's first two colours (Category10 blue, orange), both drawn.
        Assert.True(colours.GetValueOrDefault(new Rgba32(0x1f, 0x77, 0xb4)) > 200, "first run's colour missing");
        Assert.True(colours.GetValueOrDefault(new Rgba32(0xff, 0x7f, 0x0e)) > 200, "second run's colour missing");
        // Mostly white background.
        Assert.True(colours.GetValueOrDefault(new Rgba32(255, 255, 255)) > image.Width * image.Height / 2);
    }

    [Fact]
    public void AFolderWithoutMetricsIsAnErrorNamingIt()
    {
        using var tmp = new TempDir();
        string empty = tmp.Sub("empty");
        var (code, _, stderr) = HostRunner.Run("plot", empty, "--output", Path.Combine(tmp.Path, "c.png"));
        Assert.Equal(1, code);
        Assert.Equal($"error: {empty}: no metrics.jsonl (expected a run folder or its metrics.jsonl)", stderr.Trim());
    }
}
