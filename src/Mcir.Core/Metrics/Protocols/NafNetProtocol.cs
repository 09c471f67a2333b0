namespace Mcir.Core.Metrics.Protocols;

/// <summary>
/// <c>nafnet</c>: NAFNet's <c>basicsr/metrics/psnr_ssim.py</c> (megvii-research/NAFNet) as its GoPro test options use
/// it (<c>crop_border 0</c>, <c>test_y_channel false</c>, uint8 images from <c>tensor2img</c>). PSNR on RGB, float64,
/// peak 255 (1 when the restored image's maximum is ≤ 1, as NAFNet decides from <c>img1.max()</c>). SSIM = NAFNet's
/// <c>_ssim_3d</c>: one 11×11×11 Gaussian (σ 1.5, OpenCV's kernel, outer product over H, W and C) applied to the
/// H×W×C volume with replicate padding 5 in all three directions, C1 = (0.01·max)², C2 = (0.03·max)², the mean of the
/// whole H×W×C map. It is not BasicSR's per-channel 2-D SSIM.
/// </summary>
/// <remarks>NAFNet's conv3d runs in float32; this port in float64.</remarks>
public sealed class NafNetProtocol : EvaluationProtocol
{
    /// <summary>The registered name.</summary>
    public const string ProtocolName = "nafnet";

    /// <summary>The one instance (stateless).</summary>
    public static NafNetProtocol Instance { get; } = new();

    private static readonly double[] Window = ProtocolMath.Gaussian(11, 1.5);

    /// <inheritdoc />
    public override string Name => ProtocolName;

    /// <inheritdoc />
    public override (double Psnr, double Ssim) Score(ScoringInput input)
    {
        float[] a = input.Restored.Pixels, g = input.Gt.Pixels;
        int h = input.Gt.Height, w = input.Gt.Width;
        double max = 0, sum = 0;
        for (int i = 0; i < a.Length; i++)
        {
            max = Math.Max(max, a[i]);
            double d = (double)a[i] - g[i];
            sum += d * d;
        }
        double peak = max <= 1 ? 1 : 255;
        double mse = sum / a.Length;
        double psnr = mse == 0 ? double.PositiveInfinity : 20 * Math.Log10(peak / Math.Sqrt(mse));
        return (psnr, Ssim3D(a, g, h, w, peak));
    }

    /// <summary>NAFNet's <c>_ssim_3d</c> on HWC samples with 3 channels.</summary>
    internal static double Ssim3D(float[] a, float[] g, int h, int w, double maxValue)
    {
        const int c = 3;
        int n = Window.Length, r = n / 2;
        // Along C with replicate padding: output channel co takes Σ_l k[l]·x[clamp(co + l − r)] = Σ_ci mix[co, ci]·x[ci].
        var mix = new double[c, c];
        for (int co = 0; co < c; co++)
            for (int l = 0; l < n; l++)
                mix[co, Math.Clamp(co + l - r, 0, c - 1)] += Window[l];
        double c1 = 0.01 * maxValue * (0.01 * maxValue), c2 = 0.03 * maxValue * (0.03 * maxValue);
        int plane = h * w;
        // The five moments per input channel, planar.
        var src = new double[5][];
        for (int m = 0; m < 5; m++) src[m] = new double[c * plane];
        for (int i = 0; i < plane; i++)
            for (int ch = 0; ch < c; ch++)
            {
                double x = a[3 * i + ch], y = g[3 * i + ch];
                int o = ch * plane + i;
                src[0][o] = x; src[1][o] = y; src[2][o] = x * x; src[3][o] = y * y; src[4][o] = x * y;
            }
        double total = 0;
        for (int co = 0; co < c; co++)
        {
            var filtered = new double[5][];
            Parallel.For(0, 5, m =>
            {
                var mixed = new double[plane];
                for (int ci = 0; ci < c; ci++)
                {
                    double wgt = mix[co, ci];
                    var s = src[m].AsSpan(ci * plane, plane);
                    for (int i = 0; i < plane; i++) mixed[i] += wgt * s[i];
                }
                filtered[m] = ProtocolMath.Filter(mixed, h, w, Window, FilterBorder.Replicate, out _, out _);
            });
            total += ProtocolMath.SsimMapSum(filtered, c1, c2);
        }
        return total / ((double)c * plane);
    }

    /// <inheritdoc />
    public override ProtocolInfo Describe(bool gray, bool floatOutput) => new(ProtocolName,
        $"{(gray ? "gray" : "RGB")} uint8, no crop, 3-D SSIM",
        CropBorder: 0, YChannel: false, gray, FloatOutput: false,
        Psnr: "uint8-rounded RGB, float64 MSE, peak 255 (1 when the restored maximum <= 1)",
        Ssim: "NAFNet _ssim_3d: 11x11x11 Gaussian (sigma 1.5) over HxWxC, replicate padding, C1/C2 for max 255, mean of the map",
        Source: "megvii-research/NAFNet basicsr/metrics/psnr_ssim.py calculate_psnr/calculate_ssim (ssim3d=True)");
}
