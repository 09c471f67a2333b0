using Mcir.Core.Data;

namespace Mcir.Host.Tests;

/// <summary>A tiny training run on generated data, shared by the host's end-to-end tests.</summary>
internal static class TinyRun
{
    /// <summary>Writes tiny smooth training/test images and a run configuration (EDSR-light 8/1 x2, SPN, 4 iterations).</summary>
    public static string Write(TempDir tmp, string name = "tiny", int testImages = 1)
    {
        string train = tmp.Sub("train"), test = tmp.Sub("test");
        var rng = new Random(1);
        for (int i = 0; i < 3; i++)
        {
            ImageIO.Write(Path.Combine(train, $"t{i}.png"), Smooth(48, 48, rng));
        }
        ImageIO.Write(Path.Combine(test, "v0.png"), Smooth(40, 36, rng));
        if (testImages > 1) ImageIO.Write(Path.Combine(test, "v1.png"), Smooth(34, 50, rng));
        string config = Path.Combine(tmp.Path, "run.json");
        File.WriteAllText(config, $$"""
        {
          "name": "{{name}}",
          "output_root": "{{tmp.Path}}/runs",
          "model": { "name": "edsr-light", "options": { "upscale": 2, "num_feat": 8, "num_block": 1 } },
          "data": {
            "train": { "dataroot_gt": "{{train}}", "scale": 2, "gt_size": 32, "use_hflip": true, "dataset_enlarge_ratio": 4 },
            "test": [ { "name": "tiny-test", "dataroot_gt": "{{test}}", "scale": 2 } ],
            "batch_size": 2
          },
          "loss": { "spn": { "lambda": 1e-3 } },
          "negatives": { "steps": [2, 3] },
          "train": { "total_iter": 4, "print_freq": 1, "checkpoint_freq": 2, "seed": 3 },
          "metrics": { "crop_border": 2, "y_channel": true }
        }
        """);
        return config;
    }

    // A smooth random image (so bicubic is a sensible baseline and PSNR values are finite).
    public static RgbImage Smooth(int h, int w, Random rng)
    {
        double a = rng.NextDouble() * 0.2, b = rng.NextDouble() * 0.2;
        var px = new float[h * w * 3];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++)
                    px[(y * w + x) * 3 + c] = (float)Math.Round(127.5 + 100 * Math.Sin(a * x + b * y + c));
        return new RgbImage(h, w, px);
    }
}
