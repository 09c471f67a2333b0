using Mcir.Core.Data;
using Mcir.Core.Data.Datasets;
using Mcir.Core.Metrics;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Runs;

/// <summary>
/// Scores a network on a data set of whole images with a metrics protocol, optionally writing LQ | output | GT
/// side-by-side images, and scores the plain baseline (bicubic upscaling for SR, the input itself otherwise).
/// </summary>
public static class RestorationEvaluator
{
    // forward: how an LQ batch [1, C, h, w] is restored (default: the whole image through TiledRestorer, which pads to the
    // network's IInputSizeMultiple and crops back), e.g. tile by tile;
    // onRestored: receives each restored image with its sample name (e.g. to save it).
    public static MetricsReport Evaluate(nn.Module<Tensor, Tensor> net, IPairedDataset data, MetricsProtocol protocol, string? imageDir = null,
        Func<Tensor, Tensor>? forward = null, Action<string, RgbImage>? onRestored = null)
    {
        bool wasTraining = net.training;
        net.eval();
        var device = Compute.TorchDevice.Of(net); // images go to the network's device; metrics are computed on the CPU
        try
        {
            var scores = new List<ImageScore>();
            for (int i = 0; i < data.Count; i++)
            {
                var pair = data.Load(i, new Random(0));
                RgbImage restored;
                using (var scope = NewDisposeScope())
                using (no_grad())
                {
                    var lq = ImageTensor.ToTensor(pair.Lq, device, data.Channels).unsqueeze(0);
                    restored = ImageTensor.ToImage(forward is null ? Inference.TiledRestorer.Restore(net, lq) : forward(lq));
                }
                if (restored.Height != pair.Gt.Height || restored.Width != pair.Gt.Width)
                    throw new McirException($"{pair.Name}: the network returned {restored.Height}x{restored.Width} for a {pair.Lq.Height}x{pair.Lq.Width} input, the ground truth is {pair.Gt.Height}x{pair.Gt.Width}");
                scores.Add(Score(pair.Name, pair.Gt, restored, Effective(protocol, data)));
                onRestored?.Invoke(pair.Name, restored);
                if (imageDir is not null)
                    ImageIO.Write(Path.Combine(imageDir, pair.Name + ".png"), SideBySide(Upscale(pair.Lq, pair.Gt), restored, pair.Gt));
            }
            return new MetricsReport(protocol, scores);
        }
        finally
        {
            if (wasTraining) net.train();
        }
    }

    /// <summary>The baseline: bicubic (MATLAB) upscaling of the input for SR, the input itself for same-size tasks.</summary>
    public static MetricsReport EvaluateBaseline(IPairedDataset data, MetricsProtocol protocol)
    {
        var scores = new List<ImageScore>();
        for (int i = 0; i < data.Count; i++)
        {
            var pair = data.Load(i, new Random(0));
            scores.Add(Score(pair.Name, pair.Gt, Baseline(pair.Lq, pair.Gt), Effective(protocol, data)));
        }
        return new MetricsReport(protocol, scores);
    }

    // BasicSR's to_y_channel converts only 3-channel images: a gray image is scored as it is, Y channel or not.
    private static MetricsProtocol Effective(MetricsProtocol p, IPairedDataset data) => data.Channels == 1 ? p with { YChannel = false } : p;

    private static ImageScore Score(string name, RgbImage gt, RgbImage restored, MetricsProtocol p) =>
        new(name, ImageQuality.Psnr(gt, restored, p.CropBorder, p.YChannel), ImageQuality.Ssim(gt, restored, p.CropBorder, p.YChannel));

    private static RgbImage Baseline(RgbImage lq, RgbImage gt)
    {
        int scale = gt.Height / lq.Height;
        return scale > 1 ? MatlabResize.UpscaleBicubic(lq, scale) : lq;
    }

    // Nearest-neighbour enlargement, so the side-by-side shows the input's real pixels.
    private static RgbImage Upscale(RgbImage lq, RgbImage gt)
    {
        if (lq.Height == gt.Height && lq.Width == gt.Width) return lq;
        var px = new float[gt.Height * gt.Width * 3];
        for (int y = 0; y < gt.Height; y++)
            for (int x = 0; x < gt.Width; x++)
            {
                int sy = Math.Min(lq.Height - 1, y * lq.Height / gt.Height), sx = Math.Min(lq.Width - 1, x * lq.Width / gt.Width);
                Array.Copy(lq.Pixels, (sy * lq.Width + sx) * 3, px, (y * gt.Width + x) * 3, 3);
            }
        return new RgbImage(gt.Height, gt.Width, px);
    }

    /// <summary>Images of equal height placed left to right.</summary>
    public static RgbImage SideBySide(params RgbImage[] images)
    {
        int h = images[0].Height, w = images.Sum(i => i.Width);
        if (images.Any(i => i.Height != h)) throw new ArgumentException("side-by-side images need equal heights");
        var px = new float[h * w * 3];
        for (int y = 0; y < h; y++)
        {
            int x0 = 0;
            foreach (var img in images)
            {
                Array.Copy(img.Pixels, y * img.Width * 3, px, (y * w + x0) * 3, img.Width * 3);
                x0 += img.Width;
            }
        }
        return new RgbImage(h, w, px);
    }
}
