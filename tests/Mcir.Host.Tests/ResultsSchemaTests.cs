using System.Text.Json.Nodes;

namespace Mcir.Host.Tests;

/// <summary>results.json (end of <c>run</c>), <c>test --json</c> and <c>metrics --json</c> write one schema per test set.</summary>
public class ResultsSchemaTests
{
    private static readonly string[] SharedKeys = ["dataset", "protocol", "model", "baseline", "start", "images"];

    private static string[] Keys(JsonNode? node) => node!.AsObject().Select(p => p.Key).Order(StringComparer.Ordinal).ToArray();

    private static double D(JsonNode? node) => (double)node!;

    [Fact]
    public void RunTestAndMetricsShareTheSchemaAndTheNumbers()
    {
        using var tmp = new TempDir();
        var (code, _, stderr) = HostRunner.Run("run", "--config", TinyRun.Write(tmp, testImages: 2), "--set", "loss.spn=null", "train.ema_decay=0.9");
        Assert.True(code == 0, stderr);
        string run = Path.Combine(tmp.Path, "runs", "tiny"), test = Path.Combine(tmp.Path, "test"), saved = Path.Combine(tmp.Path, "saved");
        string testJson = Path.Combine(tmp.Path, "test.json"), metricsJson = Path.Combine(tmp.Path, "metrics.json");
        // The run's protocol: basicsr, Y channel, crop border 2 (TinyRun's metrics section).
        (code, _, stderr) = HostRunner.Run("test", "--weights", run, "--gt", test, "--crop-border", "2", "--y-channel", "--json", testJson, "--save-images", saved);
        Assert.True(code == 0, stderr);
        (code, _, stderr) = HostRunner.Run("metrics", "--gt", test, "--restored", saved, "--crop-border", "2", "--y-channel", "--json", metricsJson);
        Assert.True(code == 0, stderr);

        var fromRun = Assert.Single(JsonNode.Parse(File.ReadAllText(Path.Combine(run, "results.json")))!.AsArray())!;
        var fromTest = JsonNode.Parse(File.ReadAllText(testJson))!;
        var fromMetrics = JsonNode.Parse(File.ReadAllText(metricsJson))!;

        // The same top-level keys; test adds its context (and the model's name and options beside its scores).
        Assert.Equal(SharedKeys.Order(StringComparer.Ordinal), Keys(fromRun));
        Assert.Equal(SharedKeys.Order(StringComparer.Ordinal), Keys(fromMetrics));
        Assert.Equal(SharedKeys.Concat(["weights", "scale", "lq", "tile"]).Order(StringComparer.Ordinal), Keys(fromTest));
        Assert.Equal(["psnr", "ssim"], Keys(fromRun["model"]));
        Assert.Equal(["psnr", "ssim"], Keys(fromMetrics["model"]));
        Assert.Equal(["name", "options", "psnr", "ssim"], Keys(fromTest["model"]));
        Assert.Equal(["name", "psnr", "ssim"], Keys(fromRun["baseline"]));
        Assert.Equal(Keys(fromRun["baseline"]), Keys(fromTest["baseline"]));
        Assert.Null(fromMetrics["baseline"]); // restored files alone have no baseline
        Assert.Null(fromRun["start"]); // trained from scratch
        Assert.Null(fromTest["start"]);
        Assert.Null(fromMetrics["start"]);
        Assert.True(JsonNode.DeepEquals(fromRun["protocol"], fromTest["protocol"]), fromTest["protocol"]!.ToJsonString());
        Assert.True(JsonNode.DeepEquals(fromRun["protocol"], fromMetrics["protocol"]), fromMetrics["protocol"]!.ToJsonString());
        Assert.Equal("tiny-test", (string?)fromRun["dataset"]); // the run's data.test[0].name
        Assert.Equal("test", (string?)fromTest["dataset"]); // the --gt folder's name
        Assert.Equal("test", (string?)fromMetrics["dataset"]);
        Assert.Equal("bicubic", (string?)fromTest["baseline"]!["name"]);
        Assert.Equal((string?)fromRun["baseline"]!["name"], (string?)fromTest["baseline"]!["name"]);

        var runImages = fromRun["images"]!.AsArray();
        var testImages = fromTest["images"]!.AsArray();
        var metricsImages = fromMetrics["images"]!.AsArray();
        Assert.Equal(["v0", "v1"], runImages.Select(i => (string)i!["name"]!));
        Assert.Equal(["v0", "v1"], testImages.Select(i => (string)i!["name"]!));
        Assert.Equal(["v0", "v1"], metricsImages.Select(i => (string)i!["name"]!));
        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(["baseline_psnr", "baseline_ssim", "name", "psnr", "ssim"], Keys(runImages[i]));
            Assert.Equal(Keys(runImages[i]), Keys(testImages[i]));
            Assert.Equal(["name", "psnr", "ssim"], Keys(metricsImages[i]));
            // The run scored its in-memory EMA network; test loads the checkpoint's EMA weights into a new network, whose
            // float32 convolutions may sum in another order (another memory layout): equal to 1e-9 dB, as in
            // InferenceCommandTests. The baseline is the same float64 computation on the same images: to 1e-12.
            Assert.Equal(D(runImages[i]!["psnr"]), D(testImages[i]!["psnr"]), 9);
            Assert.Equal(D(runImages[i]!["ssim"]), D(testImages[i]!["ssim"]), 9);
            Assert.Equal(D(runImages[i]!["baseline_psnr"]), D(testImages[i]!["baseline_psnr"]), 12);
            Assert.Equal(D(runImages[i]!["baseline_ssim"]), D(testImages[i]!["baseline_ssim"]), 12);
            // metrics scores the 8-bit PNGs test saved: the pixels test scored, through the same float64 protocol code in
            // another process (1e-12 for the summation order of vectorised code).
            Assert.Equal(D(testImages[i]!["psnr"]), D(metricsImages[i]!["psnr"]), 12);
            Assert.Equal(D(testImages[i]!["ssim"]), D(metricsImages[i]!["ssim"]), 12);
        }
        // The means are the plain means of the per-image values in all three.
        foreach (var doc in new[] { fromRun, fromTest, fromMetrics })
        {
            var images = doc["images"]!.AsArray();
            Assert.Equal(images.Average(i => D(i!["psnr"])), D(doc["model"]!["psnr"]), 12);
            Assert.Equal(images.Average(i => D(i!["ssim"])), D(doc["model"]!["ssim"]), 12);
        }
        Assert.Equal(D(fromTest["model"]!["psnr"]), D(fromMetrics["model"]!["psnr"]), 12);
        Assert.Equal(D(fromRun["baseline"]!["psnr"]), D(fromTest["baseline"]!["psnr"]), 12);
    }
}
