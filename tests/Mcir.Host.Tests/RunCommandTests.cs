using System.Text.Json.Nodes;
using Mcir.Core.Data;

namespace Mcir.Host.Tests;

/// <summary>End to end: mcir-host run with the bundled SR plugin on tiny generated data.</summary>
public class RunCommandTests
{
    [Fact]
    public void TrainsWithSpnWritesCheckpointsAndReportsTheTestTable()
    {
        using var tmp = new TempDir();
        var (code, stdout, stderr) = HostRunner.Run("run", "--config", TinyRun.Write(tmp));

        Assert.True(code == 0, stderr);
        string runDir = Path.Combine(tmp.Path, "runs", "tiny");
        // Offline, SPN's embedding is the pretrained ResNet18 from NuGet, and the run log names its file.
        Assert.Contains("embedding resnet18-imagenet", stderr);
        Assert.Contains("ResNet18.onnx", stderr);
        Assert.Contains("negatives: ema, K = 2", stderr);
        Assert.Contains("test set tiny-test", stdout);
        Assert.Contains("v0", stdout);
        Assert.True(Directory.Exists(Path.Combine(runDir, "checkpoints", "iter_000004")));
        Assert.True(File.Exists(Path.Combine(runDir, "checkpoints", "iter_000004", "negatives.safetensors")));
        var metrics = File.ReadAllLines(Path.Combine(runDir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(4, metrics.Count(m => (string?)m["event"] == "train"));
        Assert.All(metrics.Where(m => (string?)m["event"] == "train"), m => Assert.NotNull(m["loss"]!["spn/neg1"]));
        var resolved = JsonNode.Parse(File.ReadAllText(Path.Combine(runDir, "config.resolved.json")))!;
        Assert.Equal(8, (int)resolved["model"]!["options"]!["num_feat"]!);
        Assert.Equal(255, (double)resolved["model"]!["options"]!["img_range"]!); // a default filled in
        Assert.Equal("resnet18-imagenet", (string?)resolved["loss"]!["spn"]!["embedding_type"]); // what actually ran
        Assert.NotNull(resolved["loss"]!["spn"]!["layer_weights"]!["stem"]);
        Assert.Equal("tiny", (string?)resolved["train"]!["name"]);
        // The resolved configuration is itself a valid configuration.
        Mcir.Core.Runs.RunComposition.Bind(Mcir.Core.Config.ConfigBinder.Load(Path.Combine(runDir, "config.resolved.json")));
        var results = JsonNode.Parse(File.ReadAllText(Path.Combine(runDir, "results.json")))!.AsArray();
        Assert.Equal("tiny-test", (string?)results[0]!["dataset"]);
        Assert.InRange((double)results[0]!["baseline"]!["psnr"]!, 10, 100);
        Assert.True(File.Exists(Path.Combine(runDir, "test", "tiny-test", "v0.png")));
        var events = Directory.GetFiles(Path.Combine(runDir, "tb"), "events.out.tfevents.*");
        Assert.Single(events);
        Assert.True(new FileInfo(events[0]).Length > 200, "TensorBoard scalars were written");
    }

    [Fact]
    public void ResumeAutoContinuesFromTheNewestCheckpoint()
    {
        using var tmp = new TempDir();
        string config = TinyRun.Write(tmp, "resumed");
        var first = HostRunner.Run("run", "--config", config, "--set", "train.total_iter=2");
        Assert.True(first.Code == 0, first.Err);

        var second = HostRunner.Run("run", "--config", config, "--resume", "auto");

        Assert.True(second.Code == 0, second.Err);
        Assert.Contains("iter_000002", second.Err);
        Assert.Contains("(iteration 2)", second.Err);
        var trainEvents = File.ReadAllLines(Path.Combine(tmp.Path, "runs", "resumed", "metrics.jsonl"))
            .Select(l => JsonNode.Parse(l)!).Where(m => (string?)m["event"] == "train").Select(m => (long)m["iter"]!).ToList();
        Assert.Equal([1L, 2, 3, 4], trainEvents);
    }

    [Fact]
    public void MisspelledKeyNamesTheClosestValidKey()
    {
        using var tmp = new TempDir();
        var (code, _, stderr) = HostRunner.Run("run", "--config", TinyRun.Write(tmp), "--set", "train.totl_iter=3");
        Assert.Equal(HostCommands.UserError, code);
        Assert.Contains("unknown configuration key 'train.totl_iter'", stderr);
        Assert.Contains("did you mean 'train.total_iter'?", stderr);
    }

    [Fact]
    public void MisspelledModelOptionNamesTheClosestValidKey()
    {
        using var tmp = new TempDir();
        var (code, _, stderr) = HostRunner.Run("run", "--config", TinyRun.Write(tmp), "--set", "model.options.num_blocks=2");
        Assert.Equal(HostCommands.UserError, code);
        Assert.Contains("'model.options.num_blocks'", stderr);
        Assert.Contains("did you mean 'model.options.num_block'?", stderr);
    }

    [Fact]
    public void UnknownModelListsTheKnownOnes()
    {
        using var tmp = new TempDir();
        var (code, _, stderr) = HostRunner.Run("run", "--config", TinyRun.Write(tmp), "--set", "model.name=edsr-tiny");
        Assert.Equal(HostCommands.UserError, code);
        Assert.Contains("'edsr-tiny' is not a registered model", stderr);
        Assert.Contains("edsr, edsr-light", stderr);
    }

    [Fact]
    public void HugeLambdaCollapsesTheRunWithExitCode3AndNoCheckpointFromTheCollapse()
    {
        using var tmp = new TempDir();
        var (code, _, stderr) = HostRunner.Run("run", "--config", TinyRun.Write(tmp, "collapsing"),
            "--set", "loss.spn.lambda=1000", "collapse_guard.ratio_patience=2", "train.total_iter=20", "train.checkpoint_freq=1");

        Assert.Equal(3, code);
        Assert.Contains("collapse: negative term 'spn'", stderr);
        Assert.Contains("lower lambda", stderr);
        var checkpoints = Directory.GetDirectories(Path.Combine(tmp.Path, "runs", "collapsing", "checkpoints"), "iter_*").Select(Path.GetFileName).ToList();
        Assert.Equal(["iter_000001"], checkpoints); // iteration 2 collapsed: nothing written from it
    }
}
