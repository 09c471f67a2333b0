namespace Mcir.Core.Metrics.Protocols;

/// <summary>
/// <c>ffa-net</c>: FFA-Net's <c>net/metrics.py</c> (zhilin007/FFA-Net), its SOTS tables. PSNR
/// <c>20·log10(1 / rmse)</c> on the output and GT clamped to [0, 1], float (no 8-bit rounding), all RGB samples, no
/// border (100 for identical images, as FFA returns). SSIM: 11×11 Gaussian (σ 1.5) with zero 'same' padding
/// (<c>F.conv2d(padding=5)</c>) per RGB channel, C1 = 0.01², C2 = 0.03², the mean of the whole map. The clear image
/// is centre-cropped to the hazy size by the data layout (<c>reside</c>), as FFA-Net's loader does.
/// </summary>
/// <remarks>FFA-Net computes in float32; this port in float64 from the same float32 samples (see the tests'
/// reference numbers for the difference).</remarks>
public sealed class FfaNetProtocol : EvaluationProtocol
{
    /// <summary>The registered name.</summary>
    public const string ProtocolName = "ffa-net";

    /// <summary>The one instance (stateless).</summary>
    public static FfaNetProtocol Instance { get; } = new();

    private static readonly double[] Window = ProtocolMath.Gaussian(11, 1.5);

    /// <inheritdoc />
    public override string Name => ProtocolName;

    /// <inheritdoc />
    public override bool UsesFloatOutput => true;

    /// <inheritdoc />
    public override (double Psnr, double Ssim) Score(ScoringInput input)
    {
        float[] a = input.RestoredFloat(), g = input.GtFloat();
        int h = input.Gt.Height, w = input.Gt.Width;
        double sum = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = (double)Math.Clamp(a[i], 0f, 1f) - Math.Clamp(g[i], 0f, 1f);
            sum += d * d;
        }
        double rmse = Math.Sqrt(sum / a.Length);
        double psnr = rmse == 0 ? 100 : 20 * Math.Log10(1.0 / rmse);
        double ssim = 0;
        for (int c = 0; c < 3; c++)
            ssim += ProtocolMath.SsimMean(Clamped(a, h, w, c), Clamped(g, h, w, c), h, w, Window, FilterBorder.Zero, 0.01 * 0.01, 0.03 * 0.03);
        return (psnr, ssim / 3);
    }

    private static double[] Clamped(float[] hwc, int h, int w, int c)
    {
        var p = new double[h * w];
        for (int i = 0; i < p.Length; i++) p[i] = Math.Clamp(hwc[3 * i + c], 0f, 1f);
        return p;
    }

    /// <inheritdoc />
    public override ProtocolInfo Describe(bool gray, bool floatOutput) => new(ProtocolName,
        $"float {(gray ? "gray" : "RGB")} in [0,1]{(floatOutput ? "" : " (from 8-bit images)")}, no crop, SSIM zero-padded 'same'",
        CropBorder: 0, YChannel: false, gray, floatOutput,
        Psnr: "20*log10(1/rmse) on the clamped float output, all RGB samples, no quantisation (100 when equal)",
        Ssim: "11x11 Gaussian (sigma 1.5), zero 'same' padding, C1 = 0.01^2, C2 = 0.03^2, mean over RGB",
        Source: "zhilin007/FFA-Net net/metrics.py psnr/ssim");
}
