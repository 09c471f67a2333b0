using System.Text.Json;
using Mcir.Core.Data;

namespace Mcir.Host.Tests;

public class MetricsCommandTests
{
    private static readonly string[] Crops = ["LadyBird_tl252", "LadyBird_c201x255", "Garden_tl252", "Garden_c201x255", "TwoWings_tl252", "TwoWings_c201x255"];

    public static TheoryData<int, bool> Protocols => new() { { 2, false }, { 3, true }, { 4, false }, { 4, true } };

    [Theory]
    [MemberData(nameof(Protocols))]
    public void PrintsAndWritesTheFixtureNumbers(int scale, bool y)
    {
        using var tmp = new TempDir();
        string gt = tmp.Sub("gt"), restored = tmp.Sub("restored"), json = Path.Combine(tmp.Path, "out", "metrics.json");
        Directory.CreateDirectory(Path.GetDirectoryName(json)!);
        foreach (var crop in Crops)
        {
            ImageIO.Write(Path.Combine(gt, crop + ".png"), ModCrop.Apply(ImageIO.Read(Fixtures.Metrics($"hr_{crop}.png")), scale));
            File.Copy(Fixtures.Metrics($"bic_{crop}_x{scale}.png"), Path.Combine(restored, crop + ".png"));
        }

        var args = new List<string> { "metrics", "--gt", gt, "--restored", restored, "--crop-border", scale.ToString(), "--json", json };
        if (y) args.Add("--y-channel");
        var (code, stdout, stderr) = HostRunner.Run(args.ToArray());

        Assert.True(code == 0, stderr);
        using var expected = JsonDocument.Parse(File.ReadAllText(Fixtures.Metrics("expected.json")));
        using var actual = JsonDocument.Parse(File.ReadAllText(json));
        var rows = actual.RootElement.GetProperty("images").EnumerateArray().ToDictionary(e => e.GetProperty("name").GetString()!);
        Assert.Equal(Crops.Length, rows.Count);
        double psnrSum = 0, ssimSum = 0;
        foreach (var crop in Crops)
        {
            var e = expected.RootElement.GetProperty("images").GetProperty(crop).GetProperty("scales").GetProperty(scale.ToString());
            double ePsnr = e.GetProperty(y ? "psnr_y" : "psnr_rgb").GetDouble(), eSsim = e.GetProperty(y ? "ssim_y" : "ssim_rgb").GetDouble();
            Assert.Equal(ePsnr, rows[crop].GetProperty("psnr").GetDouble(), 1e-6);
            Assert.Equal(eSsim, rows[crop].GetProperty("ssim").GetDouble(), 1e-8);
            Assert.Contains($"{crop}", stdout);
            Assert.Contains(ePsnr.ToString("F4"), stdout);
            psnrSum += ePsnr; ssimSum += eSsim;
        }
        var mean = actual.RootElement.GetProperty("model");
        Assert.Equal(psnrSum / Crops.Length, mean.GetProperty("psnr").GetDouble(), 1e-6);
        Assert.Equal(ssimSum / Crops.Length, mean.GetProperty("ssim").GetDouble(), 1e-8);
        Assert.Contains((psnrSum / Crops.Length).ToString("F4"), stdout);
    }

    [Fact]
    public void DifferentFileSetsNameTheMissingFiles()
    {
        using var tmp = new TempDir();
        string gt = tmp.Sub("gt"), restored = tmp.Sub("restored");
        File.Copy(Fixtures.Metrics("hr_Garden_tl252.png"), Path.Combine(gt, "a.png"));
        File.Copy(Fixtures.Metrics("hr_Garden_tl252.png"), Path.Combine(gt, "b.png"));
        File.Copy(Fixtures.Metrics("hr_Garden_tl252.png"), Path.Combine(restored, "a.png"));
        File.Copy(Fixtures.Metrics("hr_Garden_tl252.png"), Path.Combine(restored, "c.png"));

        var (code, _, stderr) = HostRunner.Run("metrics", "--gt", gt, "--restored", restored);

        Assert.Equal(HostCommands.UserError, code);
        Assert.Contains($"only in {gt}: b.png", stderr);
        Assert.Contains($"only in {restored}: c.png", stderr);
    }

    [Fact]
    public void ProtocolSrIsTheYChannelWithTheScaleAsBorderAndTablesNameTheirProtocol()
    {
        using var tmp = new TempDir();
        string gt = tmp.Sub("gt"), restored = tmp.Sub("restored"), json = Path.Combine(tmp.Path, "metrics.json");
        const string crop = "LadyBird_c201x255";
        ImageIO.Write(Path.Combine(gt, crop + ".png"), ModCrop.Apply(ImageIO.Read(Fixtures.Metrics($"hr_{crop}.png")), 3));
        File.Copy(Fixtures.Metrics($"bic_{crop}_x3.png"), Path.Combine(restored, crop + ".png"));

        var (code, stdout, stderr) = HostRunner.Run("metrics", "--gt", gt, "--restored", restored, "--protocol", "sr", "--scale", "3", "--json", json);

        Assert.True(code == 0, stderr);
        Assert.Contains("protocol sr: Y channel, crop border 3 (the scale)", stdout);
        using var expected = JsonDocument.Parse(File.ReadAllText(Fixtures.Metrics("expected.json")));
        var e = expected.RootElement.GetProperty("images").GetProperty(crop).GetProperty("scales").GetProperty("3");
        using (var actual = JsonDocument.Parse(File.ReadAllText(json)))
        {
            Assert.Equal(e.GetProperty("psnr_y").GetDouble(), actual.RootElement.GetProperty("model").GetProperty("psnr").GetDouble(), 1e-6);
            Assert.Equal(e.GetProperty("ssim_y").GetDouble(), actual.RootElement.GetProperty("model").GetProperty("ssim").GetDouble(), 1e-8);
            var protocol = actual.RootElement.GetProperty("protocol");
            Assert.Equal("sr", protocol.GetProperty("name").GetString());
            Assert.Equal(3, protocol.GetProperty("crop_border").GetInt32());
            Assert.True(protocol.GetProperty("y_channel").GetBoolean());
        }

        (code, stdout, stderr) = HostRunner.Run("metrics", "--gt", gt, "--restored", restored, "--protocol", "idt", "--json", json);
        Assert.True(code == 0, stderr);
        Assert.Contains("protocol idt: Y from uint8 rgb2ycbcr, no crop", stdout);
        using (var actual = JsonDocument.Parse(File.ReadAllText(json)))
            Assert.Equal("idt", actual.RootElement.GetProperty("protocol").GetProperty("name").GetString());

        (code, _, stderr) = HostRunner.Run("metrics", "--gt", gt, "--restored", restored, "--protocol", "ffa-net");
        Assert.True(code == 0, stderr);
        Assert.Contains("note: protocol ffa-net scores a network's float output; here it scores the 8-bit files", stderr);
    }

    [Fact]
    public void SizeMismatchNamesBothFiles()
    {
        using var tmp = new TempDir();
        string gt = tmp.Sub("gt"), restored = tmp.Sub("restored");
        File.Copy(Fixtures.Metrics("hr_Garden_tl252.png"), Path.Combine(gt, "a.png"));
        File.Copy(Fixtures.Metrics("lr_Garden_tl252_x2.png"), Path.Combine(restored, "a.png"));

        var (code, _, stderr) = HostRunner.Run("metrics", "--gt", gt, "--restored", restored);

        Assert.Equal(HostCommands.UserError, code);
        Assert.Contains(Path.Combine(gt, "a.png"), stderr);
        Assert.Contains(Path.Combine(restored, "a.png"), stderr);
        Assert.Contains("126x126", stderr);
        Assert.Contains("252x252", stderr);
    }

    [Fact]
    public void UnreadableFileIsNamed()
    {
        using var tmp = new TempDir();
        string gt = tmp.Sub("gt"), restored = tmp.Sub("restored");
        File.Copy(Fixtures.Metrics("hr_Garden_tl252.png"), Path.Combine(gt, "a.png"));
        File.WriteAllText(Path.Combine(restored, "a.png"), "not an image");

        var (code, stdout, stderr) = HostRunner.Run("metrics", "--gt", gt, "--restored", restored, "--json", Path.Combine(tmp.Path, "m.json"));

        Assert.Equal(HostCommands.UserError, code);
        Assert.Contains(Path.Combine(restored, "a.png"), stderr);
        Assert.Equal("", stdout);
        Assert.False(File.Exists(Path.Combine(tmp.Path, "m.json")));
    }

    [Fact]
    public void IdenticalImagesGiveInfinitePsnrAndUnitSsim()
    {
        using var tmp = new TempDir();
        string gt = tmp.Sub("gt"), restored = tmp.Sub("restored"), json = Path.Combine(tmp.Path, "m.json");
        File.Copy(Fixtures.Metrics("lr_Garden_tl252_x4.png"), Path.Combine(gt, "a.png"));
        File.Copy(Fixtures.Metrics("lr_Garden_tl252_x4.png"), Path.Combine(restored, "a.png"));

        var (code, _, stderr) = HostRunner.Run("metrics", "--gt", gt, "--restored", restored, "--json", json);

        Assert.True(code == 0, stderr);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var row = doc.RootElement.GetProperty("images")[0];
        Assert.Equal("inf", row.GetProperty("psnr").GetString());
        Assert.Equal(1.0, row.GetProperty("ssim").GetDouble(), 12);
    }

    [Fact]
    public void PngWithABadTextChunkCrcIsScoredWithAWarning()
    {
        // Field case C2-11: libpng (OpenCV, BasicSR) warns about the tEXt chunk's CRC and ignores the chunk.
        using var tmp = new TempDir();
        string gt = tmp.Sub("gt"), restored = tmp.Sub("restored"), json = Path.Combine(tmp.Path, "m.json");
        File.Copy(Fixtures.Defects("ok.png"), Path.Combine(gt, "a.png"));
        File.Copy(Fixtures.Defects("bad_text_crc.png"), Path.Combine(restored, "a.png"));

        var (code, _, stderr) = HostRunner.Run("metrics", "--gt", gt, "--restored", restored, "--json", json);

        Assert.True(code == 0, stderr);
        string warning = Assert.Single(stderr.Split('\n'), l => l.StartsWith("warning: "));
        Assert.StartsWith($"warning: {Path.Combine(restored, "a.png")}: PNG ancillary chunk 'tEXt' at byte 33 has a wrong CRC", warning);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        Assert.Equal("inf", doc.RootElement.GetProperty("images")[0].GetProperty("psnr").GetString());
    }
}
