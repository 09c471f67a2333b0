using System.Globalization;
using System.Text.Json.Nodes;

namespace Mcir.Host.Tests;

/// <summary>
/// The README's main job: the shipped base model (data/base-x2) against bicubic on the bundled held-out photos, and
/// the quickstart configuration fine-tuning from it with the base scored beside bicubic and the fine-tuned model.
/// </summary>
public class QuickstartTests
{
    // data/quickstart and data/base-x2/*.safetensors are copied next to the tests (see the project file).
    private static string Data(params string[] parts) => Path.Combine([AppContext.BaseDirectory, "data", .. parts]);

    private static string BaseWeights => Data("base-x2", "edsr-light-x2-base.safetensors");

    // "chelsea  35.2586  0.916042  35.7577  0.931686": the PSNR columns of a test-table row, in table order.
    private static double[] Psnrs(string stdout, string image)
    {
        var row = stdout.Split('\n').Select(l => l.Trim()).First(l => l.StartsWith(image + " ", StringComparison.Ordinal));
        var cells = row.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(c => double.Parse(c, CultureInfo.InvariantCulture)).ToArray();
        return cells.Where((_, i) => i % 2 == 0).ToArray(); // PSNR, SSIM pairs
    }

    [Fact]
    public void TheShippedBaseModelBeatsBicubicByHalfADecibelOnEveryBundledTestPhoto()
    {
        // Issue-level promise of the quickstart: the model a newcomer starts from is better than doing nothing, on
        // photos it never saw (the base was trained on Debian wallpapers, data/base-x2/sources.tsv).
        var (code, stdout, stderr) = HostRunner.Run("test", "--weights", BaseWeights, "--gt", Data("quickstart", "test"),
            "--scale", "2", "--crop-border", "2", "--y-channel");
        Assert.True(code == 0, stderr);
        foreach (var image in new[] { "chelsea", "hubble_crop", "mean" })
        {
            var (bicubic, model) = (Psnrs(stdout, image)[0], Psnrs(stdout, image)[1]);
            Assert.True(model >= bicubic + 0.5, $"{image}: base {model:F4} dB, bicubic {bicubic:F4} dB (need +0.5 dB)\n{stdout}");
        }
    }

    [Fact]
    public void RestoreWithTheBaseModelNeedsOnlyTheWeightsFile()
    {
        // The README's second example: the exported file carries its model and options.
        using var tmp = new TempDir();
        var (code, _, stderr) = HostRunner.Run("restore", "--weights", BaseWeights, "--input", Data("quickstart", "test", "hubble_crop.png"), "--output", tmp.Path);
        Assert.True(code == 0, stderr);
        var input = SixLabors.ImageSharp.Image.Identify(Data("quickstart", "test", "hubble_crop.png"));
        var output = SixLabors.ImageSharp.Image.Identify(Path.Combine(tmp.Path, "hubble_crop.png"));
        Assert.Equal((2 * input.Width, 2 * input.Height), (output.Width, output.Height));
    }

    [Fact]
    public void TheQuickstartFineTunesTheBaseAndScoresItBesideBicubicAndTheResult()
    {
        using var tmp = new TempDir();
        string config = Path.Combine(AppContext.BaseDirectory, "configs", "quickstart", "edsr-light-x2-spn.json");
        var (code, stdout, stderr) = HostRunner.Run("run", "--config", config, "--set", "train.total_iter=2", "train.print_freq=1",
            $"output_root={tmp.Path}/runs", $"path.pretrain_network_g={BaseWeights}",
            $"data.train.dataroot_gt={Data("quickstart", "train")}", $"data.val.dataroot_gt={Data("quickstart", "test")}",
            $$"""data.test=[{"type":"hr-folder","name":"quickstart-test","dataroot_gt":"{{Data("quickstart", "test").Replace("\\", "/")}}","scale":2}]""");
        Assert.True(code == 0, stderr);
        Assert.Contains($"pretrained weights {BaseWeights}", stderr);
        Assert.Contains("start PSNR", stdout);

        // The start column is the base model itself: the same numbers as `test` on the shipped file. Both score the same
        // weights on the same images in this process; the tolerance is one unit of the printed 4th decimal, so a
        // different evaluation path (memory format, kernel choice) on another CPU cannot flip a rounding.
        var (_, baseOut, _) = HostRunner.Run("test", "--weights", BaseWeights, "--gt", Data("quickstart", "test"), "--scale", "2", "--crop-border", "2", "--y-channel");
        foreach (var image in new[] { "chelsea", "hubble_crop" })
        {
            var run = Psnrs(stdout, image);
            Assert.Equal(3, run.Length); // bicubic, start, model
            Assert.Equal(Psnrs(baseOut, image)[1], run[1], 1e-4 + 1e-9);
            Assert.Equal(Psnrs(baseOut, image)[0], run[0], 1e-4 + 1e-9);
        }
        var results = JsonNode.Parse(File.ReadAllText(Path.Combine(tmp.Path, "runs", "quickstart-edsr-light-x2-spn", "results.json")))!.AsArray();
        Assert.Equal(Psnrs(stdout, "mean")[1], (double)results[0]!["start"]!["psnr"]!, 5e-5 + 1e-9); // printed with 4 decimals
        Assert.NotNull(results[0]!["images"]![0]!["start_psnr"]);
    }
}
