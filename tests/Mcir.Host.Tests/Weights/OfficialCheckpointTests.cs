using Mcir.Abstractions.Models;
using Mcir.Core;
using Mcir.Core.Data;
using Mcir.Core.Inference;
using Mcir.Core.IO;
using Mcir.Host.Commands;
using Mcir.Host.Plugins;
using Microsoft.Extensions.DependencyInjection;
using static TorchSharp.torch;

namespace Mcir.Host.Tests.Weights;

/// <summary>Official checkpoints as published (cases C2-08 FFA-Net, C2-09 KAIR DnCNN): wrappers, extra keys, legacy files, non-strict loading.</summary>
public class OfficialCheckpointTests
{
    private static string Case(params string[] parts) => Path.Combine([AppContext.BaseDirectory, "TestData", "cases", .. parts]);

    private static readonly string[] ExtraFfaKeys =
        ["g1.la.gamma", "g1.last.weight", "g1.last.bias", "g2.la.gamma", "g2.last.weight", "g2.last.bias", "g3.la.gamma", "g3.last.weight", "g3.last.bias"];

    [Fact]
    public void FfaNetReleasedCheckpoint_LoadsNonStrictly_ReportsTheNineUnusedKeys_AndMatchesTheControl()
    {
        using var tmp = new TempDir();
        string hazy = Case("C2-08", "hazy"), outOrig = Path.Combine(tmp.Path, "orig"), outControl = Path.Combine(tmp.Path, "control");
        var (code, stdout, stderr) = HostRunner.Run(["restore", "--model", "ffa-net-small", "--weights", Case("C2-08", "ffa_orig.pk"),
            "--strict", "false", "--input", hazy, "--output", outOrig]);
        Assert.True(code == 0, stderr);
        Assert.Contains("restored 1 image", stdout);
        Assert.Contains("unexpected keys (9, ignored)", stderr);
        foreach (var key in ExtraFfaKeys) Assert.Contains(key, stderr);
        Assert.DoesNotContain("missing keys", stderr);

        // The control: the same network's bare state dict (the reference fixture), loaded strictly.
        string control = Path.Combine(AppContext.BaseDirectory, "TestData", "archs", "ffa_small", "state_dict.pth");
        (code, _, stderr) = HostRunner.Run(["restore", "--model", "ffa-net-small", "--weights", control, "--input", hazy, "--output", outControl]);
        Assert.True(code == 0, stderr);
        var a = ImageIO.Read(Path.Combine(outOrig, "h48.png"));
        var b = ImageIO.Read(Path.Combine(outControl, "h48.png"));
        Assert.Equal(b.Pixels, a.Pixels); // same weights, same kernels, same process: identical
    }

    [Fact]
    public void FfaNetReleasedCheckpoint_Strict_SaysTheExtraKeysLookLikeUnusedBranches()
    {
        using var tmp = new TempDir();
        var (code, _, stderr) = HostRunner.Run(["restore", "--model", "ffa-net-small", "--weights", Case("C2-08", "ffa_orig.pk"),
            "--input", Case("C2-08", "hazy"), "--output", tmp.Sub("out")]);
        Assert.Equal(1, code);
        Assert.StartsWith("error: ", stderr);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.Contains("unexpected keys (9)", stderr);
        Assert.Contains("unused branches", stderr);
        Assert.Contains("--strict false", stderr);
        Assert.DoesNotContain("missing keys", stderr);
        Assert.Empty(Directory.GetFiles(Path.Combine(tmp.Path, "out")));
    }

    [Fact]
    public void LegacyTorchSave_IsOneCleanMessageWithTheResaveCommand()
    {
        using var tmp = new TempDir();
        string legacy = Case("C2-08", "ffa_legacy_small.pk");
        var (code, _, stderr) = HostRunner.Run(["restore", "--model", "ffa-net-small", "--weights", legacy,
            "--input", Case("C2-08", "hazy"), "--output", tmp.Sub("out")]);
        Assert.Equal(1, code);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.Contains(legacy, stderr);
        Assert.Contains("legacy (pre-1.6)", stderr);
        Assert.Contains("torch.save(torch.load(f), f2)", stderr);
        Assert.Single(System.Text.RegularExpressions.Regex.Matches(stderr, "cannot be read"));
    }

    [Fact]
    public void ShapeMismatch_Strict_NamesADifferentArchitecture()
    {
        using var tmp = new TempDir();
        // kair_r (BN-free, 8 convolutions) into the default BN layout: missing keys and other shapes.
        var (code, _, stderr) = HostRunner.Run(["restore", "--model", "dncnn-light", "--weights", Case("C2-09", "kair_r.pth"),
            "--input", Case("C2-09", "noisy"), "--output", tmp.Sub("out")]);
        Assert.Equal(1, code);
        Assert.Contains("missing keys", stderr);
        Assert.Contains("different architecture or different options", stderr);
        Assert.DoesNotContain("unused branches", stderr);
    }

    private static IModelRegistry BundledModels(out ServiceProvider services)
    {
        services = new ServiceCollection().AddMcirPlugins(PluginLoader.Load(PluginLoader.Discover(PluginOptions.DefaultPluginDir))).BuildServiceProvider();
        return services.GetRequiredService<IModelRegistry>();
    }

    [Theory]
    [InlineData("kair_br.pth", "ref_bn.npy", new[] { "bias=true" })]
    [InlineData("kair_r.pth", "ref_r.npy", new[] { "bias=true", "mode=R" })]
    public void KairDnCnn_LoadsWithKairsOptions_AndReproducesPyTorch(string weights, string reference, string[] set)
    {
        var registry = BundledModels(out var services);
        using (services)
        using (var scope = NewDisposeScope())
        using (var model = ModelWeights.Open(registry, new InferenceModelRequest { Weights = Case("C2-09", weights), Model = "dncnn-light", Set = set }))
        {
            Assert.True(model.LoadReport.IsExact);
            using var x = ImageTensor.ToTensor(ImageIO.Read(Case("C2-09", "noisy", "n48.png"))).unsqueeze(0);
            using var _ = no_grad();
            var output = model.Network.call(x)[0].permute(1, 2, 0);
            var expected = Npy.Load(Case("C2-09", reference));
            using var diff = (output - expected).abs().max();
            // 8 float32 convolutions: summation order differs between libtorch builds/CPUs (AVX2 vs AVX-512), ~1e-6.
            Assert.True(diff.item<float>() <= 1e-5, $"max |output - PyTorch| = {diff.item<float>():E3}");
        }
    }

    [Fact]
    public void KairBrWithoutBiasOption_IsRefusedNamingTheBiases()
    {
        var registry = BundledModels(out var services);
        using (services)
        {
            var e = Assert.Throws<Mcir.Core.Weights.StateDictMismatchException>(() =>
                ModelWeights.Open(registry, new InferenceModelRequest { Weights = Case("C2-09", "kair_br.pth"), Model = "dncnn-light" }));
            Assert.Equal(["model.11.bias", "model.14.bias", "model.17.bias", "model.2.bias", "model.5.bias", "model.8.bias"], e.Report.Unexpected);
            Assert.Contains("unused branches", e.Message);
        }
    }
}
