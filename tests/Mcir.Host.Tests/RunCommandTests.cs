using System.Text.Json.Nodes;
using Mcir.Core.Data;

namespace Mcir.Host.Tests;

/// <summary>End to end: mcir-host run with the bundled SR plugin on tiny generated data.</summary>
public class RunCommandTests
{
    // Case C2-03: the quickstart configuration with 4 iterations, lr 1e-4 and a multistep / cosine schedule. BasicSR steps
    // its scheduler only when current_iter > 1, so iteration i trains with schedule position i − 1; the expected rates are
    // BasicSR's MultiStepRestartLR / CosineAnnealingRestartLR driven that way (tests/Mcir.Core.Tests/TestData/schedules/basicsr_lr.py).
    [Theory]
    [InlineData("""{"type":"multistep","milestones":[2],"gamma":0.5}""", new[] { 1e-4, 1e-4, 5e-5, 5e-5 })]
    [InlineData("""{"type":"cosine","periods":[4],"eta_min":0}""", new[] { 1e-4, 8.535533905932738e-05, 5e-05, 1.4644660940672627e-05 })]
    public void LearningRatesFollowBasicSRsSchedulePosition(string scheduler, double[] expected)
    {
        using var tmp = new TempDir();
        TinyRun.Write(tmp); // for its train/test images
        string train = Path.Combine(tmp.Path, "train"), test = Path.Combine(tmp.Path, "test");
        string config = Path.Combine(AppContext.BaseDirectory, "configs", "quickstart", "edsr-light-x2-scratch-spn.json");
        var (code, _, stderr) = HostRunner.Run("run", "--config", config, "--set",
            "loss.spn=null", "train.total_iter=4", "train.optimizer.lr=1e-4", $"train.scheduler={scheduler}", "train.print_freq=1",
            // the tiny data and network of the host tests (the rates do not depend on them)
            $"output_root={tmp.Path}/runs", $"data.train.dataroot_gt={train}", "data.train.gt_size=32", "data.batch_size=2",
            $"data.val.dataroot_gt={test}", $$"""data.test=[{"type":"hr-folder","name":"t","dataroot_gt":"{{test}}","scale":2}]""",
            "model.options.num_feat=8", "model.options.num_block=1");
        Assert.True(code == 0, stderr);
        var lr = File.ReadAllLines(Path.Combine(tmp.Path, "runs", "quickstart-edsr-light-x2-scratch-spn", "metrics.jsonl"))
            .Select(l => JsonNode.Parse(l)!).Where(m => (string?)m["event"] == "train").Select(m => (double)m["lr"]!).ToArray();
        Assert.Equal(4, lr.Length);
        // metrics.jsonl holds the rate the optimiser used; the closed forms agree with BasicSR's recursive ones to rounding
        for (int i = 0; i < 4; i++) Assert.True(Math.Abs(lr[i] - expected[i]) <= 1e-12 * expected[i], $"iteration {i + 1}: lr {lr[i]:R}, expected {expected[i]:R}");
    }

    [Fact]
    public void TrainsWithSpnWritesCheckpointsAndReportsTheTestTable()
    {
        using var tmp = new TempDir();
        string config = TinyRun.Write(tmp);
        // A second test set on the same images, scored with its own protocol (data.test[1].protocol).
        var root = JsonNode.Parse(File.ReadAllText(config))!;
        var second = root["data"]!["test"]![0]!.DeepClone();
        second["name"] = "tiny-test-idt";
        second["protocol"] = "idt";
        root["data"]!["test"]!.AsArray().Add(second);
        File.WriteAllText(config, root.ToJsonString());
        var (code, stdout, stderr) = HostRunner.Run("run", "--config", config);

        Assert.True(code == 0, stderr);
        // Redirected output (logs, CI) is plain lines: no live progress line redrawn with carriage returns.
        Assert.DoesNotContain('\r', stderr);
        Assert.DoesNotContain('\u001b', stderr);
        string runDir = Path.Combine(tmp.Path, "runs", "tiny");
        Assert.Contains("test set tiny-test (protocol basicsr: Y channel, crop border 2)", stdout);
        Assert.Contains("test set tiny-test-idt (protocol idt: Y from uint8 rgb2ycbcr, no crop)", stdout);
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
        Assert.Equal("basicsr", (string?)results[0]!["protocol"]!["name"]);
        Assert.Equal(2, (int)results[0]!["protocol"]!["crop_border"]!);
        Assert.Equal("idt", (string?)results[1]!["protocol"]!["name"]);
        Assert.Equal(0, (int)results[1]!["protocol"]!["crop_border"]!);
        Assert.NotEqual((double)results[0]!["model"]!["psnr"]!, (double)results[1]!["model"]!["psnr"]!);
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
    public void A_new_run_into_a_used_folder_moves_the_earlier_run_aside_as_basicsr_does()
    {
        using var tmp = new TempDir();
        string config = TinyRun.Write(tmp, "again");
        var first = HostRunner.Run("run", "--config", config, "--set", "loss.spn=null", "train.total_iter=2");
        Assert.True(first.Code == 0, first.Err);
        var second = HostRunner.Run("run", "--config", config, "--set", "loss.spn=null", "train.total_iter=3");
        Assert.True(second.Code == 0, second.Err);

        string runs = Path.Combine(tmp.Path, "runs");
        string archived = Assert.Single(Directory.GetDirectories(runs, "again_archived_*"));
        Assert.Matches(@"again_archived_\d{8}_\d{6}$", archived);
        Assert.Contains($"moved it to {archived}", second.Err);
        static List<long> TrainIters(string run) => File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))
            .Select(l => JsonNode.Parse(l)!).Where(m => (string?)m["event"] == "train").Select(m => (long)m["iter"]!).ToList();
        Assert.Equal([1L, 2], TrainIters(archived));                       // the first run, whole
        Assert.Equal([1L, 2, 3], TrainIters(Path.Combine(runs, "again"))); // the second alone
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
