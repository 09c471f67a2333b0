using System.Text.Json.Nodes;
using Mcir.Abstractions.Components;
using Mcir.Abstractions.Losses;
using Mcir.Abstractions.Models;
using Mcir.Core;
using Mcir.Host.Plugins;
using Microsoft.Extensions.DependencyInjection;

namespace Mcir.Host.Tests;

/// <summary>
/// The bundled denoising plugin, written against the public contract only: its model, preset, loss term and degradation
/// are listed and usable by name from a configuration, next to the engine's built-in components.
/// </summary>
public class DenoisingPluginTests
{
    private static string WriteTinyDenoiseRun(TempDir tmp, string name = "tiny-denoise", int seed = 3)
    {
        // The tiny SR run's smooth images (train/t*.png, test/v0.png) serve as the clean images; its config is replaced.
        TinyRun.Write(tmp);
        string train = Path.Combine(tmp.Path, "train"), test = Path.Combine(tmp.Path, "test");
        string config = Path.Combine(tmp.Path, "run.json");
        File.WriteAllText(config, $$"""
        {
          "name": "{{name}}",
          "output_root": "{{tmp.Path}}/runs",
          "model": { "name": "dncnn", "options": { "features": 8, "depth": 3 } },
          "data": {
            "train": { "type": "degraded-folder", "dataroot_gt": "{{train}}", "gt_size": 24, "use_hflip": true, "dataset_enlarge_ratio": 4,
                       "degradation": { "name": "gaussian-noise", "options": { "sigma": 25 } } },
            "test": [ { "type": "degraded-folder", "name": "tiny-noisy", "dataroot_gt": "{{test}}",
                        "degradation": { "name": "gaussian-noise", "options": { "sigma": 25 }, "seed": 7 } } ],
            "batch_size": 2
          },
          "loss": { "reconstruction": "charbonnier", "spn": { "lambda": 1e-3 } },
          "negatives": { "steps": [2, 3] },
          "train": { "total_iter": 3, "print_freq": 1, "checkpoint_freq": 3, "seed": {{seed}} },
          "metrics": { "crop_border": 0, "y_channel": false }
        }
        """);
        return config;
    }

    [Fact]
    public void ListShowsTheDenoisingComponentsBesideTheEngines()
    {
        var (code, stdout, stderr) = HostRunner.Run("list");
        Assert.True(code == 0, stderr);
        Assert.Contains("  dncnn  [denoise]", stdout);
        Assert.Contains("558,403 parameters", stdout); // (3·64·9+64) + 15·(64·64·9 + 2·64) + (64·3·9+3)
        Assert.Contains("  dncnn-light  [denoise]", stdout);
        Assert.Contains("  charbonnier  (Mcir.Plugins.Denoising)", stdout);
        Assert.Contains("defaults {\"eps\":0.001,\"weight\":1}", stdout);
        Assert.Contains("  poisson-gaussian  (Mcir.Plugins.Denoising)", stdout);
        Assert.Contains("  gaussian-noise  (engine)", stdout);
        Assert.Contains("defaults {\"sigma\":25,\"clip\":true,\"rounds\":false}", stdout);
        Assert.Contains("  bicubic  (engine)", stdout);
        Assert.Contains("  l1  (engine)", stdout);
        Assert.Contains("degraded-folder", stdout);
    }

    [Fact]
    public void TrainsDnCnnWithCharbonnierAndSpnOnNoisyPatchesAndReportsTheInputBaseline()
    {
        using var tmp = new TempDir();
        var (code, stdout, stderr) = HostRunner.Run("run", "--config", WriteTinyDenoiseRun(tmp));

        Assert.True(code == 0, stderr);
        Assert.Contains("loss term charbonnier", stderr);
        Assert.Contains("negatives: ema, K = 2", stderr);
        Assert.Contains("test set tiny-noisy (protocol basicsr: RGB, crop border 0)", stdout);
        Assert.Contains("input PSNR", stdout);
        Assert.Contains("v0", stdout);
        string runDir = Path.Combine(tmp.Path, "runs", "tiny-denoise");
        var metrics = File.ReadAllLines(Path.Combine(runDir, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.All(metrics.Where(m => (string?)m["event"] == "train"), m => Assert.NotNull(m["loss"]!["charbonnier"]));
        var resolved = JsonNode.Parse(File.ReadAllText(Path.Combine(runDir, "config.resolved.json")))!;
        Assert.Equal(0.001, (double)resolved["loss"]!["reconstruction_options"]!["eps"]!); // a default filled in
        Assert.Equal(25, (double)resolved["data"]!["train"]!["degradation"]!["options"]!["sigma"]!);
        Assert.True((bool)resolved["data"]!["test"]![0]!["degradation"]!["options"]!["clip"]!);
        var results = JsonNode.Parse(File.ReadAllText(Path.Combine(runDir, "results.json")))!.AsArray();
        Assert.Equal("input", (string?)results[0]!["baseline"]!["name"]);
        Assert.InRange((double)results[0]!["baseline"]!["psnr"]!, 15, 25); // sigma 25 noise: about 20 dB

        // The noisy test input is seeded by the image name, not by the run: another training seed, the same baseline.
        var other = HostRunner.Run("run", "--config", WriteTinyDenoiseRun(tmp, "tiny-denoise-2", seed: 11));
        Assert.True(other.Code == 0, other.Err);
        var otherResults = JsonNode.Parse(File.ReadAllText(Path.Combine(tmp.Path, "runs", "tiny-denoise-2", "results.json")))!.AsArray();
        Assert.Equal((double)results[0]!["baseline"]!["psnr"]!, (double)otherResults[0]!["baseline"]!["psnr"]!);
    }

    [Theory]
    [InlineData("loss.reconstruction=huber", "loss.reconstruction 'huber' is not a registered loss term", "known: charbonnier, l1")]
    [InlineData("data.train.degradation.name=jpeg", "data.train.degradation.name 'jpeg' is not a registered degradation", "known: bicubic, gaussian-noise, poisson-gaussian")]
    public void UnknownComponentNameListsTheKnownOnes(string assignment, string error, string known)
    {
        using var tmp = new TempDir();
        var (code, _, stderr) = HostRunner.Run("run", "--config", WriteTinyDenoiseRun(tmp), "--set", assignment);
        Assert.Equal(HostCommands.UserError, code);
        Assert.Contains(error, stderr);
        Assert.Contains(known, stderr);
    }

    [Fact]
    public void ALossTermNameRegisteredTwiceNamesBothOwners()
    {
        static LoadedPlugin Plugin(string path, string lossName) =>
            new(path, typeof(DenoisingPluginTests).Assembly, new OneLossRegistrar(lossName));

        var twoPlugins = Assert.Throws<McirException>(() =>
            new ServiceCollection().AddMcirPlugins([Plugin("/p/a.dll", "huber"), Plugin("/p/b.dll", "huber")]));
        Assert.Contains("loss term 'huber' is registered twice: by the plugin /p/a.dll and by the plugin /p/b.dll", twoPlugins.Message);

        var engine = Assert.Throws<McirException>(() => new ServiceCollection().AddMcirPlugins([Plugin("/p/c.dll", "l1")]));
        Assert.Contains("loss term 'l1' is registered twice: by the engine (Mcir.Core) and by the plugin /p/c.dll", engine.Message);
    }

    [Fact]
    public void APluginEmbeddingIsRegisteredAndCheckedLikeALossTerm()
    {
        static LoadedPlugin Plugin(string path, string name) =>
            new(path, typeof(DenoisingPluginTests).Assembly, new OneEmbeddingRegistrar(name));

        using var services = new ServiceCollection().AddMcirPlugins([Plugin("/p/e.dll", "my-embedding")]).BuildServiceProvider();
        var embeddings = services.GetRunRegistries().Embeddings!;
        Assert.Equal(["my-embedding", "onnx", "resnet18-imagenet", "vgg"], embeddings.All.Select(d => d.Name));

        var clash = Assert.Throws<McirException>(() => new ServiceCollection().AddMcirPlugins([Plugin("/p/f.dll", "vgg")]));
        Assert.Contains("embedding 'vgg' is registered twice: by the engine (Mcir.Core) and by the plugin /p/f.dll", clash.Message);
    }

    private sealed class OneEmbeddingRegistrar(string name) : IMcirPluginRegistrar
    {
        public void Register(IServiceCollection services) =>
            services.AddMcirEmbedding(new EmbeddingDescriptor(name, "", typeof(Mcir.Abstractions.ModelContrast.IFeatureEmbedding), typeof(object), new object(),
                new Dictionary<string, double> { ["x"] = 1 }, (_, _) => throw new NotSupportedException()));
    }

    private sealed class OneLossRegistrar(string name) : IMcirPluginRegistrar
    {
        public void Register(IServiceCollection services) =>
            services.AddMcirLossTerm(new LossTermDescriptor(name, "", typeof(ILossTerm), typeof(object), new object(), _ => throw new NotSupportedException()));
    }
}
