using System.Text.Json.Nodes;
using Mcir.Core.Data;

namespace Mcir.Host.Tests;

/// <summary>
/// <c>model.eval_name</c>: a run trains one model and scores validation and test sets with another registered model of
/// the same state dict (NAFNet trained, NAFNetLocal tested, as NAFNet's GoPro numbers are made).
/// </summary>
public sealed class EvalModelTests
{
    private static string NafnetWeights => Path.Combine(AppContext.BaseDirectory, "TestData", "archs", "nafnet_small", "state_dict.pth");

    private static string WriteRun(TempDir tmp, string evalName)
    {
        string trainGt = tmp.Sub("train-gt"), trainLq = tmp.Sub("train-lq"), testGt = tmp.Sub("test-gt"), testLq = tmp.Sub("test-lq");
        var rng = new Random(5);
        // Pairs: a smooth image and a slightly shifted copy of it. The 400-pixel test image is larger than 1.5 x 256, so
        // nafnet-small-local's first-level pools are local there.
        foreach (var (gt, lq, name, h, w) in new[] { (trainGt, trainLq, "t0", 64, 64), (trainGt, trainLq, "t1", 64, 64), (testGt, testLq, "v0", 400, 408) })
        {
            var image = TinyRun.Smooth(h, w, rng);
            ImageIO.Write(Path.Combine(gt, name + ".png"), image);
            ImageIO.Write(Path.Combine(lq, name + ".png"), new RgbImage(h, w, image.Pixels.Select(v => Math.Clamp(v + 6, 0, 255)).ToArray()));
        }
        string config = Path.Combine(tmp.Path, "run.json");
        File.WriteAllText(config, $$"""
        {
          "name": "eval-model",
          "output_root": "{{tmp.Path}}/runs",
          "model": { "name": "nafnet-small", "eval_name": {{(evalName.Length == 0 ? "null" : $"\"{evalName}\"")}} },
          "path": { "pretrain_network_g": "{{NafnetWeights}}" },
          "data": {
            "train": { "type": "paired-folder", "dataroot_gt": "{{trainGt}}", "dataroot_lq": "{{trainLq}}", "gt_size": 32 },
            "test": [ { "type": "paired-folder", "name": "big", "dataroot_gt": "{{testGt}}", "dataroot_lq": "{{testLq}}" } ],
            "batch_size": 2
          },
          "loss": { "reconstruction": "psnr-loss" },
          "train": { "total_iter": 2, "print_freq": 1, "seed": 1, "optimizer": { "type": "adamw", "lr": 1e-6 } }
        }
        """);
        return config;
    }

    [Fact]
    public void TestSetsAreScoredWithTheEvalModelAndTheTrainedWeights()
    {
        using var tmp = new TempDir();
        var (code, stdout, stderr) = HostRunner.Run("run", "--config", WriteRun(tmp, "nafnet-small-local"));
        Assert.True(code == 0, stderr);
        Assert.Contains("scored with model nafnet-small-local (model.eval_name)", stdout + stderr);
        string runDir = Path.Combine(tmp.Path, "runs", "eval-model");
        var resolved = JsonNode.Parse(File.ReadAllText(Path.Combine(runDir, "config.resolved.json")))!;
        Assert.Equal("nafnet-small-local", (string?)resolved["model"]!["eval_name"]);
        double runPsnr = (double)JsonNode.Parse(File.ReadAllText(Path.Combine(runDir, "results.json")))!.AsArray()[0]!["model"]!["psnr"]!;

        // test with the run's checkpoint: as nafnet-small-local it is the run's own number (same weights, kernels and
        // shapes); as the plain trained model (the default) another one, since local and global pools differ at 400 px.
        string Psnr(params string[] model)
        {
            string json = Path.Combine(tmp.Path, $"test{model.Length}.json");
            var (c, _, e) = HostRunner.Run(["test", "--weights", runDir, .. model, "--gt", Path.Combine(tmp.Path, "test-gt"),
                "--lq", Path.Combine(tmp.Path, "test-lq"), "--json", json]);
            Assert.True(c == 0, e);
            return ((double)JsonNode.Parse(File.ReadAllText(json))!["model"]!["psnr"]!).ToString("R");
        }
        Assert.Equal(runPsnr.ToString("R"), Psnr("--model", "nafnet-small-local"));
        Assert.NotEqual(runPsnr.ToString("R"), Psnr());
    }

    [Theory]
    [InlineData("nafnet-locale", "model.eval_name 'nafnet-locale' is not a registered model")]
    // Another options type keeps its own defaults, so its state dict differs (a NAFNet variant instead takes the trained
    // options with its own difference: nafnet-local after a width-8 nafnet evaluates a width-8 NAFNetLocal).
    [InlineData("ffa-net-small", "model.eval_name 'ffa-net-small' must have the same state dict")]
    public void AWrongEvalModelIsOneErrorBeforeTraining(string evalName, string expected)
    {
        using var tmp = new TempDir();
        var (code, _, stderr) = HostRunner.Run("run", "--config", WriteRun(tmp, evalName));
        Assert.Equal(1, code);
        var error = Assert.Single(stderr.Split('\n'), l => l.StartsWith("error: ", StringComparison.Ordinal));
        Assert.Contains(expected, error);
        Assert.DoesNotContain("   at ", stderr); // no stack trace
        Assert.False(Directory.Exists(Path.Combine(tmp.Path, "runs", "eval-model", "checkpoints")), "training started");
    }
}
