using Mcir.Core.Data;

namespace Mcir.Core.Metrics.Protocols;

/// <summary>
/// <c>idt</c>: Restormer's <c>Deraining/evaluate_PSNR_SSIM.m</c> (swz30/Restormer), which IDT's
/// <c>evaluaterain.m</c> uses for its Rain200/SPA tables. Both 8-bit images go through MATLAB's <c>rgb2ycbcr</c> on
/// uint8 (Y = 16 + (65.481 R + 128.553 G + 24.966 B)/255 rounded half away from zero to uint8, range 16–235; a gray
/// image is used as it is); PSNR on Y with peak 255, no border crop; SSIM = Wang's <c>SSIM_index</c> on Y (11×11
/// Gaussian σ 1.5 from <c>fspecial</c>, <c>filter2(…, 'valid')</c>, K = 0.01/0.03, L = 255, <c>mean2</c>).
/// </summary>
public sealed class IdtProtocol : EvaluationProtocol
{
    /// <summary>The registered name.</summary>
    public const string ProtocolName = "idt";

    /// <summary>The one instance (stateless).</summary>
    public static IdtProtocol Instance { get; } = new();

    private static readonly double[] Window = ProtocolMath.Gaussian(11, 1.5);

    // MATLAB rgb2ycbcr for uint8: T = origT / 255 (double), offset 16; imlincomb evaluates in double and rounds.
    private const double Tr = 65.481 / 255, Tg = 128.553 / 255, Tb = 24.966 / 255;

    /// <inheritdoc />
    public override string Name => ProtocolName;

    /// <summary>MATLAB <c>rgb2ycbcr</c> Y of uint8 samples: round-half-away(16 + Tr·R + Tg·G + Tb·B), saturated to 0–255.</summary>
    public static double MatlabY(float r, float g, float b) =>
        Math.Clamp(Math.Round(Tr * r + Tg * g + Tb * b + 16, MidpointRounding.AwayFromZero), 0, 255);

    /// <summary>The uint8 Y plane (as doubles) of an 8-bit image; a gray image's own values.</summary>
    public static double[] YPlane(RgbImage img, bool gray)
    {
        ArgumentNullException.ThrowIfNull(img);
        var p = img.Pixels;
        var y = new double[img.Height * img.Width];
        for (int i = 0; i < y.Length; i++)
            y[i] = gray ? p[3 * i] : MatlabY(p[3 * i], p[3 * i + 1], p[3 * i + 2]);
        return y;
    }

    /// <inheritdoc />
    public override (double Psnr, double Ssim) Score(ScoringInput input)
    {
        int h = input.Gt.Height, w = input.Gt.Width;
        var a = YPlane(input.Restored, input.Gray);
        var g = YPlane(input.Gt, input.Gray);
        double sum = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = a[i] - g[i];
            sum += d * d;
        }
        double psnr = 20 * Math.Log10(255 / Math.Sqrt(sum / a.Length));  // Inf for identical images, as MATLAB
        if (h < Window.Length || w < Window.Length)
            throw new ArgumentException($"SSIM (idt) needs at least {Window.Length}x{Window.Length} pixels, got {h}x{w}");
        double ssim = ProtocolMath.SsimMean(a, g, h, w, Window, FilterBorder.Valid, 0.01 * 255 * (0.01 * 255), 0.03 * 255 * (0.03 * 255));
        return (psnr, ssim);
    }

    /// <inheritdoc />
    public override ProtocolInfo Describe(bool gray, bool floatOutput) => new(ProtocolName,
        gray ? "gray (uint8), no crop" : "Y from uint8 rgb2ycbcr, no crop",
        CropBorder: 0, YChannel: !gray, gray, FloatOutput: false,
        Psnr: "20*log10(255/rmse) on the uint8 Y of MATLAB rgb2ycbcr (rounded, 16-235), no crop",
        Ssim: "Wang's SSIM_index on that Y: 11x11 Gaussian (sigma 1.5), filter2 'valid', K = 0.01/0.03, L = 255",
        Source: "swz30/Restormer Deraining/evaluate_PSNR_SSIM.m (IDT's evaluaterain.m)");
}
