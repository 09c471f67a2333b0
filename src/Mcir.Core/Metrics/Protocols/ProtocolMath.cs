namespace Mcir.Core.Metrics.Protocols;

/// <summary>How a 'same'-size filter treats samples outside the image ('valid' keeps only full windows).</summary>
internal enum FilterBorder
{
    /// <summary>Only positions where the whole window fits (MATLAB <c>filter2(…, 'valid')</c>, <c>conv2d(padding=0)</c>).</summary>
    Valid,
    /// <summary>Same size, zeros outside (<c>F.conv2d(padding=k//2)</c>).</summary>
    Zero,
    /// <summary>Same size, the nearest edge sample outside (<c>padding_mode='replicate'</c>).</summary>
    Replicate,
}

/// <summary>Float64 building blocks of the protocols: Gaussian windows, separable filtering, the SSIM map mean.</summary>
internal static class ProtocolMath
{
    /// <summary>exp(−(i − r)²/(2σ²)) for i = 0…size−1, r = size/2, divided by its sum (MATLAB fspecial, OpenCV
    /// getGaussianKernel, pytorch_msssim and FFA-Net all use this window; they differ only in float32/float64 rounding).</summary>
    public static double[] Gaussian(int size, double sigma)
    {
        var k = new double[size];
        double sum = 0;
        for (int i = 0; i < size; i++)
        {
            double x = i - size / 2;
            k[i] = Math.Exp(-x * x / (2 * sigma * sigma));
            sum += k[i];
        }
        for (int i = 0; i < size; i++) k[i] /= sum;
        return k;
    }

    /// <summary>
    /// Separable correlation of an H×W plane with <paramref name="k"/> along the rows, then along the columns.
    /// Returns the filtered plane and its size (H×W for <see cref="FilterBorder.Zero"/> / <see cref="FilterBorder.Replicate"/>,
    /// (H−K+1)×(W−K+1) for <see cref="FilterBorder.Valid"/>).
    /// </summary>
    public static double[] Filter(ReadOnlySpan<double> src, int h, int w, double[] k, FilterBorder border, out int oh, out int ow)
    {
        int n = k.Length, r = n / 2;
        ow = border == FilterBorder.Valid ? w - n + 1 : w;
        oh = border == FilterBorder.Valid ? h - n + 1 : h;
        if (oh <= 0 || ow <= 0) throw new ArgumentException($"a {h}x{w} plane is smaller than the {n}x{n} window");
        var tmp = new double[h * ow];
        for (int y = 0; y < h; y++)
        {
            var row = src.Slice(y * w, w);
            for (int x = 0; x < ow; x++)
            {
                double s = 0;
                for (int i = 0; i < n; i++)
                {
                    int sx = border == FilterBorder.Valid ? x + i : x + i - r;
                    if ((uint)sx >= (uint)w)
                    {
                        if (border == FilterBorder.Zero) continue;
                        sx = Math.Clamp(sx, 0, w - 1);
                    }
                    s += k[i] * row[sx];
                }
                tmp[y * ow + x] = s;
            }
        }
        var dst = new double[oh * ow];
        for (int y = 0; y < oh; y++)
        {
            var d = dst.AsSpan(y * ow, ow);
            for (int i = 0; i < n; i++)
            {
                int sy = border == FilterBorder.Valid ? y + i : y + i - r;
                if ((uint)sy >= (uint)h)
                {
                    if (border == FilterBorder.Zero) continue;
                    sy = Math.Clamp(sy, 0, h - 1);
                }
                double ki = k[i];
                var s = tmp.AsSpan(sy * ow, ow);
                for (int x = 0; x < ow; x++) d[x] += ki * s[x];
            }
        }
        return dst;
    }

    /// <summary>The five SSIM moments of planes a and b: (x, y, x², y², xy), each filtered.</summary>
    public static double[][] Moments(double[] a, double[] b, int h, int w, double[] k, FilterBorder border, out int oh, out int ow)
    {
        var aa = new double[a.Length];
        var bb = new double[a.Length];
        var ab = new double[a.Length];
        for (int i = 0; i < a.Length; i++)
        {
            aa[i] = a[i] * a[i];
            bb[i] = b[i] * b[i];
            ab[i] = a[i] * b[i];
        }
        var src = new[] { a, b, aa, bb, ab };
        var result = new double[5][];
        Parallel.For(0, 5, m => result[m] = Filter(src[m], h, w, k, border, out _, out _));
        oh = border == FilterBorder.Valid ? h - k.Length + 1 : h;
        ow = border == FilterBorder.Valid ? w - k.Length + 1 : w;
        return result;
    }

    /// <summary>Sum of the SSIM map over filtered moments (Wang et al.): ((2μ₁μ₂ + C1)(2σ₁₂ + C2)) / ((μ₁² + μ₂² + C1)(σ₁² + σ₂² + C2)).</summary>
    public static double SsimMapSum(double[][] m, double c1, double c2)
    {
        double[] m1 = m[0], m2 = m[1], e11 = m[2], e22 = m[3], e12 = m[4];
        double sum = 0;
        for (int i = 0; i < m1.Length; i++)
        {
            double mu1Sq = m1[i] * m1[i], mu2Sq = m2[i] * m2[i], mu12 = m1[i] * m2[i];
            double s1 = e11[i] - mu1Sq, s2 = e22[i] - mu2Sq, s12 = e12[i] - mu12;
            sum += (2 * mu12 + c1) * (2 * s12 + c2) / ((mu1Sq + mu2Sq + c1) * (s1 + s2 + c2));
        }
        return sum;
    }

    /// <summary>Mean of the SSIM map of one plane pair, filtered with <paramref name="k"/> (separable) and <paramref name="border"/>.</summary>
    public static double SsimMean(double[] a, double[] b, int h, int w, double[] k, FilterBorder border, double c1, double c2)
    {
        var m = Moments(a, b, h, w, k, border, out int oh, out int ow);
        return SsimMapSum(m, c1, c2) / ((double)oh * ow);
    }

    /// <summary>Channel <paramref name="c"/> of an HWC float32 array as a float64 plane, each sample times <paramref name="scale"/>.</summary>
    public static double[] Plane(float[] hwc, int h, int w, int c, double scale = 1)
    {
        var p = new double[h * w];
        for (int i = 0; i < p.Length; i++) p[i] = hwc[3 * i + c] * scale;
        return p;
    }
}
