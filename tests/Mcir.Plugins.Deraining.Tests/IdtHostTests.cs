using System.Text.Json.Nodes;
using Mcir.Core.Data;
using Mcir.Core.IO;
using Mcir.Core.Weights;
using Mcir.Host;
using Mcir.Tests.Shared;
using static TorchSharp.torch;

namespace Mcir.Plugins.Deraining.Tests;

/// <summary>
/// IDT through mcir-host, in-process, with the plugins bundled next to the tests (loaded by the host's plugin loader and
/// registered through the generated registrar, as in a real run): listing, restoring a whole image in windows with a
/// DataParallel checkpoint, a short SPN training run with the SSIM loss, and export.
/// </summary>
public sealed class IdtHostTests : PluginHostTest
{
    [Fact]
    public void ListShowsTheModelItsPresetsAndTheSsimLoss()
    {
        var (code, stdout, stderr) = Host("list");
        Assert.True(code == 0, stderr);
        Assert.Contains("  idt  [derain]", stdout);
        Assert.Contains("  idt-small  [derain]  IDT preset: embed_dim 4", stdout);
        Assert.Contains("16,416,463 parameters", stdout); // the released configuration (fixture config.json)
        Assert.Contains("599,907 parameters", stdout);    // idt-small = the fixture network
        Assert.Contains("  ssim", stdout);
    }

    [Fact]
    public void RestoresAWholeImageInWindowsWithADataParallelCheckpoint()
    {
        // idt_dataparallel.pth is nn.DataParallel(net).state_dict() of the fixture weights, as IDT's train_derain.py saves;
        // expected_float.npy is test_full_size.py's window/merge result for rainy_u8 / 255 (IDT's own functions).
        string input = Sub("rainy"), output = Path.Combine(Dir, "restored");
        var rainy = Npy.Load(IdtFixture.ReferencePath("rainy_u8.npy"));
        int h = (int)rainy.shape[2], w = (int)rainy.shape[3];
        ImageIO.Write(Path.Combine(input, "rain-1.png"), new RgbImage(h, w, rainy[0].permute(1, 2, 0).to(ScalarType.Float32).contiguous().data<float>().ToArray()));

        var (code, _, stderr) = Host("restore", "--model", "idt-small", "--weights", IdtFixture.ReferencePath("idt_dataparallel.pth"),
            "--input", input, "--output", output);
        Assert.True(code == 0, stderr);

        var restored = ImageIO.Read(Path.Combine(output, "rain-1.png"));
        Assert.Equal((h, w), (restored.Height, restored.Width));
        var expected = Npy.Load(IdtFixture.ReferencePath("expected_float.npy"))[0].permute(1, 2, 0).contiguous().data<float>().ToArray();
        // test_full_size.py clamps to [0, 1] and writes img_as_ubyte (round(x * 255)): equal 8-bit values except where float32
        // noise (~1e-6, other kernels) crosses a rounding boundary, which can move a value by one level.
        int off = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double diff = Math.Abs(restored.Pixels[i] - Math.Round(Math.Clamp(expected[i], 0, 1) * 255.0, MidpointRounding.ToEven));
            Assert.True(diff <= 1, $"sample {i}: restored {restored.Pixels[i]}, test_full_size.py {expected[i] * 255.0:F3}");
            if (diff > 0) off++;
        }
        Assert.True(off <= expected.Length / 1000 + 1, $"{off} of {expected.Length} samples differ by one level");
    }

    [Fact]
    public void TrainsIdtSmallWithSpnAndExportsTheReleasedKeys()
    {
        // Tiny paired data in IDT's rearranged layout (input/ + groundtruth/, paired by name): smooth clean images and
        // rainy versions with bright diagonal streaks. Training patches are the network's 128x128; the test image (150x140)
        // is restored in windows.
        string root = Sub("Rain200L"), test = Sub("Rain200L-test");
        string gt = Sub("Rain200L/groundtruth"), lq = Sub("Rain200L/input"), testGt = Sub("Rain200L-test/groundtruth"), testLq = Sub("Rain200L-test/input");
        var rng = new Random(5);
        void Pair(string gtDir, string lqDir, string name, int ih, int iw)
        {
            double a = rng.NextDouble() * 0.1, b = rng.NextDouble() * 0.1;
            var clean = new float[ih * iw * 3];
            var rainy = new float[clean.Length];
            for (int y = 0; y < ih; y++)
                for (int x = 0; x < iw; x++)
                    for (int c = 0; c < 3; c++)
                    {
                        int i = (y * iw + x) * 3 + c;
                        clean[i] = (float)Math.Round(127.5 + 90 * Math.Sin(a * x + b * y + c));
                        rainy[i] = (x + 2 * y) % 17 == 0 ? Math.Min(255, clean[i] + 80) : clean[i];
                    }
            ImageIO.Write(Path.Combine(gtDir, name), new RgbImage(ih, iw, clean));
            ImageIO.Write(Path.Combine(lqDir, name), new RgbImage(ih, iw, rainy));
        }
        for (int i = 0; i < 2; i++) Pair(gt, lq, $"{i + 1}.png", 136, 136);
        Pair(testGt, testLq, "1.png", 150, 140);

        string config = Path.Combine(Dir, "run.json");
        File.WriteAllText(config, $$"""
        {
          "name": "tiny-idt",
          "output_root": "{{Dir}}/runs",
          "model": { "name": "idt-small" },
          "data": {
            "train": { "type": "paired-folder", "dataroot_gt": "{{gt}}", "dataroot_lq": "{{lq}}", "gt_size": 128, "use_hflip": true },
            "test": [ { "type": "paired-folder", "name": "tiny-rain", "dataroot_gt": "{{testGt}}", "dataroot_lq": "{{testLq}}" } ],
            "batch_size": 2
          },
          "loss": { "reconstruction": "ssim", "spn": { "lambda": 1e-4 } },
          "negatives": { "init": "copy", "steps": [1, 2], "decays": [0.1, 0.1] },
          "train": { "total_iter": 2, "print_freq": 1, "checkpoint_freq": 2, "seed": 3, "optimizer": { "type": "adam", "lr": 1e-4, "betas": [0.9, 0.999] } },
          "metrics": { "crop_border": 0, "y_channel": false }
        }
        """);
        var (code, stdout, stderr) = Host("run", "--config", config);
        Assert.True(code == 0, stderr);
        Assert.Contains("negatives: ema, K = 2", stderr);
        Assert.Contains("test set tiny-rain (protocol basicsr: RGB, crop border 0)", stdout);

        string runDir = Path.Combine(Dir, "runs", "tiny-idt");
        var steps = File.ReadAllLines(Path.Combine(runDir, "metrics.jsonl")).Select(static l => JsonNode.Parse(l)!)
            .Where(static m => (string?)m["event"] == "train").ToList();
        Assert.Equal(2, steps.Count);
        Assert.All(steps, static m => Assert.InRange((double)m["loss"]!["ssim"]!, 0.0, 2.0)); // 1 - SSIM
        Assert.All(steps, static m => Assert.NotNull(m["loss"]!["spn/neg1"])); // the SPN term ran, per negative
        var results = JsonNode.Parse(File.ReadAllText(Path.Combine(runDir, "results.json")))!.AsArray();
        Assert.Equal("input", (string?)results[0]!["baseline"]!["name"]);
        Assert.InRange((double)results[0]!["model"]!["psnr"]!, 5, 80);

        // export: a {"params": state_dict} .pth whose keys and shapes are the reference network's (fixture key list).
        string exported = Path.Combine(Dir, "idt-small.pth");
        var (ecode, _, eerr) = Host("export", "--weights", runDir, "--output", exported);
        Assert.True(ecode == 0, eerr);
        var state = StateDictFile.Read(exported);
        try
        {
            var manifest = IdtFixture.Load().StateDictManifest();
            Assert.Equal(manifest.Select(static m => m.Name).Order(StringComparer.Ordinal), state.Keys.Order(StringComparer.Ordinal));
            foreach (var (name, shape) in manifest) Assert.Equal(shape, state[name].shape);
        }
        finally
        {
            foreach (var t in state.Values) t.Dispose();
        }
    }
}
