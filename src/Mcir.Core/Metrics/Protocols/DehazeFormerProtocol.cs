namespace Mcir.Core.Metrics.Protocols;

/// <summary>
/// <c>dehazeformer</c>: DehazeFormer's <c>test.py</c> (IDKiro/DehazeFormer), its RESIDE tables and the MCIR paper's
/// SOTS-mix column. PSNR <c>10·log10(1 / MSE)</c> on the output clamped to [0, 1] and the GT, float, all RGB samples,
/// no border. SSIM: <c>pytorch_msssim.ssim(data_range=1)</c> (separable 11-tap Gaussian σ 1.5, 'valid' region,
/// C1 = 0.01², C2 = 0.03², mean per channel then over channels) of both images after
/// <c>F.adaptive_avg_pool2d</c> to <c>(int(H / f), int(W / f))</c> with <c>f = max(1, round(min(H, W) / 256))</c>
/// (Python's round, half to even; SOTS-indoor's 460×620 is pooled by 2).
/// </summary>
/// <remarks>DehazeFormer computes in float32 on the GPU; this port in float64 from the same float32 samples.</remarks>
public sealed class DehazeFormerProtocol : EvaluationProtocol
{
    /// <summary>The registered name.</summary>
    public const string ProtocolName = "dehazeformer";

    /// <summary>The one instance (stateless).</summary>
    public static DehazeFormerProtocol Instance { get; } = new();

    private static readonly double[] Window = ProtocolMath.Gaussian(11, 1.5);

    /// <inheritdoc />
    public override string Name => ProtocolName;

    /// <inheritdoc />
    public override bool UsesFloatOutput => true;

    /// <summary>test.py's down_ratio: <c>max(1, round(min(H, W) / 256))</c>, round half to even.</summary>
    public static int DownRatio(int height, int width) =>
        Math.Max(1, (int)Math.Round(Math.Min(height, width) / 256.0, MidpointRounding.ToEven));

    /// <inheritdoc />
    public override (double Psnr, double Ssim) Score(ScoringInput input)
    {
        float[] a = input.RestoredFloat(), g = input.GtFloat();
        int h = input.Gt.Height, w = input.Gt.Width;
        double sum = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = (double)Math.Clamp(a[i], 0f, 1f) - g[i];
            sum += d * d;
        }
        double psnr = 10 * Math.Log10(1.0 / (sum / a.Length));   // +inf for identical images, as torch gives

        int f = DownRatio(h, w);
        int ph = h / f, pw = w / f;
        if (ph < Window.Length || pw < Window.Length)
            throw new ArgumentException($"SSIM (dehazeformer) needs at least {Window.Length}x{Window.Length} pixels after pooling by {f}, got {ph}x{pw} from {h}x{w}");
        double ssim = 0;
        for (int c = 0; c < 3; c++)
        {
            var pa = AdaptiveAvgPool(ProtocolMath.Plane(a, h, w, c), h, w, ph, pw, clamp: true);
            var pg = AdaptiveAvgPool(ProtocolMath.Plane(g, h, w, c), h, w, ph, pw, clamp: false);
            ssim += ProtocolMath.SsimMean(pa, pg, ph, pw, Window, FilterBorder.Valid, 0.01 * 0.01, 0.03 * 0.03);
        }
        return (psnr, ssim / 3);
    }

    /// <summary>
    /// <c>F.adaptive_avg_pool2d</c> of an H×W plane to oh×ow: output (i, j) averages rows ⌊iH/oh⌋ … ⌈(i+1)H/oh⌉−1 and
    /// columns ⌊jW/ow⌋ … ⌈(j+1)W/ow⌉−1 (optionally clamping samples to [0, 1] first).
    /// </summary>
    internal static double[] AdaptiveAvgPool(double[] src, int h, int w, int oh, int ow, bool clamp)
    {
        var dst = new double[oh * ow];
        for (int i = 0; i < oh; i++)
        {
            int y0 = (int)((long)i * h / oh), y1 = (int)(((long)(i + 1) * h + oh - 1) / oh);
            for (int j = 0; j < ow; j++)
            {
                int x0 = (int)((long)j * w / ow), x1 = (int)(((long)(j + 1) * w + ow - 1) / ow);
                double s = 0;
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++)
                        s += clamp ? Math.Clamp(src[y * w + x], 0, 1) : src[y * w + x];
                dst[i * ow + j] = s / ((y1 - y0) * (x1 - x0));
            }
        }
        return dst;
    }

    /// <inheritdoc />
    public override ProtocolInfo Describe(bool gray, bool floatOutput) => new(ProtocolName,
        $"float {(gray ? "gray" : "RGB")} in [0,1]{(floatOutput ? "" : " (from 8-bit images)")}, no crop, SSIM pytorch_msssim after pooling by round(min(H,W)/256)",
        CropBorder: 0, YChannel: false, gray, floatOutput,
        Psnr: "10*log10(1/MSE) on the clamped float output, all RGB samples, no quantisation",
        Ssim: "pytorch_msssim.ssim(data_range=1) after F.adaptive_avg_pool2d to (int(H/f), int(W/f)), f = max(1, round(min(H,W)/256))",
        Source: "IDKiro/DehazeFormer test.py; VainF/pytorch-msssim pytorch_msssim/ssim.py");
}
