using System.Text.Json.Nodes;
using Mcir.Core.Metrics;
using Mcir.Core.Metrics.Protocols;
using Mcir.Core.Runs;
using Mcir.Core.Tests.Data.Datasets;

namespace Mcir.Core.Tests.Metrics;

public class ResultsJsonTests
{
    private static readonly ProtocolInfo Sr = new BasicSrProtocol(2, true).Describe(gray: false, floatOutput: false);

    private static MetricsReport Report(params (string Name, double Psnr, double Ssim)[] images) =>
        new(Sr, images.Select(i => new ImageScore(i.Name, i.Psnr, i.Ssim)).ToList());

    [Fact]
    public void ATableWithBaselineAndStartWritesEveryPartAndPerImageColumns()
    {
        // binary fractions, so the means are exact
        var model = Report(("a", 30, 0.75), ("b", 32, 0.5));
        var baseline = Report(("a", 28, 0.5), ("b", 29, 0.25));
        var start = Report(("a", 29, 0.625), ("b", 31, 0.375));

        var doc = new TestTable("Set5", model, baseline, "bicubic", start).ToJson();

        Assert.Equal("Set5", (string?)doc["dataset"]);
        Assert.True(JsonNode.DeepEquals(Sr.ToJson(), doc["protocol"]));
        Assert.Equal((31.0, 0.625), ((double)doc["model"]!["psnr"]!, (double)doc["model"]!["ssim"]!));
        Assert.Equal(("bicubic", 28.5, 0.375), ((string)doc["baseline"]!["name"]!, (double)doc["baseline"]!["psnr"]!, (double)doc["baseline"]!["ssim"]!));
        Assert.Equal((30.0, 0.5), ((double)doc["start"]!["psnr"]!, (double)doc["start"]!["ssim"]!));
        var b = doc["images"]![1]!;
        Assert.Equal(("b", 32.0, 0.5, 29.0, 0.25, 31.0, 0.375),
            ((string)b["name"]!, (double)b["psnr"]!, (double)b["ssim"]!, (double)b["baseline_psnr"]!, (double)b["baseline_ssim"]!, (double)b["start_psnr"]!, (double)b["start_ssim"]!));
    }

    [Fact]
    public void WithoutBaselineOrStartThoseAreNullAndTheirColumnsAbsent()
    {
        var doc = Report(("a", double.PositiveInfinity, 1.0)).ToJson("restored");

        Assert.Null(doc["baseline"]);
        Assert.Null(doc["start"]);
        Assert.True(doc.ContainsKey("baseline") && doc.ContainsKey("start"));
        var row = doc["images"]![0]!.AsObject();
        Assert.Equal(["name", "psnr", "ssim"], row.Select(p => p.Key));
        // JSON has no infinity: identical images are written as "inf", per image and in the mean
        Assert.Equal("inf", (string?)row["psnr"]);
        Assert.Equal("inf", (string?)doc["model"]!["psnr"]);
    }

    [Fact]
    public void ABaselineOfOtherImagesIsRefused()
    {
        var model = Report(("a", 30, 0.9), ("b", 32, 0.8));
        Assert.Throws<ArgumentException>(() => ResultsJson.TestSet("x", model, Report(("a", 28, 0.85), ("c", 29, 0.75)), "input"));
        Assert.Throws<ArgumentException>(() => ResultsJson.TestSet("x", model, start: Report(("a", 28, 0.85))));
    }

    [Fact]
    public void WrittenFilesUseTheSharedSettingsAndReadBack()
    {
        using var dir = new TempDir();
        string path = Path.Combine(dir.Path, "r.json");
        ResultsJson.Write(path, new JsonArray(Report(("a", 30.25, 0.5)).ToJson("d")));

        string text = File.ReadAllText(path);
        Assert.Contains("\n", text); // indented, as ConfigBinder.JsonOptions writes
        Assert.Equal(30.25, (double)JsonNode.Parse(text)![0]!["model"]!["psnr"]!);
    }
}
