using System.Collections;
using System.Text.Json.Nodes;
using Mcir.Abstractions.Models;
using Mcir.Core.Data;
using Mcir.Core.Inference;
using Mcir.Core.IO;
using Mcir.Core.Weights;
using Mcir.Host.Commands;
using Mcir.Host.Plugins;
using Microsoft.Extensions.DependencyInjection;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Mcir.Host.Tests.Inference;

/// <summary>mcir-host restore / test with the bundled EDSR against the BasicSR reference fixtures and a tiny trained run.</summary>
public class InferenceCommandTests
{
    private static string Arch(string name, string file) => Path.Combine(AppContext.BaseDirectory, "TestData", "archs", name, file);

    // The fixture's bare state dict as BasicSR's save_network writes it from a DataParallel model:
    // torch.save({'params': {'module.<key>': tensor}}).
    private static string OfficialCheckpoint(string dir, string fixture = "edsr", string? drop = null)
    {
        var bare = StateDictFile.Read(Arch(fixture, "state_dict.pth"));
        try
        {
            var inner = new Hashtable();
            foreach (var (key, t) in bare)
                if (key != drop) inner["module." + key] = t;
            string path = Path.Combine(dir, $"{fixture}_net_g.pth");
            PyTorchPickler.PickleStateDict(path, new Hashtable { ["params"] = inner });
            return path;
        }
        finally
        {
            foreach (var t in bare.Values) t.Dispose();
        }
    }

    private static IModelRegistry BundledModels(out ServiceProvider services)
    {
        services = new ServiceCollection().AddMcirPlugins(PluginLoader.Load(PluginLoader.Discover(PluginOptions.DefaultPluginDir))).BuildServiceProvider();
        return services.GetRequiredService<IModelRegistry>();
    }

    // The fixture EDSR (64 features, 2 blocks, x4, res_scale 1) is the edsr-light preset with 2 blocks.
    private static readonly string[] EdsrFixtureModel = ["--model", "edsr-light", "--set", "num_block=2"];

    private static double MaxAbsDiff(Tensor a, Tensor b)
    {
        Assert.Equal(a.shape, b.shape);
        using var d = (a - b).abs().max();
        return d.item<float>();
    }

    [Fact]
    public void OfficialCheckpointReproducesTheReferenceOutputThroughTheCoreApi()
    {
        using var tmp = new TempDir();
        string pth = OfficialCheckpoint(tmp.Path);
        var registry = BundledModels(out var services);
        using (services)
        using (var scope = NewDisposeScope())
        using (var model = ModelWeights.Open(registry, new InferenceModelRequest { Weights = pth, Model = "edsr-light", Set = ["num_block=2"] }))
        {
            Assert.Equal("params", model.Weights.ParamKey);
            var output = TiledRestorer.Restore(model.Network, Npy.Load(Arch("edsr", "input.npy")));
            double diff = MaxAbsDiff(output, Npy.Load(Arch("edsr", "output.npy")));
            Assert.True(diff <= 1e-5, $"max |output - reference| = {diff:E3}");
        }
    }

    [Fact]
    public void RestoreWritesTheReferenceOutputAsPng()
    {
        using var tmp = new TempDir();
        string pth = OfficialCheckpoint(tmp.Path);
        string input = tmp.Sub("in"), output = Path.Combine(tmp.Path, "out");
        RgbImage expected;
        using (var scope = NewDisposeScope())
        {
            // input.npy's first image as a 16-bit PNG (quantisation 1/65535, far below one output gray level)
            var x = Npy.Load(Arch("edsr", "input.npy"))[0];
            ImageIO.Write(Path.Combine(input, "fixture.png"), ToImage(x), new ImageWriteOptions { BitDepth = 16 });
            expected = ToImage(Npy.Load(Arch("edsr", "output.npy"))[0]);
        }

        var (code, stdout, stderr) = HostRunner.Run(["restore", .. EdsrFixtureModel, "--weights", pth, "--input", input, "--output", output]);

        Assert.True(code == 0, stderr);
        Assert.Contains("restored 1 image", stdout);
        Assert.Contains("('params')", stderr);
        Assert.Contains("fixture.png: 24x24 -> 96x96", stderr);
        var restored = ImageIO.Read(Path.Combine(output, "fixture.png"));
        Assert.Equal(96, restored.Height);
        Assert.Equal(96, restored.Width);
        double worst = restored.Pixels.Zip(expected.Pixels).Max(p => Math.Abs(p.First - p.Second));
        Assert.True(worst <= 0.51, $"max |PNG - reference × 255| = {worst} gray levels (uint8 rounding allows 0.5)");
        Assert.Single(Directory.GetFiles(input)); // nothing written next to the input
    }

    // [3, H, W] in [0, 1] → unrounded 0–255 image
    private static RgbImage ToImage(Tensor chw)
    {
        using var hwc = chw.permute(1, 2, 0).contiguous().mul(255f);
        return new RgbImage((int)chw.shape[1], (int)chw.shape[2], hwc.data<float>().ToArray(), 16);
    }

    [Fact]
    public void TiledRestoreMatchesTheWholeImage()
    {
        using var tmp = new TempDir();
        string pth = OfficialCheckpoint(tmp.Path);
        string input = tmp.Sub("in");
        var rng = new Random(4);
        ImageIO.Write(Path.Combine(input, "a.png"), TinyRun.Smooth(61, 47, rng));
        ImageIO.Write(Path.Combine(input, "b.bmp"), TinyRun.Smooth(30, 70, rng));
        string whole = Path.Combine(tmp.Path, "whole"), tiled = Path.Combine(tmp.Path, "tiled");

        var w = HostRunner.Run(["restore", .. EdsrFixtureModel, "--weights", pth, "--input", input, "--output", whole]);
        var t = HostRunner.Run(["restore", .. EdsrFixtureModel, "--weights", pth, "--input", input, "--output", tiled, "--tile", "24", "--tile-overlap", "16"]);

        Assert.True(w.Code == 0, w.Err);
        Assert.True(t.Code == 0, t.Err);
        foreach (var name in new[] { "a.png", "b.png" })
        {
            var a = ImageIO.Read(Path.Combine(whole, name));
            var b = ImageIO.Read(Path.Combine(tiled, name));
            Assert.Equal((a.Height, a.Width), (b.Height, b.Width));
            const int border = 16; // output pixels (4 input pixels at x4)
            double worst = 0;
            for (int y = border; y < a.Height - border; y++)
                for (int x = border; x < a.Width - border; x++)
                    for (int c = 0; c < 3; c++)
                        worst = Math.Max(worst, Math.Abs(a[y, x, c] - b[y, x, c]));
            Assert.True(worst <= 1, $"{name}: tiled and whole differ by {worst} gray levels");
        }
    }

    // The shared tiny run, with two test images, plain L1 and a target EMA.
    private static string TrainTinyRun(TempDir tmp)
    {
        var (code, _, stderr) = HostRunner.Run("run", "--config", TinyRun.Write(tmp, testImages: 2), "--set", "loss.spn=null", "train.ema_decay=0.9");
        Assert.True(code == 0, stderr);
        return Path.Combine(tmp.Path, "runs", "tiny");
    }

    [Fact]
    public void TestOnARunFolderNeedsNoModelAndReproducesTheRunsOwnScores()
    {
        using var tmp = new TempDir();
        string run = TrainTinyRun(tmp);
        string test = Path.Combine(tmp.Path, "test"), json = Path.Combine(tmp.Path, "scores.json"), saved = Path.Combine(tmp.Path, "saved");

        var (code, stdout, stderr) = HostRunner.Run("test", "--weights", run, "--gt", test, "--crop-border", "2", "--y-channel", "--json", json, "--save-images", saved);

        Assert.True(code == 0, stderr);
        Assert.Contains("model edsr-light and its options from", stderr);
        Assert.Contains("target EMA, iteration 4", stdout);
        Assert.Contains("test set test (protocol basicsr: Y channel, crop border 2)", stdout);
        Assert.Contains("bicubic PSNR", stdout);
        Assert.Contains("v0", stdout);
        Assert.Contains("v1", stdout);
        Assert.Contains("mean", stdout);
        var doc = JsonNode.Parse(File.ReadAllText(json))!;
        Assert.Equal(2, doc["images"]!.AsArray().Count);
        Assert.Equal("v0", (string?)doc["images"]![0]!["name"]);
        Assert.True((bool)doc["weights"]!["ema"]!);
        Assert.Equal(8, (int)doc["model"]!["options"]!["num_feat"]!);
        Assert.Equal(2, (int)doc["scale"]!);
        // the run scored its EMA network on the same images with the same protocol at the end of training
        var results = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "results.json")))!.AsArray()[0]!;
        Assert.Equal((double)results["model"]!["psnr"]!, (double)doc["model"]!["psnr"]!, 9);
        Assert.Equal((double)results["baseline"]!["psnr"]!, (double)doc["baseline"]!["psnr"]!, 9);
        Assert.Equal((40, 36), (ImageIO.Read(Path.Combine(saved, "v0.png")).Height, ImageIO.Read(Path.Combine(saved, "v0.png")).Width)); // the restored image, GT-sized

        // tiled: the same table within rounding; the plain (non-EMA) weights: another line
        var tiled = HostRunner.Run("test", "--weights", run, "--gt", test, "--crop-border", "2", "--y-channel", "--tile", "16", "--tile-overlap", "8", "--json", json);
        Assert.True(tiled.Code == 0, tiled.Err);
        Assert.InRange((double)JsonNode.Parse(File.ReadAllText(json))!["model"]!["psnr"]!, (double)results["model"]!["psnr"]! - 0.05, (double)results["model"]!["psnr"]! + 0.05);
        var plain = HostRunner.Run("test", "--weights", run, "--gt", test, "--ema", "off");
        Assert.True(plain.Code == 0, plain.Err);
        Assert.Contains("EMA weights not used", plain.Out);
        Assert.Contains("(protocol basicsr: RGB, crop border 2)", plain.Out); // crop border defaults to the scale

        // a float protocol scores the unquantised output and says so
        var dehaze = HostRunner.Run("test", "--weights", run, "--gt", test, "--protocol", "dehazeformer", "--json", json);
        Assert.True(dehaze.Code == 0, dehaze.Err);
        Assert.Contains("test set test (protocol dehazeformer: float RGB in [0,1], no crop, SSIM pytorch_msssim", dehaze.Out);
        var protocol = JsonNode.Parse(File.ReadAllText(json))!["protocol"]!;
        Assert.Equal("dehazeformer", (string?)protocol["name"]);
        Assert.True((bool)protocol["float_output"]!);
    }

    [Fact]
    public void ScaleSetsTheUpscaleOptionOfTheModel()
    {
        using var tmp = new TempDir();
        string pth = OfficialCheckpoint(tmp.Path, "edsr_x2");
        string input = tmp.Sub("in");
        ImageIO.Write(Path.Combine(input, "a.png"), TinyRun.Smooth(20, 18, new Random(2)));
        string output = Path.Combine(tmp.Path, "out");

        var (code, _, stderr) = HostRunner.Run("restore", "--model", "edsr-light", "--set", "num_block=4", "--scale", "2", "--weights", pth, "--input", Path.Combine(input, "a.png"), "--output", output);

        Assert.True(code == 0, stderr);
        Assert.Equal(40, ImageIO.Read(Path.Combine(output, "a.png")).Height);
    }

    [Fact]
    public void UnknownModelListsTheKnownOnes()
    {
        using var tmp = new TempDir();
        string pth = OfficialCheckpoint(tmp.Path);
        string input = tmp.Sub("in");
        ImageIO.Write(Path.Combine(input, "a.png"), TinyRun.Smooth(20, 18, new Random(2)));
        var (code, _, stderr) = HostRunner.Run("restore", "--model", "edsr-tiny", "--weights", pth, "--input", input, "--output", tmp.Sub("out"));
        Assert.Equal(HostCommands.UserError, code);
        Assert.Contains("'edsr-tiny' is not a registered model", stderr);
        Assert.Contains("edsr, edsr-light", stderr);
    }

    [Fact]
    public void WeightsWithMissingKeysNameThem()
    {
        using var tmp = new TempDir();
        string pth = OfficialCheckpoint(tmp.Path, drop: "conv_last.bias");
        string input = tmp.Sub("in");
        ImageIO.Write(Path.Combine(input, "a.png"), TinyRun.Smooth(20, 18, new Random(2)));

        var (code, _, stderr) = HostRunner.Run(["restore", .. EdsrFixtureModel, "--weights", pth, "--input", input, "--output", Path.Combine(tmp.Path, "out")]);

        Assert.Equal(HostCommands.UserError, code);
        Assert.Contains("missing keys (1): conv_last.bias", stderr);
        Assert.Contains(pth, stderr);
        Assert.False(Directory.Exists(Path.Combine(tmp.Path, "out")));

        // a model with more blocks than the weights: every missing key is named
        var more = HostRunner.Run(["restore", "--model", "edsr-light", "--set", "num_block=3", "--weights", OfficialCheckpoint(tmp.Path), "--input", input, "--output", Path.Combine(tmp.Path, "out")]);
        Assert.Equal(HostCommands.UserError, more.Code);
        Assert.Contains("missing keys (4): body.2.conv1.weight, body.2.conv1.bias, body.2.conv2.weight, body.2.conv2.bias", more.Err);
    }

    [Fact]
    public void OutputFolderMustNotBeTheInputFolder()
    {
        using var tmp = new TempDir();
        string pth = OfficialCheckpoint(tmp.Path);
        string input = tmp.Sub("in");
        ImageIO.Write(Path.Combine(input, "a.png"), TinyRun.Smooth(20, 18, new Random(2)));
        byte[] before = File.ReadAllBytes(Path.Combine(input, "a.png"));

        var (code, _, stderr) = HostRunner.Run(["restore", .. EdsrFixtureModel, "--weights", pth, "--input", input, "--output", Path.Combine(input, ".", "")]);
        Assert.Equal(HostCommands.UserError, code);
        Assert.Contains("that is the input folder", stderr);

        var file = HostRunner.Run(["restore", .. EdsrFixtureModel, "--weights", pth, "--input", Path.Combine(input, "a.png"), "--output", input]);
        Assert.Equal(HostCommands.UserError, file.Code);
        Assert.Equal(before, File.ReadAllBytes(Path.Combine(input, "a.png")));
        Assert.Single(Directory.GetFiles(input));
    }

    [Fact]
    public void TestWithoutModelOrRunNeedsModel()
    {
        using var tmp = new TempDir();
        string pth = OfficialCheckpoint(tmp.Path);
        string gt = tmp.Sub("gt");
        ImageIO.Write(Path.Combine(gt, "a.png"), TinyRun.Smooth(24, 24, new Random(2)));
        var (code, _, stderr) = HostRunner.Run("test", "--weights", pth, "--gt", gt);
        Assert.Equal(HostCommands.UserError, code);
        Assert.Contains("--model is required", stderr);
    }
}
