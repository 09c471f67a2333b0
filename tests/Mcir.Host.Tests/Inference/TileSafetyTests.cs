using Mcir.Abstractions.Models;
using Mcir.Core.Data;
using Mcir.Core.Inference;
using Mcir.Host.Commands;
using Mcir.Host.Plugins;
using Microsoft.Extensions.DependencyInjection;
using static TorchSharp.torch;

namespace Mcir.Host.Tests.Inference;

/// <summary>
/// Case C2-12 (tiles and global statistics): <c>restore --tile 48 --tile-overlap 16</c> of a model with global pooling
/// (NAFNet, FFA-Net) differs from the whole-image result far outside the blend bands, so the host warns; a tile-safe model
/// (EDSR) gets no warning and its tiled output equals the whole one outside the bands.
/// </summary>
public sealed class TileSafetyTests
{
    private const int Tile = 48, Overlap = 16;
    private static readonly string[] Images = ["c96.png", "split96.png"];

    private static string Case(string file) => Path.Combine(AppContext.BaseDirectory, "TestData", "cases", "C2-12", file);
    private static string Weights(string fixture) => Path.Combine(AppContext.BaseDirectory, "TestData", "archs", fixture, "state_dict.pth");

    // The reference fixtures' networks: nafnet-small and ffa-net-small as registered; EDSR as BasicSR's fixture (64/2, x4).
    public static TheoryData<string, string, string[], bool> Models => new()
    {
        { "nafnet-small", "nafnet_small", [], false },
        { "ffa-net-small", "ffa_small", [], false },
        { "edsr", "edsr", ["--scale", "4", "--set", "num_feat=64", "num_block=2", "res_scale=1"], true },
    };

    [Theory]
    [MemberData(nameof(Models))]
    public void TiledRestoreWarnsExactlyForModelsThatAreNotTileSafe(string model, string fixture, string[] options, bool tileSafe)
    {
        using var tmp = new TempDir();
        string[] common = ["restore", "--model", model, "--weights", Weights(fixture), "--input", Path.GetDirectoryName(Case(Images[0]))!, .. options];
        var (code, _, wholeErr) = HostRunner.Run([.. common, "--output", tmp.Sub("whole")]);
        Assert.True(code == 0, wholeErr);
        Assert.DoesNotContain("warning:", wholeErr); // no tiles, nothing to warn about

        var (tiledCode, stdout, tiledErr) = HostRunner.Run([.. common, "--output", tmp.Sub("tiled"), "--tile", $"{Tile}", "--tile-overlap", $"{Overlap}"]);
        Assert.True(tiledCode == 0, tiledErr);
        Assert.Contains("restored 2 images", stdout);
        var warnings = tiledErr.Split('\n').Where(l => l.StartsWith("warning:", StringComparison.Ordinal)).ToList();
        if (tileSafe)
        {
            Assert.Empty(warnings);
        }
        else
        {
            var line = Assert.Single(warnings);
            Assert.StartsWith($"warning: {model} is not tile-safe: ", line);
            Assert.Contains("average", line); // the reason: global average pooling
            Assert.Contains($"--tile {Tile}", line);
        }

        // The written images: outside the blend bands a tile-safe model's tiled PNG is the whole one (float differences
        // are at most 1e-5, checked below, and the conversion rounds both alike except within 1e-5 of a half level).
        int total = 0;
        foreach (var name in Images)
        {
            var whole = ImageIO.Read(Path.Combine(tmp.Path, "whole", name));
            var tiled = ImageIO.Read(Path.Combine(tmp.Path, "tiled", name));
            var (differing, maxLevels) = CompareOutsideBands(whole, tiled);
            Console.WriteLine($"{model} {name}: {differing} pixel values differ outside the blend bands (up to {maxLevels} levels)");
            if (tileSafe) Assert.True(maxLevels <= 1 && differing <= 3, $"{model} {name}: {differing} values differ outside the bands, up to {maxLevels} levels");
            total += differing;
        }
        // Not tile-safe: the written 8-bit images differ away from the bands (split96: about 100 values by one level for
        // nafnet-small, about 900 by up to 4 levels for ffa-net-small).
        if (!tileSafe) Assert.True(total > 0, $"{model}: tiled and whole PNGs agree outside the blend bands");
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void TiledOutputDiffersFromTheWholeOutsideTheBlendBandsExactlyForModelsThatAreNotTileSafe(string model, string fixture, string[] options, bool tileSafe)
    {
        using var services = new ServiceCollection().AddMcirPlugins(PluginLoader.Load(PluginLoader.Discover(PluginOptions.DefaultPluginDir))).BuildServiceProvider();
        var registry = services.GetRequiredService<IModelRegistry>();
        Assert.Equal(tileSafe, registry.Get(model).TileSafe);
        var set = options.SkipWhile(o => o != "--set").Skip(1).ToArray();
        int? scale = options.Contains("--scale") ? 4 : null;
        using var net = ModelWeights.Open(registry, new InferenceModelRequest { Weights = Weights(fixture), Model = model, Set = set, Scale = scale });

        double worst = 0;
        foreach (var name in Images)
        {
            using var scope = NewDisposeScope();
            var x = ImageTensor.ToTensor(ImageIO.Read(Case(name))).unsqueeze(0);
            var whole = TiledRestorer.Restore(net.Network, x);
            var tiled = TiledRestorer.Restore(net.Network, x, new TileOptions { TileSize = Tile, Overlap = Overlap });
            var outside = OutsideBands((int)x.shape[2], (int)x.shape[3], (int)(whole.shape[2] / x.shape[2]));
            double diff = (whole - tiled).abs().mul(outside).max().item<float>();
            Console.WriteLine($"{model} {name}: max |tiled - whole| outside the blend bands = {diff:E3}");
            worst = Math.Max(worst, diff);
        }
        if (tileSafe)
            // Same network, other input shapes: convolution kernels may sum in another order (float32 rounding only).
            Assert.True(worst <= 1e-5, $"{model}: tiled and whole differ by {worst:E3} outside the blend bands");
        else
            // Global statistics of a 48-pixel tile are not those of the image: 1e-3 (nafnet-small, whose residual scales are
            // near 0.1) to 0.1 (ffa-net-small) on split96, far above float rounding (1e-5).
            Assert.True(worst > 1e-4, $"{model}: tiled and whole differ by only {worst:E3} outside the blend bands; is it tile-safe after all?");
    }

    // 1 where an output pixel comes from one tile only (outside every overlap), else 0; shape [1, 1, s·h, s·w].
    private static Tensor OutsideBands(int h, int w, int scale)
    {
        float[] Single(int length)
        {
            var cover = new int[length];
            int n = Math.Min(Tile, length);
            foreach (int start in TiledRestorer.TileStarts(length, n, Overlap))
                for (int i = start; i < start + n; i++) cover[i]++;
            return Enumerable.Range(0, length * scale).Select(i => cover[i / scale] == 1 ? 1f : 0f).ToArray();
        }
        var rows = tensor(Single(h), [h * scale, 1L]);
        var cols = tensor(Single(w), [1L, w * scale]);
        return rows.mul(cols).view(1, 1, h * scale, w * scale);
    }

    private static (int Differing, int MaxLevels) CompareOutsideBands(RgbImage whole, RgbImage tiled)
    {
        Assert.Equal((whole.Height, whole.Width), (tiled.Height, tiled.Width));
        using var scope = NewDisposeScope();
        int scale = whole.Height / 96;
        var mask = OutsideBands(96, 96, scale).view(whole.Height, whole.Width);
        int differing = 0, max = 0;
        var m = mask.data<float>().ToArray();
        var a = whole.Pixels;
        var b = tiled.Pixels;
        for (int i = 0; i < a.Length; i++)
        {
            if (m[i / RgbImage.Channels] == 0) continue;
            int d = (int)Math.Abs(a[i] - b[i]);
            if (d > 0) differing++;
            max = Math.Max(max, d);
        }
        return (differing, max);
    }
}
