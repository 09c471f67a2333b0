using Mcir.Core.Data;
using Mcir.Core.Data.Datasets;
using Mcir.Core.Metrics;
using Mcir.Core.Metrics.Protocols;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Runs;

/// <summary>
/// Scores a network on a data set of whole images with a metrics protocol, optionally writing LQ | output | GT
/// side-by-side images, and scores the plain baseline (bicubic upscaling for SR, the input itself otherwise).
/// Float protocols (<see cref="EvaluationProtocol.UsesFloatOutput"/>) score the network's output clamped to [0, 1]
/// without 8-bit rounding; the others the 8-bit image.
/// </summary>
public static class RestorationEvaluator
{
    // forward: how an LQ batch [1, C, h, w] is restored (default: the whole image through TiledRestorer, which pads to the
    // network's IInputSizeMultiple and crops back), e.g. tile by tile;
    // onRestored: receives each restored image with its sample name (e.g. to save it).
    public static MetricsReport Evaluate(nn.Module<Tensor, Tensor> net, IPairedDataset data, EvaluationProtocol protocol, string? imageDir = null,
        Func<Tensor, Tensor>? forward = null, Action<string, RgbImage>? onRestored = null)
    {
        ArgumentNullException.ThrowIfNull(protocol);
        bool gray = data.Channels == 1;
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
                float[]? unit = null;
                using (var scope = NewDisposeScope())
                using (no_grad())
                {
                    var lq = ImageTensor.ToTensor(pair.Lq, device, data.Channels).unsqueeze(0);
                    var output = forward is null ? Inference.TiledRestorer.Restore(net, lq) : forward(lq);
                    restored = ImageTensor.ToImage(output);
                    if (protocol.UsesFloatOutput) unit = ImageTensor.ToUnitFloat(output);
                }
                if (restored.Height != pair.Gt.Height || restored.Width != pair.Gt.Width)
                    throw new McirException($"{pair.Name}: the network returned {restored.Height}x{restored.Width} for a {pair.Lq.Height}x{pair.Lq.Width} input, the ground truth is {pair.Gt.Height}x{pair.Gt.Width}");
                scores.Add(Score(protocol, pair.Name, new ScoringInput(pair.Gt, restored, unit, gray)));
                onRestored?.Invoke(pair.Name, restored);
                if (imageDir is not null)
                    ImageIO.Write(Path.Combine(imageDir, pair.Name + ".png"), SideBySide(Upscale(pair.Lq, pair.Gt), restored, pair.Gt));
            }
            return new MetricsReport(protocol.Describe(gray, floatOutput: protocol.UsesFloatOutput), scores);
        }
        finally
        {
            if (wasTraining) net.train();
        }
    }

    /// <summary>The baseline: bicubic (MATLAB) upscaling of the input for SR, the input itself for same-size tasks.</summary>
    /// <remarks>The baseline is an 8-bit image, so float protocols score it as <c>image / 255</c>.</remarks>
    public static MetricsReport EvaluateBaseline(IPairedDataset data, EvaluationProtocol protocol)
    {
        ArgumentNullException.ThrowIfNull(protocol);
        bool gray = data.Channels == 1;
        var scores = new List<ImageScore>();
        for (int i = 0; i < data.Count; i++)
        {
            var pair = data.Load(i, new Random(0));
            scores.Add(Score(protocol, pair.Name, new ScoringInput(pair.Gt, Baseline(pair.Lq, pair.Gt), Gray: gray)));
        }
        return new MetricsReport(protocol.Describe(gray, floatOutput: false), scores);
    }

    // Gray images (1-channel data) are scored as they are: BasicSR's to_y_channel and MATLAB's rgb2ycbcr convert only
    // 3-channel images. An image the protocol cannot score (smaller than its SSIM window) is named.
    private static ImageScore Score(EvaluationProtocol protocol, string name, ScoringInput input)
    {
        try { return protocol.ScoreImage(name, input); }
        catch (ArgumentException e) { throw new McirException($"{name} (protocol {protocol.Name}): {EvaluationProtocol.MessageOf(e)}", e); }
    }

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
