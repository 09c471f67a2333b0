using System.Numerics;
using Mcir.Core.Data;

namespace Mcir.Core.Metrics;

/// <summary>
/// PSNR and SSIM exactly as BasicSR's <c>calculate_psnr</c> / <c>calculate_ssim</c>
/// (<c>basicsr/metrics/psnr_ssim.py</c>, <c>input_order='HWC'</c>) compute them on uint8 images: crop
/// <c>crop_border</c> pixels from every edge, optionally convert to BT.601 Y (<see cref="ColorConversion"/>),
/// then work in float64 on the 0–255 scale.
/// </summary>
public static class ImageQuality
{
    private const double C1 = 0.01 * 255 * (0.01 * 255);
    private const double C2 = 0.03 * 255 * (0.03 * 255);
    private const int Window = 11;
    private const int Radius = Window / 2;

    /// <summary>Normalised 1-D Gaussian of OpenCV <c>getGaussianKernel(11, 1.5)</c> (CV_64F).</summary>
    private static readonly double[] Gaussian = BuildGaussian();

    /// <summary>
    /// PSNR in dB with peak 255: <c>10 log10(255² / mse)</c>, mse in float64 over every cropped pixel (and channel).
    /// Identical images give <see cref="double.PositiveInfinity"/>, as BasicSR returns <c>float('inf')</c>.
    /// </summary>
    public static double Psnr(RgbImage img, RgbImage img2, int cropBorder, bool testYChannel)
    {
        var (a, b, h, w, c) = Prepare(img, img2, cropBorder, testYChannel);
        double sum = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = a[i] - b[i];
            sum += d * d;
        }
        double mse = sum / ((double)h * w * c);
        if (mse == 0)
            return double.PositiveInfinity;
        return 10.0 * Math.Log10(255.0 * 255.0 / mse);
    }

    /// <summary>
    /// SSIM (Wang et al.): 11×11 Gaussian window (σ = 1.5), 'valid' region only, C1 = (0.01·255)², C2 = (0.03·255)²,
    /// mean of the SSIM map per channel, then the mean over channels.
    /// </summary>
    /// <remarks>
    /// BasicSR filters with <c>cv2.filter2D</c> of the outer-product window and crops <c>[5:-5, 5:-5]</c>; on the
    /// kept region that is exactly the 'valid' correlation, computed here separably (rows, then columns) in
    /// float64. The difference to the direct 2-D filter is rounding only (≪ 1e-10 on the SSIM value; OpenCV itself
    /// evaluates the 11×11 float64 filter through a DFT).
    /// </remarks>
    public static double Ssim(RgbImage img, RgbImage img2, int cropBorder, bool testYChannel)
    {
        var (a, b, h, w, c) = Prepare(img, img2, cropBorder, testYChannel);
        if (h < Window || w < Window)
            throw new ArgumentException(
                $"SSIM needs at least {Window}x{Window} pixels after cropping {cropBorder} border pixels, got {h}x{w}", nameof(img));
        double total = 0;
        for (int ch = 0; ch < c; ch++)
            total += SsimPlane(a, b, h, w, ch, separable: true);
        return total / c;
    }

    /// <summary>SSIM of channel <paramref name="ch"/> of planar float64 images (<c>[channel][h][w]</c>);
    /// <paramref name="separable"/> = false runs the direct 11×11 window (reference for tests).</summary>
    internal static double SsimPlane(double[] a, double[] b, int h, int w, int ch, bool separable)
    {
        int oh = h - 2 * Radius, ow = w - 2 * Radius;
        int plane = ch * h * w;
        var rowSums = new double[oh];
        double[] g = Gaussian;
        int vw = Vector<double>.Count;
        Parallel.For(0, oh, () => new double[5 * w], (r, _, buf) =>
        {
            double rowSum = 0;
            if (separable)
            {
                // Column pass over rows r..r+10 for the five moments (element-wise, so vectorising keeps the
                // exact per-element operation order), then the row pass on the five buffers.
                var s1 = buf.AsSpan(0, w); var s2 = buf.AsSpan(w, w); var s11 = buf.AsSpan(2 * w, w);
                var s22 = buf.AsSpan(3 * w, w); var s12 = buf.AsSpan(4 * w, w);
                buf.AsSpan().Clear();
                for (int k = 0; k < Window; k++)
                {
                    double gk = g[k];
                    var gv = new Vector<double>(gk);
                    var ra = new ReadOnlySpan<double>(a, plane + (r + k) * w, w);
                    var rb = new ReadOnlySpan<double>(b, plane + (r + k) * w, w);
                    int x = 0;
                    for (; x <= w - vw; x += vw)
                    {
                        var va = new Vector<double>(ra.Slice(x));
                        var vb = new Vector<double>(rb.Slice(x));
                        (new Vector<double>(s1.Slice(x)) + gv * va).CopyTo(s1.Slice(x));
                        (new Vector<double>(s2.Slice(x)) + gv * vb).CopyTo(s2.Slice(x));
                        (new Vector<double>(s11.Slice(x)) + gv * (va * va)).CopyTo(s11.Slice(x));
                        (new Vector<double>(s22.Slice(x)) + gv * (vb * vb)).CopyTo(s22.Slice(x));
                        (new Vector<double>(s12.Slice(x)) + gv * (va * vb)).CopyTo(s12.Slice(x));
                    }
                    for (; x < w; x++)
                    {
                        double va = ra[x], vb = rb[x];
                        s1[x] += gk * va;
                        s2[x] += gk * vb;
                        s11[x] += gk * (va * va);
                        s22[x] += gk * (vb * vb);
                        s12[x] += gk * (va * vb);
                    }
                }
                {
                    int x = 0;
                    var acc = Vector<double>.Zero;
                    for (; x <= ow - vw; x += vw)
                    {
                        Vector<double> m1 = Vector<double>.Zero, m2 = m1, e11 = m1, e22 = m1, e12 = m1;
                        for (int k = 0; k < Window; k++)
                        {
                            var gv = new Vector<double>(g[k]);
                            m1 += gv * new Vector<double>(s1.Slice(x + k));
                            m2 += gv * new Vector<double>(s2.Slice(x + k));
                            e11 += gv * new Vector<double>(s11.Slice(x + k));
                            e22 += gv * new Vector<double>(s22.Slice(x + k));
                            e12 += gv * new Vector<double>(s12.Slice(x + k));
                        }
                        acc += SsimValue(m1, m2, e11, e22, e12);
                    }
                    rowSum = Vector.Sum(acc);
                    for (; x < ow; x++)
                    {
                        double m1 = 0, m2 = 0, e11 = 0, e22 = 0, e12 = 0;
                        for (int k = 0; k < Window; k++)
                        {
                            double gk = g[k];
                            m1 += gk * s1[x + k];
                            m2 += gk * s2[x + k];
                            e11 += gk * s11[x + k];
                            e22 += gk * s22[x + k];
                            e12 += gk * s12[x + k];
                        }
                        rowSum += SsimValue(m1, m2, e11, e22, e12);
                    }
                }
            }
            else
            {
                for (int x = 0; x < ow; x++)
                {
                    double m1 = 0, m2 = 0, e11 = 0, e22 = 0, e12 = 0;
                    for (int ky = 0; ky < Window; ky++)
                        for (int kx = 0; kx < Window; kx++)
                        {
                            double wk = g[ky] * g[kx];   // np.outer(kernel, kernel)
                            int o = plane + (r + ky) * w + x + kx;
                            double va = a[o], vb = b[o];
                            m1 += wk * va;
                            m2 += wk * vb;
                            e11 += wk * (va * va);
                            e22 += wk * (vb * vb);
                            e12 += wk * (va * vb);
                        }
                    rowSum += SsimValue(m1, m2, e11, e22, e12);
                }
            }
            rowSums[r] = rowSum;
            return buf;
        }, _ => { });
        double total = 0;
        for (int r = 0; r < oh; r++)
            total += rowSums[r];
        return total / ((double)oh * ow);
    }

    private static Vector<double> SsimValue(Vector<double> mu1, Vector<double> mu2, Vector<double> e11, Vector<double> e22, Vector<double> e12)
    {
        Vector<double> mu1Sq = mu1 * mu1, mu2Sq = mu2 * mu2, mu1Mu2 = mu1 * mu2;
        Vector<double> sigma1Sq = e11 - mu1Sq, sigma2Sq = e22 - mu2Sq, sigma12 = e12 - mu1Mu2;
        var c1 = new Vector<double>(C1);
        var c2 = new Vector<double>(C2);
        var two = new Vector<double>(2.0);
        return (two * mu1Mu2 + c1) * (two * sigma12 + c2) / ((mu1Sq + mu2Sq + c1) * (sigma1Sq + sigma2Sq + c2));
    }

    private static double SsimValue(double mu1, double mu2, double e11, double e22, double e12)
    {
        double mu1Sq = mu1 * mu1, mu2Sq = mu2 * mu2, mu1Mu2 = mu1 * mu2;
        double sigma1Sq = e11 - mu1Sq, sigma2Sq = e22 - mu2Sq, sigma12 = e12 - mu1Mu2;
        return (2 * mu1Mu2 + C1) * (2 * sigma12 + C2) / ((mu1Sq + mu2Sq + C1) * (sigma1Sq + sigma2Sq + C2));
    }

    /// <summary>
    /// Size check, border crop and (optionally) the Y conversion; returns float64 samples on the
    /// 0–255 scale, planar (<c>[channel][row][column]</c>), with their height, width and channel count.
    /// </summary>
    internal static (double[] A, double[] B, int Height, int Width, int Channels) Prepare(
        RgbImage img, RgbImage img2, int cropBorder, bool testYChannel)
    {
        ArgumentNullException.ThrowIfNull(img);
        ArgumentNullException.ThrowIfNull(img2);
        if (img.Height != img2.Height || img.Width != img2.Width)
            throw new ArgumentException(
                $"Image shapes are different: {img.Height}x{img.Width}x{RgbImage.Channels} vs {img2.Height}x{img2.Width}x{RgbImage.Channels}",
                nameof(img2));
        if (cropBorder < 0)
            throw new ArgumentOutOfRangeException(nameof(cropBorder), $"crop border must be >= 0, got {cropBorder}");
        int h = img.Height - 2 * cropBorder, w = img.Width - 2 * cropBorder;
        if (h <= 0 || w <= 0)
            throw new ArgumentOutOfRangeException(nameof(cropBorder),
                $"crop border {cropBorder} leaves nothing of a {img.Height}x{img.Width} image");
        int c = testYChannel ? 1 : RgbImage.Channels;
        return (Extract(img, cropBorder, h, w, testYChannel), Extract(img2, cropBorder, h, w, testYChannel), h, w, c);
    }

    /// <summary>Cropped samples as float64, planar (<c>[channel][row][column]</c>); Y gives one plane.</summary>
    private static double[] Extract(RgbImage img, int border, int h, int w, bool y)
    {
        var p = img.Pixels;
        const int n = RgbImage.Channels;
        int planeSize = h * w;
        var dst = new double[planeSize * (y ? 1 : n)];
        for (int r = 0; r < h; r++)
        {
            int s = ((r + border) * img.Width + border) * n;
            int o = r * w;
            for (int x = 0; x < w; x++, s += n, o++)
            {
                if (y)
                    dst[o] = ColorConversion.RgbToY(p[s], p[s + 1], p[s + 2]);
                else
                {
                    dst[o] = p[s];
                    dst[planeSize + o] = p[s + 1];
                    dst[2 * planeSize + o] = p[s + 2];
                }
            }
        }
        return dst;
    }

    private static double[] BuildGaussian()
    {
        // OpenCV getGaussianKernel(n=11, sigma=1.5, CV_64F): exp(-x²/(2σ²)) for x = i - 5, scaled by 1/sum.
        const double sigma = 1.5;
        double scale2X = -0.5 / (sigma * sigma);
        var k = new double[Window];
        double sum = 0;
        for (int i = 0; i < Window; i++)
        {
            double x = i - (Window - 1) * 0.5;
            k[i] = Math.Exp(scale2X * x * x);
            sum += k[i];
        }
        sum = 1.0 / sum;
        for (int i = 0; i < Window; i++)
            k[i] *= sum;
        return k;
    }
}
