using System.Text.Json.Nodes;
using Mcir.Core.Data;
using Mcir.Core.IO;
using Mcir.Host;
using Mcir.Tests.Shared;
using static TorchSharp.torch;

namespace Mcir.Plugins.Dehazing.Tests;

/// <summary>
/// DehazeFormer through mcir-host, in-process, with the plugins bundled next to the tests (loaded by the host's plugin
/// loader and registered through the generated registrar, as in a real run): listing, restoring with a checkpoint in
/// DehazeFormer's released format, and a short SPN training run.
/// </summary>
public sealed class DehazeFormerHostTests : PluginHostTest
{
    [Fact]
    public void ListShowsTheModelAndItsPresets()
    {
        var (code, stdout, stderr) = Host("list");
        Assert.True(code == 0, stderr);
        Assert.Contains("  dehazeformer  [dehaze]", stdout);
        foreach (var preset in new[] { "t", "s", "b", "m", "l" })
            Assert.Contains($"  dehazeformer-{preset}  [dehaze]  DehazeFormer preset:", stdout);
        // Parameter counts of the official constructors (computed with the reference code, dehazeformer_presets.json).
        Assert.Contains("687,404 parameters", stdout);    // T
        Assert.Contains("25,451,652 parameters", stdout); // L
        Assert.Contains("\"input_range\":\"minus-one-one\"", stdout);
    }

    [Fact]
    public void RestoresWithAReleasedFormatCheckpointAsDehazeFormersTestScript()
    {
        // dehazeformer-t.pth is {'state_dict': nn.DataParallel(net).state_dict()} (keys 'module.…'), written by torch.save
        // from the fixture weights, as DehazeFormer's train.py saves; the engine's weights reader unwraps 'state_dict'
        // and strips 'module.'. expected_float.npy is test.py's clamp(net(img * 2 - 1), -1, 1) * 0.5 + 0.5 for
        // img = hazy_u8 / 255, computed with the reference network.
        string input = Sub("hazy"), output = Path.Combine(Dir, "restored");
        var hazy = Npy.Load(DehazeFormerFixture.ReleasedPath("hazy_u8.npy"));
        int h = (int)hazy.shape[2], w = (int)hazy.shape[3];
        ImageIO.Write(Path.Combine(input, "hazy.png"), new RgbImage(h, w, hazy[0].permute(1, 2, 0).to(ScalarType.Float32).contiguous().data<float>().ToArray()));

        var (code, _, stderr) = Host("restore", "--model", "dehazeformer-t", "--weights", DehazeFormerFixture.ReleasedPath("dehazeformer-t.pth"),
            "--input", input, "--output", output);
        Assert.True(code == 0, stderr);
        Assert.Contains("wrapped state dict", stderr);

        var restored = ImageIO.Read(Path.Combine(output, "hazy.png"));
        Assert.Equal((h, w), (restored.Height, restored.Width));
        var expected = Npy.Load(DehazeFormerFixture.ReleasedPath("expected_float.npy"))[0].permute(1, 2, 0).contiguous().data<float>().ToArray();
        // test.py's write_img rounds the float output: equal 8-bit values except where float32 noise (~1e-6, other
        // kernels) crosses a rounding boundary, which can move a value by one level.
        int off = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double diff = Math.Abs(restored.Pixels[i] - Math.Round(expected[i] * 255.0, MidpointRounding.ToEven));
            Assert.True(diff <= 1, $"sample {i}: restored {restored.Pixels[i]}, test.py {expected[i] * 255.0:F3}");
            if (diff > 0) off++;
        }
        Assert.True(off <= expected.Length / 1000 + 1, $"{off} of {expected.Length} samples differ by one level");
    }

    [Fact]
    public void TrainsDehazeFormerTWithSpnForTwoIterations()
    {
        // Tiny paired data: smooth clear images and hazy versions I = J·t + A·(1 − t) (t = 0.6, A = 0.9).
        string gt = Sub("gt"), lq = Sub("hazy"), testGt = Sub("test-gt"), testLq = Sub("test-hazy");
        var rng = new Random(5);
        void Pair(string gtDir, string lqDir, string name, int ih, int iw)
        {
            double a = rng.NextDouble() * 0.2, b = rng.NextDouble() * 0.2;
            var clear = new float[ih * iw * 3];
            var hazy = new float[clear.Length];
            for (int y = 0; y < ih; y++)
                for (int x = 0; x < iw; x++)
                    for (int c = 0; c < 3; c++)
                    {
                        int i = (y * iw + x) * 3 + c;
                        clear[i] = (float)Math.Round(127.5 + 100 * Math.Sin(a * x + b * y + c));
                        hazy[i] = (float)Math.Round(clear[i] * 0.6 + 0.4 * 0.9 * 255);
                    }
            ImageIO.Write(Path.Combine(gtDir, name), new RgbImage(ih, iw, clear));
            ImageIO.Write(Path.Combine(lqDir, name), new RgbImage(ih, iw, hazy));
        }
        for (int i = 0; i < 3; i++) Pair(gt, lq, $"t{i}.png", 48, 48);
        Pair(testGt, testLq, "v0.png", 36, 42); // not a multiple of 4 or 8: the internal reflect pads and crops

        string config = Path.Combine(Dir, "run.json");
        File.WriteAllText(config, $$"""
        {
          "name": "tiny-dehazeformer",
          "output_root": "{{Dir}}/runs",
          "model": { "name": "dehazeformer-t" },
          "data": {
            "train": { "type": "paired-folder", "dataroot_gt": "{{gt}}", "dataroot_lq": "{{lq}}", "gt_size": 32, "use_hflip": true, "use_rot": true, "dataset_enlarge_ratio": 2 },
            "test": [ { "type": "paired-folder", "name": "tiny-hazy", "dataroot_gt": "{{testGt}}", "dataroot_lq": "{{testLq}}" } ],
            "batch_size": 2
          },
          "loss": { "reconstruction": "l1", "spn": { "lambda": 1e-4 } },
          "negatives": { "init": "copy", "steps": [1, 2], "decays": [0.1, 0.1] },
          "train": { "total_iter": 2, "print_freq": 1, "checkpoint_freq": 2, "seed": 3, "optimizer": { "type": "adamw", "lr": 4e-4, "weight_decay": 0.01 } },
          "metrics": { "crop_border": 0, "y_channel": false }
        }
        """);
        var (code, stdout, stderr) = Host("run", "--config", config);
        Assert.True(code == 0, stderr);
        Assert.Contains("negatives: ema, K = 2", stderr);
        Assert.Contains("test set tiny-hazy (protocol basicsr: RGB, crop border 0)", stdout);

        string runDir = Path.Combine(Dir, "runs", "tiny-dehazeformer");
        var metrics = File.ReadAllLines(Path.Combine(runDir, "metrics.jsonl")).Select(static l => JsonNode.Parse(l)!).ToList();
        var steps = metrics.Where(static m => (string?)m["event"] == "train").ToList();
        Assert.Equal(2, steps.Count);
        Assert.All(steps, static m => Assert.True(double.IsFinite((double)m["loss"]!["l1"]!), m.ToJsonString()));
        Assert.All(steps, static m => Assert.NotNull(m["loss"]!["spn/neg1"])); // the SPN term ran, per negative
        var resolved = JsonNode.Parse(File.ReadAllText(Path.Combine(runDir, "config.resolved.json")))!;
        Assert.Equal("minus-one-one", (string?)resolved["model"]!["options"]!["input_range"]);
        Assert.Equal([4, 4, 4, 2, 2], resolved["model"]!["options"]!["depths"]!.AsArray().Select(static d => (int)d!));
        Assert.Equal(1e-4, (double)resolved["loss"]!["spn"]!["lambda"]!);
        var results = JsonNode.Parse(File.ReadAllText(Path.Combine(runDir, "results.json")))!.AsArray();
        Assert.Equal("input", (string?)results[0]!["baseline"]!["name"]);
        Assert.InRange((double)results[0]!["model"]!["psnr"]!, 5, 60); // finite, an image: two steps from a random init
    }
}
