using System.Text.Json.Nodes;
using Mcir.Abstractions.Models;
using Mcir.Core;
using Mcir.Core.Config;
using Mcir.Core.Data;
using Mcir.Core.ModelContrast;
using Mcir.Core.Metrics.Protocols;
using Mcir.Core.Runs;
using Mcir.Host.Plugins;
using Microsoft.Extensions.DependencyInjection;

namespace Mcir.Host.Tests;

/// <summary>
/// BasicSR / MCLIR YAML option files mapped to run configurations (Mcir.Core.Config.BasicSrOptions), compared with the
/// hand-written translations in configs/, and run through <c>mcir-host run --config FILE.yml</c>.
/// </summary>
public class BasicSrOptionsTests
{
    private static string Options(string file) => Path.Combine(AppContext.BaseDirectory, "TestData", "basicsr-options", file);

    private static RunConfig HandWritten(string relative) =>
        RunComposition.Bind(ConfigBinder.Load(Path.Combine(AppContext.BaseDirectory, "configs", relative)));

    private static string J(object section) => ConfigBinder.ToJson(section).ToJsonString();

    private static object ModelOptions(RunConfig config)
    {
        var plugins = PluginLoader.Load(PluginLoader.Discover(Path.Combine(AppContext.BaseDirectory, "plugins")));
        using var services = new ServiceCollection().AddMcirPlugins(plugins).BuildServiceProvider();
        Assert.True(services.GetRequiredService<IModelRegistry>().TryGet(config.Model.Name, out var model));
        return RunComposition.ModelOptions(model!, config.Model.Options);
    }

    [Fact]
    public void BasicSrsEdsrMx2MapsToTheHandWrittenL1Configuration()
    {
        var mapped = BasicSrOptions.Load(Options("train_EDSR_Mx2.yml"));
        var yml = RunComposition.Bind(mapped.Config);
        var hand = HandWritten("sr/edsr-light-x2-div2k-baseline.json");

        Assert.Equal("edsr", yml.Model.Name); // edsr with the file's 64/16/res 1 = the edsr-light preset
        Assert.Equal(J(ModelOptions(hand)), J(ModelOptions(yml)));
        Assert.Equal(J(hand.Data.Train), J(yml.Data.Train));
        Assert.Equal(J(hand.Data.Val!), J(yml.Data.Val!));
        Assert.Equal(hand.Data.BatchSize, yml.Data.BatchSize);
        Assert.Equal(J(hand.Loss), J(yml.Loss with { ReconstructionOptions = new System.Text.Json.Nodes.JsonObject() }));
        Assert.Equal(1.0, (double)mapped.Config["loss"]!["reconstruction_options"]!["weight"]!);
        // BasicSR keeps every checkpoint (keep_checkpoints 0); the hand-written file keeps 3.
        Assert.Equal(J(hand.Train), J(yml.Train with { KeepCheckpoints = 3 }));
        Assert.Null(yml.Loss.Spn);
        Assert.Null(mapped.Config["negatives"]);
        // BasicSR's file scores RGB with border 2; the hand-written one follows the papers (Y channel).
        Assert.Equal(2, yml.Metrics.CropBorder);
        Assert.False(yml.Metrics.YChannel);
        Assert.Null(yml.Path.PretrainNetworkG);
        Assert.True(yml.Path.StrictLoadG);

        // One warning line per left-out key, each naming it.
        Assert.Contains(mapped.Warnings, w => w.EndsWith("num_gpu does not change the trained weights or the scores here; not used"));
        foreach (var key in new[] { "datasets.train.num_worker_per_gpu", "datasets.train.prefetch_mode", "val.save_img", "logger.use_tb_logger", "logger.wandb", "dist_params" })
            Assert.Single(mapped.Warnings, w => w.Contains($": {key} "));
    }

    [Fact]
    public void MclirsFfaNetFileMapsToTheHandWrittenDehazingConfigurationExceptThePapersSpnValues()
    {
        var mapped = BasicSrOptions.Load(Options("FFANet_RESIDE_IN_fromScratch.yml"));
        var yml = RunComposition.Bind(mapped.Config);
        var hand = HandWritten("dehaze/ffa-net-its-spn.json");

        Assert.Equal(hand.Model.Name, yml.Model.Name);
        Assert.Equal(J(ModelOptions(hand)), J(ModelOptions(yml)));
        // Same folders, crops and augmentation; the hand-written file reads RESIDE as downloaded (type reside: ITS's
        // <id>_<k>_<beta>.png <-> <id>.png), where the yml's PairedImageDataset needs equal names.
        Assert.Equal("reside", hand.Data.Train.Type);
        Assert.Equal(J(hand.Data.Train with { Type = "paired-folder", Name = "RESIDE-IN" }), J(yml.Data.Train));
        Assert.Equal(hand.Data.BatchSize, yml.Data.BatchSize);
        Assert.Equal(J(hand.Train), J(yml.Train with { KeepCheckpoints = 3 }));
        // Metrics: the yml's BasicSR calculate_psnr/ssim (protocol basicsr, RGB, crop 0); the hand-written row scores
        // SOTS with FFA-Net's own metric code, as the published 36.39 was computed (protocol ffa-net).
        Assert.Equal((EvaluationProtocols.Default, "ffa-net"), (yml.Metrics.Protocol, hand.Metrics.Protocol));
        Assert.Equal(J(hand.Metrics with { Protocol = yml.Metrics.Protocol }), J(yml.Metrics));
        // SPN: the embedding and its layer weights as the yml; lambda, the steps and the negatives' start as the paper
        // states (Tab. 8: 1e-4, Tab. 7: 100/500/1000/2000, copies), where the released yml has 1e-3, 100/200/500/1000, a blend.
        var (h, y) = (hand.Loss.Spn!, yml.Loss.Spn!);
        Assert.Equal(J(h with { Lambda = 1e-3 }), J(y));
        Assert.Equal((1e-4, 1e-3), (h.Lambda, y.Lambda));
        Assert.Equal(J(hand.Negatives with { Steps = [100, 200, 500, 1000], Init = NegativeInit.Blend, ScheduleOrder = NegativeScheduleOrder.Authors }), J(yml.Negatives));
        Assert.Single(mapped.Warnings, w => w.Contains(": train.use_grad_norm ") && w.Contains("never read"));
        Assert.DoesNotContain(mapped.Warnings, w => w.Contains("path_neg")); // all off: no pretrained negatives
    }

    [Theory]
    // keys that would change results and have no equivalent: errors naming the key
    [InlineData("train:\n  foo_opt: {type: Bar}", "train.foo_opt")]
    [InlineData("train:\n  warmup_iter: 100", "train.warmup_iter")]
    [InlineData("train:\n  scheduler: {type: LinearLR}", "train.scheduler.type")]
    [InlineData("train:\n  optim_g: {type: SGD, lr: 0.1}", "train.optim_g.type")]
    [InlineData("train:\n  perceptual_opt: {type: PerceptualLoss, perceptual_weight: 1.0}", "train.perceptual_opt.type")]
    [InlineData("datasets:\n  train: {type: PairedImageDataset, dataroot_gt: a, dataroot_lq: b, io_backend: {type: lmdb}}", "datasets.train.io_backend.type")]
    [InlineData("network_g: {type: RCAN}", "network_g.type")]
    public void KeysThatWouldChangeResultsAreErrors(string yaml, string key)
    {
        var baseFile = new Dictionary<string, string>
        {
            ["network_g"] = "network_g: {type: EDSR, num_feat: 8}",
            ["datasets"] = "datasets:\n  train: {type: PairedImageDataset, dataroot_gt: a, dataroot_lq: b}",
            ["train"] = "train:\n  total_iter: 2",
        };
        baseFile[yaml[..yaml.IndexOf(':')]] = yaml;
        var e = Assert.Throws<McirException>(() => BasicSrOptions.Map(string.Join("\n", baseFile.Values), "x.yml"));
        Assert.StartsWith($"x.yml: {key}", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void OlderBasicSrKeyNamesAndPlainExponentsAreRead()
    {
        var mapped = BasicSrOptions.Map("""
            name: old
            scale: 3
            network_g: {type: EDSR, num_feat: 8}
            datasets:
              train: {type: PairedImageDataset, dataroot_gt: a, dataroot_lq: b, use_flip: true}
            path: {pretrain_model_g: w.pth, strict_load: false}
            train:
              optim_g: {type: Adam, lr: 2e-4}
              scheduler: {type: CosineAnnealingRestartLR, periods: [10, 20], restart_weights: [1, 0.5], eta_min: !!float 1e-7}
            """, "old.yml");
        var c = RunComposition.Bind(mapped.Config);
        Assert.True(c.Data.Train.UseHflip);
        Assert.Equal(3, c.Data.Train.Scale);
        Assert.Equal(3, (long)mapped.Config["model"]!["options"]!["upscale"]!);
        Assert.Equal("w.pth", c.Path.PretrainNetworkG);
        Assert.False(c.Path.StrictLoadG);
        Assert.Equal(2e-4, c.Train.Optimizer.Lr);
        Assert.Equal("cosine", c.Train.Scheduler.Type);
        Assert.Equal([10L, 20L], c.Train.Scheduler.Periods);
        Assert.Equal([1.0, 0.5], c.Train.Scheduler.RestartWeights);
        Assert.Equal(1e-7, c.Train.Scheduler.EtaMin);
    }

    [Fact]
    public void RunTrainsTwoIterationsFromAnOptionFile()
    {
        using var tmp = new TempDir();
        string gt = tmp.Sub("gt");
        var rng = new Random(5);
        for (int i = 0; i < 3; i++) ImageIO.Write(Path.Combine(gt, $"p{i}.png"), TinyRun.Smooth(48, 48, rng));
        string lq = Path.Combine(tmp.Path, "lq");
        Assert.Equal(0, HostRunner.Run("degrade", "bicubic", "--scale", "2", "--input", gt, "--output", lq).Code);
        string yml = Path.Combine(tmp.Path, "train_tiny.yml");
        File.WriteAllText(yml, $$"""
            name: tiny_yml
            model_type: SRModel
            scale: 2
            num_gpu: 1
            manual_seed: 7
            datasets:
              train:
                name: tiny
                type: PairedImageDataset
                dataroot_gt: {{gt}}
                dataroot_lq: {{lq}}
                filename_tmpl: '{}'
                io_backend:
                  type: disk
                gt_size: 32
                use_hflip: true
                use_rot: true
                use_shuffle: true
                num_worker_per_gpu: 6
                batch_size_per_gpu: 2
              val:
                name: tiny-val
                type: PairedImageDataset
                dataroot_gt: {{gt}}
                dataroot_lq: {{lq}}
            network_g:
              type: EDSR
              num_in_ch: 3
              num_out_ch: 3
              num_feat: 8
              num_block: 1
              upscale: 2
              res_scale: 1
              img_range: 255.
              rgb_mean: [0.4488, 0.4371, 0.4040]
            train:
              optim_g: {type: Adam, lr: !!float 1e-4, weight_decay: 0, betas: [0.9, 0.99]}
              scheduler: {type: MultiStepLR, milestones: [1], gamma: 0.5}
              total_iter: 2
              warmup_iter: -1
              pixel_opt: {type: L1Loss, loss_weight: 1.0, reduction: mean}
            val:
              val_freq: 2
              metrics:
                psnr: {type: calculate_psnr, crop_border: 2, test_y_channel: true}
                ssim: {type: calculate_ssim, crop_border: 2, test_y_channel: true}
            logger:
              print_freq: 1
              save_checkpoint_freq: 2
              use_tb_logger: true
            """);
        var (code, _, stderr) = HostRunner.Run("run", "--config", yml, "--set", $"output_root={tmp.Path}/runs");
        Assert.True(code == 0, stderr);
        Assert.Contains("warning: " + yml + ": num_gpu ", stderr);
        Assert.Contains("warning: " + yml + ": datasets.train.num_worker_per_gpu ", stderr);
        string runDir = Path.Combine(tmp.Path, "runs", "tiny_yml");
        var resolved = JsonNode.Parse(File.ReadAllText(Path.Combine(runDir, "config.resolved.json")))!;
        Assert.Equal("edsr", (string?)resolved["model"]!["name"]);
        Assert.Equal(8, (int)resolved["model"]!["options"]!["num_feat"]!);
        Assert.Equal(lq, (string?)resolved["data"]!["train"]!["dataroot_lq"]);
        Assert.True((bool)resolved["metrics"]!["y_channel"]!);
        var metrics = File.ReadAllLines(Path.Combine(runDir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        var lr = metrics.Where(m => (string?)m["event"] == "train").Select(m => (double)m["lr"]!).ToArray();
        // BasicSR's schedule position: iteration i trains at position i - 1, so milestone 1 halves the rate of
        // iteration 2 (halving a double is exact).
        Assert.Equal([1e-4, 5e-5], lr);
        Assert.Contains(metrics, m => (string?)m["event"] == "val");
        Assert.True(Directory.Exists(Path.Combine(runDir, "checkpoints", "iter_000002")));
        // The run folder gets its curves at the end: l1 and total losses, PSNR, SSIM = 2 rows of 2 panels.
        using var curves = SixLabors.ImageSharp.Image.Load<SixLabors.ImageSharp.PixelFormats.Rgba32>(Path.Combine(runDir, "curves.png"));
        Assert.Equal((1200, 720), (curves.Width, curves.Height));
    }

    [Fact]
    public void AnUnmappableKeyStopsTheRunWithOneErrorLine()
    {
        using var tmp = new TempDir();
        string yml = Path.Combine(tmp.Path, "bad.yml");
        File.WriteAllText(yml, "network_g: {type: EDSR}\ndatasets:\n  train: {type: PairedImageDataset, dataroot_gt: a, dataroot_lq: b}\ntrain:\n  gan_opt: {type: GANLoss}\n");
        var (code, _, stderr) = HostRunner.Run("run", "--config", yml);
        Assert.Equal(1, code);
        Assert.StartsWith($"error: {yml}: train.gan_opt: has no equivalent", stderr);
        Assert.DoesNotContain(" at ", stderr);
    }
}
