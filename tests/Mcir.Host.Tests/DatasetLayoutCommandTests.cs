using System.Text.Json.Nodes;
using Mcir.Core.Data;
using Mcir.Core.IO;

namespace Mcir.Host.Tests;

/// <summary>
/// Data sets as downloaded through the host: DIV2K's official names with BasicSR's <c>filename_tmpl</c> (case C2-04),
/// and a 1-channel pipeline for a gray model (case C2-05). The cases' files are copied under TestData/cases.
/// </summary>
public class DatasetLayoutCommandTests
{
    private static string Case(params string[] parts) => Path.Combine([AppContext.BaseDirectory, "TestData", "cases", .. parts]);

    [Fact]
    public void Div2kWithItsOfficialNamesTrainsAndTestsWithTheFilenameTemplate()
    {
        using var tmp = new TempDir();
        string div2k = Case("C2-04", "DIV2K");
        string validGt = Path.Combine(div2k, "DIV2K_valid_HR"), validLq = Path.Combine(div2k, "DIV2K_valid_LR_bicubic", "X2");
        var testSet = new JsonArray(new JsonObject
        {
            ["type"] = "paired-folder", ["name"] = "DIV2K-valid", ["dataroot_gt"] = validGt, ["dataroot_lq"] = validLq,
            ["filename_tmpl"] = "{}x2", ["scale"] = 2,
        });
        string[] args =
        [
            "run", "--config", Path.Combine(AppContext.BaseDirectory, "configs", "sr", "edsr-light-x2-div2k-baseline.json"), "--set",
            $"output_root={tmp.Path}",
            $"data.train.dataroot_gt={Path.Combine(div2k, "DIV2K_train_HR")}",
            $"data.train.dataroot_lq={Path.Combine(div2k, "DIV2K_train_LR_bicubic", "X2")}",
            "data.train.filename_tmpl={}x2", "data.train.gt_size=32", "data.batch_size=1", "train.total_iter=2",
            "data.val=null", $"data.test={testSet.ToJsonString()}",
        ];
        var (code, stdout, stderr) = HostRunner.Run(args);
        Assert.True(code == 0, stderr);
        Assert.Contains("test set DIV2K-valid", stdout);
        Assert.Contains("0801", stdout);

        // With same-name pairing ('{}') the error names the files and the rule (what C2-04 reported as "different image sets").
        (code, _, stderr) = HostRunner.Run([.. args.Select(a => a.StartsWith("data.train.filename_tmpl", StringComparison.Ordinal) ? "data.train.filename_tmpl=\"{}\"" : a), "output_root=" + tmp.Sub("b")]);
        Assert.Equal(1, code);
        Assert.Contains("error: data.train: type paired-folder: 2 GT file(s) without a LQ file: 0001.png (looked for '0001.*'), 0002.png", stderr);
        Assert.Contains("filename_tmpl '{}'", stderr);

        string run = Path.Combine(tmp.Path, "edsr-light-x2-div2k-baseline");
        (code, stdout, stderr) = HostRunner.Run("test", "--weights", run, "--gt", validGt, "--lq", validLq, "--filename-tmpl", "{}x2", "--y-channel");
        Assert.True(code == 0, stderr);
        Assert.Contains("0801", stdout);
        Assert.Contains("Y channel, crop border 2", stdout);

        (code, _, stderr) = HostRunner.Run("test", "--weights", run, "--gt", validGt, "--lq", validLq);
        Assert.Equal(1, code);
        Assert.Contains("0801.png (looked for '0801.*')", stderr);
        Assert.DoesNotContain("   at ", stderr);
    }

    [Fact]
    public void ListShowsTheLayouts()
    {
        var (code, stdout, stderr) = HostRunner.Run("list");
        Assert.True(code == 0, stderr);
        Assert.Contains("data set layouts (data.*.type; also hr-folder and degraded-folder):", stdout);
        foreach (var name in new[] { "paired-folder", "reside", "rain200", "ddn", "did", "spa", "gopro" })
            Assert.Contains($"  {name}  (engine)", stdout);
    }

    private static string GrayConfig(TempDir tmp)
    {
        // The case's configuration with its relative paths pointed at the copied files.
        var config = JsonNode.Parse(File.ReadAllText(Case("C2-05", "gray-dncnn.json")))!.AsObject();
        string gray = Case("C2-05", "gray12");
        config["output_root"] = tmp.Path;
        config["data"]!["train"]!["dataroot_gt"] = gray;
        config["data"]!["val"]!["dataroot_gt"] = gray;
        config["data"]!["test"]![0]!["dataroot_gt"] = gray;
        string path = Path.Combine(tmp.Path, "gray-dncnn.json");
        File.WriteAllText(path, config.ToJsonString());
        return path;
    }

    [Fact]
    public void AGrayModelTrainsOnGrayImages()
    {
        using var tmp = new TempDir();
        string config = GrayConfig(tmp);
        var (code, stdout, stderr) = HostRunner.Run("run", "--config", config);
        Assert.True(code == 0, stderr);
        Assert.Contains("images are read as 1 channel (gray) for model 'dncnn-light' (model option 'channels')", stderr + stdout);
        Assert.Contains("test set quickstart-test-sigma25 (protocol basicsr: gray, crop border 0)", stdout);
        var results = JsonNode.Parse(File.ReadAllText(Path.Combine(tmp.Path, "gray-dncnn", "results.json")))!.AsArray();
        Assert.Equal(3, results[0]!["images"]!.AsArray().Count);
        Assert.Equal("basicsr", (string?)results[0]!["protocol"]!["name"]);
        Assert.True((bool)results[0]!["protocol"]!["gray"]!); // a 1-channel run's table is gray, not RGB

        // A data set configured with 3 channels for the 1-channel model is refused at start-up, naming both.
        (code, _, stderr) = HostRunner.Run("run", "--config", config, "--set", "data.train.channels=3", $"output_root={tmp.Sub("b")}");
        Assert.Equal(1, code);
        Assert.Contains("error: data.train.channels is 3 but the model takes 1 input channel (model 'dncnn-light', model option 'channels')", stderr);

        // SPN's RGB embedding with the gray model: refused before training starts.
        (code, _, stderr) = HostRunner.Run("run", "--config", config, "--set", "loss.spn={\"lambda\": 0.001}", $"output_root={tmp.Sub("c")}");
        Assert.Equal(1, code);
        Assert.Contains("error: loss.spn: its ImageNet embedding takes RGB images, but model 'dncnn-light' takes 1 channel", stderr);
        Assert.DoesNotContain("training:", stderr);
    }

    [Fact]
    public void RestoreWithAGrayModelWritesGrayPngs()
    {
        using var tmp = new TempDir();
        string output = tmp.Sub("out");
        var (code, stdout, stderr) = HostRunner.Run("restore", "--model", "dncnn-light", "--set", "channels=1",
            "--weights", Case("C2-05", "dncnn_gray.pth"), "--input", Case("C2-05", "gray12"), "--output", output);
        Assert.True(code == 0, stderr);
        Assert.Contains("restored 3 images", stdout);
        // PyTorch 1.13's output of the same 1-channel DnCNN on each file (x − net(x), clamped, ×255, rounded; see
        // TestData/cases/README.md), [3, 48, 48] uint8.
        using var reference = Npy.Load(Case("C2-05", "restored_ref.npy"));
        var expected = reference.data<byte>().ToArray();
        string[] names = ["g01", "g02", "g03"];
        for (int k = 0; k < names.Length; k++)
        {
            string file = Path.Combine(output, names[k] + ".png");
            var bytes = File.ReadAllBytes(file);
            Assert.Equal((0, 8), (bytes[25], bytes[24])); // IHDR: colour type 0 (grayscale), 8 bits
            var restored = ImageIO.Read(file);
            Assert.Equal((48, 48), (restored.Height, restored.Width));
            // 8 float32 convolutions differ from PyTorch's by ~1e-6, which can move a value across a rounding boundary: ±1 level.
            for (int i = 0; i < 48 * 48; i++)
                Assert.True(Math.Abs(restored.Pixels[i * 3] - expected[k * 48 * 48 + i]) <= 1,
                    $"{names[k]} pixel {i}: {restored.Pixels[i * 3]} vs PyTorch {expected[k * 48 * 48 + i]}");
        }
    }
}
