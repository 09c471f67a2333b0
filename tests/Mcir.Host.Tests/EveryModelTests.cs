using System.Text.Json.Nodes;
using Mcir.Abstractions.Models;
using Mcir.Core.Config;
using Mcir.Core.Data;
using Mcir.Core.Inference;
using Mcir.Core.ModelContrast;
using Mcir.Core.Runs;
using Mcir.Core.Weights;
using Mcir.Host.Commands;
using Mcir.Host.Plugins;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Mcir.Host.Tests;

/// <summary>
/// Every model and preset registered by the bundled plugins — enumerated through the registry the host builds, so a new
/// plugin's models are covered without touching this file — goes through the CLI: <c>run</c> (2 iterations with
/// validation on images that are not multiples of any window), <c>test</c>, <c>restore</c> and <c>export</c>, and the
/// exported file holds the trained weights.
/// </summary>
public class EveryModelTests(ITestOutputHelper output)
{
    /// <summary>
    /// Cheaper options for presets whose defaults are large (so the whole theory stays well under two minutes on two
    /// cores); the presets' structural choices (upsampler, window, scale, residual connection, normalisation, ...) stay.
    /// A model not listed here runs with its own defaults.
    /// </summary>
    private static readonly Dictionary<string, string[]> Cheap = new(StringComparer.Ordinal)
    {
        ["edsr"] = ["num_feat=8", "num_block=1"],
        ["edsr-light"] = ["num_feat=8", "num_block=1"],
        ["swinir"] = ["embed_dim=12", "depths=[2]", "num_heads=[2]"],
        ["swinir-light"] = ["embed_dim=12", "depths=[2]", "num_heads=[2]"],
        ["swinir-small"] = ["embed_dim=12", "depths=[2]", "num_heads=[2]"],
        ["swinir-classical"] = ["embed_dim=12", "depths=[2]", "num_heads=[2]"],
        ["nafnet"] = ["width=8", "enc_blk_nums=[1, 1, 1, 1]", "middle_blk_num=1", "dec_blk_nums=[1, 1, 1, 1]"],
        // A training size below the test images', so that the local pools are not global ones there.
        ["nafnet-local"] = ["width=8", "enc_blk_nums=[1, 1, 1, 1]", "middle_blk_num=1", "dec_blk_nums=[1, 1, 1, 1]", "train_size=[1, 3, 8, 8]"],
        ["nafnet-small-local"] = ["train_size=[1, 3, 8, 8]"],
        ["ffa-net"] = ["blocks=1"],
        ["dncnn"] = ["features=8", "depth=3"],
        ["dncnn-light"] = ["features=8", "depth=3"],
        ["dehazeformer"] = ["depths=[1, 1, 1, 1, 1]"],
        ["dehazeformer-t"] = ["depths=[1, 1, 1, 1, 1]"],
        ["dehazeformer-s"] = ["depths=[1, 1, 1, 1, 1]"],
        ["dehazeformer-b"] = ["depths=[1, 1, 1, 1, 1]"],
        ["dehazeformer-m"] = ["depths=[1, 1, 1, 1, 1]"],
        ["dehazeformer-l"] = ["depths=[1, 1, 1, 1, 1]"],
        ["idt"] = ["embed_dim=4", "img_size=64"],
        ["idt-small"] = ["embed_dim=4", "img_size=64"],
    };

    /// <summary>
    /// Smallest training patch side per model where 16 is too small: DehazeFormer reflect-pads each stage's feature
    /// map to its window (8), which needs the 1/4-scale map to be larger than that padding (inputs of 20 px and up);
    /// IDT accepts only its img_size (64 with the cheap options above; larger images are evaluated in windows).
    /// </summary>
    private static int MinPatch(string name) =>
        name.StartsWith("dehazeformer", StringComparison.Ordinal) ? 32 : name.StartsWith("idt", StringComparison.Ordinal) ? 64 : 16;

    /// <summary>The one model trained with SPN (the embedding the host picks offline: the bundled ResNet18).</summary>
    private const string SpnModel = "edsr-light";

    private static ServiceProvider HostServices() =>
        new ServiceCollection().AddMcirPlugins(PluginLoader.Load(PluginLoader.Discover(PluginOptions.DefaultPluginDir))).BuildServiceProvider();

    public static TheoryData<string> Models()
    {
        using var services = HostServices();
        var data = new TheoryData<string>();
        foreach (var m in services.GetRequiredService<IModelRegistry>().Models) data.Add(m.Name);
        return data;
    }

    [Fact]
    public void TheBundledPluginsRegisterEveryKnownModel()
    {
        // Guards the theory against an empty registry (which would make it pass vacuously).
        var names = ((IEnumerable<object[]>)Models()).Select(r => (string)r[0]).ToList();
        foreach (var name in new[] { "edsr", "edsr-light", "swinir", "swinir-light", "swinir-small", "swinir-classical", "nafnet", "nafnet-small", "nafnet-local", "nafnet-small-local", "ffa-net", "ffa-net-small", "dncnn", "dncnn-light" })
            Assert.Contains(name, names);
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void ListedDefaultsAreExactlyTheConfigurationKeys(string name)
    {
        using var services = HostServices();
        var model = services.GetRequiredService<IModelRegistry>().Get(name);
        var defaults = (JsonObject)ConfigBinder.ToJson(model.DefaultOptions);
        Assert.Equal(ConfigBinder.KeysOf(model.OptionsType).Order(StringComparer.Ordinal), defaults.Select(p => p.Key).Order(StringComparer.Ordinal));
        // every listed key can be given back as it is shown, and yields the defaults again
        Assert.Equal(model.DefaultOptions, RunComposition.ModelOptions(model, defaults));
    }

    [Fact]
    public void ListShowsTheConfigurationKeysAsDefaults()
    {
        var (code, stdout, stderr) = HostRunner.Run("list");
        Assert.True(code == 0, stderr);
        using var services = HostServices();
        foreach (var model in services.GetRequiredService<IModelRegistry>().Models)
            Assert.Contains($"    defaults {ConfigBinder.ToJson(model.DefaultOptions).ToJsonString()}", stdout);
        Assert.DoesNotContain("patches_resolution", stdout);
        Assert.DoesNotContain("effective_window_size", stdout);
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void RunsTestsRestoresAndExportsThroughTheCli(string name)
    {
        using var tmp = new TempDir();
        string[] set = Cheap.TryGetValue(name, out var cheap) ? cheap : [];

        // What the model needs: its scale (from a forward pass) and input multiple (its IInputSizeMultiple).
        int scale, multiple;
        bool hasUpscale;
        using (var services = HostServices())
        using (var scope = NewDisposeScope())
        {
            var descriptor = services.GetRequiredService<IModelRegistry>().Get(name);
            hasUpscale = ((JsonObject)ConfigBinder.ToJson(descriptor.DefaultOptions)).ContainsKey("upscale");
            using var net = descriptor.Create(ModelWeights.ComposeOptions(descriptor, null, set, null));
            multiple = TiledRestorer.InputMultipleOf(net);
            using var probe = TiledRestorer.Restore(net, zeros(1, 3, MinPatch(name), MinPatch(name)));
            scale = (int)(probe.shape[2] / MinPatch(name));
        }
        int lqPatch = multiple * (int)Math.Ceiling((double)MinPatch(name) / multiple);
        output.WriteLine($"{name}: scale {scale}, input multiple {multiple}, LQ patch {lqPatch}, options {string.Join(" ", set)}");

        // Data: 64x64 training images; test/validation images whose sides are not multiples of 4, 7, 8 or 16.
        string train = tmp.Sub("train"), test = tmp.Sub("test"), testLq = tmp.Sub("test-lq");
        var rng = new Random(7);
        for (int i = 0; i < 2; i++) ImageIO.Write(Path.Combine(train, $"t{i}.png"), TinyRun.Smooth(64, 64, rng));
        var gt = scale == 1 ? TinyRun.Smooth(29, 23, rng) : TinyRun.Smooth(scale * 13, scale * 11, rng);
        ImageIO.Write(Path.Combine(test, "v0.png"), gt);
        if (scale == 1)
        {
            var noisy = (float[])gt.Pixels.Clone();
            for (int i = 0; i < noisy.Length; i++) noisy[i] = Math.Clamp(noisy[i] + rng.Next(-20, 21), 0, 255);
            ImageIO.Write(Path.Combine(testLq, "v0.png"), new RgbImage(gt.Height, gt.Width, noisy));
        }
        string Set(string type) => scale > 1
            ? $$"""{ "type": "hr-folder", "dataroot_gt": "{{(type == "train" ? train : test)}}", "scale": {{scale}} """
            : $$"""{ "type": "degraded-folder", "dataroot_gt": "{{(type == "train" ? train : test)}}", "degradation": { "name": "gaussian-noise", "options": { "sigma": 25 }{{(type == "train" ? "" : ", \"seed\": 1")}} } """;
        string spn = name == SpnModel ? "{ \"lambda\": 1e-3 }" : "null";
        string config = Path.Combine(tmp.Path, "run.json");
        File.WriteAllText(config, $$"""
        {
          "name": "every",
          "output_root": "{{tmp.Path}}/runs",
          "model": { "name": "{{name}}" },
          "data": {
            "train": {{Set("train")}}, "gt_size": {{lqPatch * scale}}, "use_hflip": true },
            "val": {{Set("val")}}, "name": "val" },
            "test": [ {{Set("test")}}, "name": "tiny-test" } ],
            "batch_size": 1
          },
          "loss": { "spn": {{spn}} },
          "negatives": { "steps": [1, 2] },
          "train": { "total_iter": 2, "print_freq": 1, "val_freq": 2, "seed": 1 },
          "metrics": { "crop_border": {{(scale > 1 ? scale : 0)}}, "y_channel": {{(scale > 1 ? "true" : "false")}} }
        }
        """);

        string[] modelSet = set.Length == 0 ? [] : ["--set", .. set.Select(s => "model.options." + s)];
        var run = HostRunner.Run(["run", "--config", config, .. modelSet]);
        Assert.True(run.Code == 0, $"run: {run.Err}\n{run.Out}");
        string runDir = Path.Combine(tmp.Path, "runs", "every");
        Assert.Contains("validation: psnr ", run.Err);
        Assert.Contains("test set tiny-test", run.Out);
        if (name == SpnModel) Assert.Contains("loss term spn", run.Err);

        string[] scaleArgs = hasUpscale ? ["--scale", scale.ToString()] : [];
        var t = HostRunner.Run(["test", "--weights", runDir, "--gt", test, .. scale == 1 ? new[] { "--lq", testLq } : [], .. scaleArgs]);
        Assert.True(t.Code == 0, $"test: {t.Err}\n{t.Out}");
        Assert.Contains("v0", t.Out);

        string restored = Path.Combine(tmp.Path, "restored");
        var r = HostRunner.Run("restore", "--weights", runDir, "--input", scale == 1 ? testLq : test, "--output", restored);
        Assert.True(r.Code == 0, $"restore: {r.Err}");
        var image = ImageIO.Read(Path.Combine(restored, "v0.png"));
        Assert.Equal((gt.Height * scale, gt.Width * scale), (image.Height, image.Width));

        string exported = Path.Combine(tmp.Path, "exported.pth");
        var e = HostRunner.Run("export", "--weights", runDir, "--output", exported);
        Assert.True(e.Code == 0, $"export: {e.Err}");
        var trained = StateDictFile.Read(Path.Combine(runDir, "checkpoints", "iter_000002", "model.safetensors"));
        var loaded = StateDictFile.Read(exported);
        try
        {
            Assert.Equal(trained.Keys.Order(StringComparer.Ordinal), loaded.Keys.Order(StringComparer.Ordinal));
            foreach (var (key, w) in trained)
            {
                Assert.Equal(w.dtype, loaded[key].dtype);
                Assert.Equal(w.shape, loaded[key].shape);
                Assert.True(w.bytes.SequenceEqual(loaded[key].bytes), $"{key}: the exported values differ from the trained ones");
            }
        }
        finally
        {
            foreach (var w in trained.Values.Concat(loaded.Values)) w.Dispose();
        }
    }
}
