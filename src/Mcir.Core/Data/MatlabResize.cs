namespace Mcir.Core.Data;

/// <summary>
/// MATLAB-compatible bicubic resize, reproducing <c>basicsr.utils.matlab_functions.imresize</c> (BasicSR) bit for bit
/// on float32 data: bicubic kernel with a = -0.5, kernel widening by <c>1/scale</c> when downscaling with
/// antialiasing, half-sample symmetric edge padding, output size <c>ceil(in * scale)</c>, the H axis resized first
/// and then the W axis.
/// </summary>
/// <remarks>
/// <para>Exactness rules (the reference runs in PyTorch 1.13 float32 on CPU):</para>
/// <list type="bullet">
/// <item>Coordinates and weights are float32; Python-float constants (<c>scale</c>, <c>0.5 * (1 - 1/scale)</c>,
/// <c>kernel_width / 2</c>) are rounded to float32 before use, as PyTorch does for a scalar operand of a float32
/// tensor. The cubic is evaluated term by term in the same order (<c>x**3</c> = <c>(x*x)*x</c>).</item>
/// <item>The per-output weight normalisation sum follows the summation order of PyTorch's CPU sum kernel
/// (AVX2 dispatch, 8-lane vectors, 4-way ILP accumulators); see <see cref="TorchRowSum"/>.</item>
/// <item>Each output sample is <c>((0 + w0*a0) + w1*a1) + ...</c> with every product rounded to float32 (no fused
/// multiply-add), which is what the reference BLAS <c>sgemv</c> behind <c>torch.mv</c> computes.</item>
/// <item>Zero-weight edge columns are dropped with BasicSR's exact (quirky) <c>narrow</c> rule.</item>
/// </list>
/// </remarks>
public static class MatlabResize
{
    /// <summary>Output size <c>(ceil(h * scale), ceil(w * scale))</c>, computed in double as Python does.</summary>
    public static (int Height, int Width) OutputSize(int height, int width, double scale)
    {
        ValidateScale(scale);
        return ((int)Math.Ceiling(height * scale), (int)Math.Ceiling(width * scale));
    }

    /// <summary>
    /// Resizes an 8-bit-style image (0–255 scale) the way BasicSR produces LR/bicubic PNGs:
    /// <c>img / 255f</c> → <see cref="Resize(float[], int, int, int, double, bool, out int, out int)"/> →
    /// <see cref="QuantizeUnit"/> (BasicSR <c>tensor2img</c>: clamp to [0, 1], ×255 in float32, round half to even).
    /// The result holds exact integers 0–255.
    /// </summary>
    public static RgbImage Resize(RgbImage img, double scale, bool antialiasing = true)
    {
        ArgumentNullException.ThrowIfNull(img);
        float[] unit = ToUnitRange(img);
        float[] resized = Resize(unit, img.Height, img.Width, RgbImage.Channels, scale, antialiasing, out int oh, out int ow);
        QuantizeInPlace(resized);
        return new RgbImage(oh, ow, resized);
    }

    /// <summary>
    /// The unrounded float32 resize of <c>img / 255f</c> (HWC, RGB, nominally [0, 1], not clamped), i.e. BasicSR's
    /// <c>imresize(img.astype(np.float32) / 255., scale)</c>.
    /// </summary>
    public static float[] ResizeToUnitFloat(RgbImage img, double scale, bool antialiasing, out int outHeight, out int outWidth)
    {
        ArgumentNullException.ThrowIfNull(img);
        return Resize(ToUnitRange(img), img.Height, img.Width, RgbImage.Channels, scale, antialiasing, out outHeight, out outWidth);
    }

    /// <summary>
    /// LR generation for super-resolution (BasicSR convention, <c>degrade bicubic</c>):
    /// <see cref="ModCrop.Apply"/> by <paramref name="scale"/>, then <c>imresize(hr_mod / 255, 1 / scale)</c> with
    /// antialiasing, then <c>tensor2img</c> rounding.
    /// </summary>
    public static RgbImage DownscaleForSr(RgbImage hr, int scale)
    {
        ArgumentNullException.ThrowIfNull(hr);
        if (scale < 1)
            throw new ArgumentOutOfRangeException(nameof(scale), $"scale must be >= 1, got {scale}");
        return Resize(ModCrop.Apply(hr, scale), 1.0 / scale, antialiasing: true);
    }

    /// <summary>The bicubic baseline: <c>imresize(lr / 255, scale)</c> with <c>tensor2img</c> rounding.</summary>
    public static RgbImage UpscaleBicubic(RgbImage lr, int scale)
    {
        ArgumentNullException.ThrowIfNull(lr);
        if (scale < 1)
            throw new ArgumentOutOfRangeException(nameof(scale), $"scale must be >= 1, got {scale}");
        return Resize(lr, scale, antialiasing: true);
    }

    /// <summary>
    /// BasicSR <c>tensor2img</c> rounding of one [0, 1] sample to the 0–255 scale: clamp to [0, 1], multiply by 255
    /// in float32, round half to even (NumPy <c>round</c>).
    /// </summary>
    public static float QuantizeUnit(float v)
    {
        float c = v < 0f ? 0f : v > 1f ? 1f : v;   // NaN stays NaN, as with torch.clamp_
        return MathF.Round(c * 255f, MidpointRounding.ToEven);
    }

    /// <summary>
    /// <c>imresize</c> on interleaved HWC float32 data (nominally [0, 1]) with any number of channels.
    /// Returns a new HWC array of <c>ceil(height*scale) x ceil(width*scale) x channels</c>.
    /// </summary>
    public static float[] Resize(float[] hwc, int height, int width, int channels, double scale, bool antialiasing,
        out int outHeight, out int outWidth)
    {
        ArgumentNullException.ThrowIfNull(hwc);
        if (height <= 0 || width <= 0 || channels <= 0)
            throw new ArgumentOutOfRangeException(nameof(height), $"size must be positive, got {height}x{width}x{channels}");
        if (hwc.Length != checked(height * width * channels))
            throw new ArgumentException($"expected {height}x{width}x{channels} = {height * width * channels} samples, got {hwc.Length}", nameof(hwc));
        (outHeight, outWidth) = OutputSize(height, width, scale);
        if (outHeight <= 0 || outWidth <= 0)
            throw new ArgumentException($"scale {scale} turns {height}x{width} into an empty image", nameof(scale));

        AxisPlan ph = AxisPlan.Create(height, outHeight, scale, antialiasing);
        AxisPlan pw = AxisPlan.Create(width, outWidth, scale, antialiasing);

        // Pass 1 (H): tmp[i, x, c] = sum_k wH[i,k] * src[rowIdx(i,k), x, c], k ascending, float32 products.
        int rowLen = width * channels;
        var tmp = new float[outHeight * rowLen];
        int oh = outHeight;
        Parallel.For(0, oh, i =>
        {
            var dst = tmp.AsSpan(i * rowLen, rowLen);
            int t0 = i * ph.Taps;
            {
                float w = ph.Weights[t0];
                var src = new ReadOnlySpan<float>(hwc, ph.Sources[t0] * rowLen, rowLen);
                for (int x = 0; x < dst.Length; x++)
                    dst[x] = 0f + w * src[x];
            }
            for (int k = 1; k < ph.Taps; k++)
            {
                float w = ph.Weights[t0 + k];
                var src = new ReadOnlySpan<float>(hwc, ph.Sources[t0 + k] * rowLen, rowLen);
                for (int x = 0; x < dst.Length; x++)
                    dst[x] += w * src[x];
            }
        });

        // Pass 2 (W): out[i, j, c] = sum_k wW[j,k] * tmp[i, colIdx(j,k), c], k ascending, float32 products.
        int ow = outWidth;
        int outRowLen = ow * channels;
        var result = new float[oh * outRowLen];
        Parallel.For(0, oh, i =>
        {
            var src = new ReadOnlySpan<float>(tmp, i * rowLen, rowLen);
            var dst = result.AsSpan(i * outRowLen, outRowLen);
            int taps = pw.Taps;
            for (int j = 0; j < ow; j++)
            {
                int t0 = j * taps;
                for (int c = 0; c < channels; c++)
                {
                    float acc = 0f;
                    for (int k = 0; k < taps; k++)
                        acc += pw.Weights[t0 + k] * src[pw.Sources[t0 + k] * channels + c];
                    dst[j * channels + c] = acc;
                }
            }
        });
        return result;
    }

    private static float[] ToUnitRange(RgbImage img)
    {
        var p = img.Pixels;
        var unit = new float[p.Length];
        for (int i = 0; i < p.Length; i++)
            unit[i] = p[i] / 255f;   // NumPy: uint8.astype(float32) / 255. is a float32 division
        return unit;
    }

    private static void QuantizeInPlace(float[] data)
    {
        for (int i = 0; i < data.Length; i++)
            data[i] = QuantizeUnit(data[i]);
    }

    private static void ValidateScale(double scale)
    {
        if (!(scale > 0) || double.IsInfinity(scale))
            throw new ArgumentOutOfRangeException(nameof(scale), $"scale must be a positive finite number, got {scale}");
    }

    /// <summary>BasicSR <c>cubic</c> in float32, operation by operation.</summary>
    internal static float Cubic(float x)
    {
        float a = MathF.Abs(x);
        float a2 = a * a;
        float a3 = a * a * a;
        float m1 = a <= 1f ? 1f : 0f;
        float m2 = a > 1f && a <= 2f ? 1f : 0f;
        float p1 = 1.5f * a3 - 2.5f * a2 + 1f;
        float p2 = -0.5f * a3 + 2.5f * a2 - 4f * a + 2f;
        return p1 * m1 + p2 * m2;
    }

    /// <summary>
    /// <c>torch.sum(w, 1)</c> of one contiguous float32 row as PyTorch 1.13's CPU kernel computes it with the AVX2
    /// dispatch (8-lane vectors): rows of at least 8 elements are summed lane-wise in vectors, then the scalar
    /// tail, then the 8 lanes in order; shorter rows use 4 interleaved accumulators, the tail goes to the first.
    /// The accumulator is float32.
    /// </summary>
    internal static float TorchRowSum(ReadOnlySpan<float> x)
    {
        const int lanes = 8;
        int n = x.Length;
        if (n >= lanes)
        {
            int vecCount = n / lanes;
            Span<float> laneAcc = stackalloc float[lanes];
            MultiRowSumWithTail(x, vecCount, lanes, laneAcc);
            float final = 0f;
            for (int k = vecCount * lanes; k < n; k++)
                final += x[k];
            for (int l = 0; l < lanes; l++)
                final += laneAcc[l];
            return final;
        }
        Span<float> one = stackalloc float[1];
        MultiRowSumWithTail(x, n, 1, one);
        return one[0];
    }

    /// <summary>
    /// PyTorch <c>row_sum</c> (ILP factor 4) over <paramref name="count"/> elements of <paramref name="lanes"/>
    /// floats each: <c>multi_row_sum</c> (4 accumulators with its 4-level cascade), tail into accumulator 0,
    /// then accumulators 1..3 added to 0.
    /// </summary>
    private static void MultiRowSumWithTail(ReadOnlySpan<float> x, int count, int lanes, Span<float> result)
    {
        const int ilp = 4, levels = 4;
        int sizeIlp = count / ilp;
        int levelPower = Math.Max(4, CeilLog2(sizeIlp) / levels);
        int levelStep = 1 << levelPower;
        int levelMask = levelStep - 1;
        Span<float> acc = stackalloc float[levels * ilp * lanes];   // [level][row][lane], zero-initialised
        acc.Clear();
        int Idx(int level, int row, int lane) => (level * ilp + row) * lanes + lane;

        int i = 0;
        while (i + levelStep <= sizeIlp)
        {
            for (int j = 0; j < levelStep; j++, i++)
                for (int k = 0; k < ilp; k++)
                    for (int l = 0; l < lanes; l++)
                        acc[Idx(0, k, l)] += x[(i * ilp + k) * lanes + l];
            for (int j = 1; j < levels; j++)
            {
                for (int k = 0; k < ilp; k++)
                    for (int l = 0; l < lanes; l++)
                    {
                        acc[Idx(j, k, l)] += acc[Idx(j - 1, k, l)];
                        acc[Idx(j - 1, k, l)] = 0f;
                    }
                if ((i & (levelMask << (j * levelPower))) != 0)
                    break;
            }
        }
        for (; i < sizeIlp; i++)
            for (int k = 0; k < ilp; k++)
                for (int l = 0; l < lanes; l++)
                    acc[Idx(0, k, l)] += x[(i * ilp + k) * lanes + l];
        for (int j = 1; j < levels; j++)
            for (int k = 0; k < ilp; k++)
                for (int l = 0; l < lanes; l++)
                    acc[Idx(0, k, l)] += acc[Idx(j, k, l)];

        // row_sum: remaining elements into partial 0, then partials 1..3 into partial 0.
        for (int e = sizeIlp * ilp; e < count; e++)
            for (int l = 0; l < lanes; l++)
                acc[Idx(0, 0, l)] += x[e * lanes + l];
        for (int k = 1; k < ilp; k++)
            for (int l = 0; l < lanes; l++)
                acc[Idx(0, 0, l)] += acc[Idx(0, k, l)];
        for (int l = 0; l < lanes; l++)
            result[l] = acc[Idx(0, 0, l)];
    }

    private static int CeilLog2(int x) => x <= 2 ? 1 : 32 - System.Numerics.BitOperations.LeadingZeroCount((uint)(x - 1));

    /// <summary>Per-axis weights and (padding-resolved) source indices: BasicSR <c>calculate_weights_indices</c>.</summary>
    internal sealed class AxisPlan
    {
        private AxisPlan(int outLength, int taps, float[] weights, int[] sources)
        {
            OutLength = outLength;
            Taps = taps;
            Weights = weights;
            Sources = sources;
        }

        public int OutLength { get; }
        public int Taps { get; }

        /// <summary>[OutLength * Taps] normalised float32 weights.</summary>
        public float[] Weights { get; }

        /// <summary>[OutLength * Taps] indices into the unpadded input (symmetric padding already resolved).</summary>
        public int[] Sources { get; }

        public static AxisPlan Create(int inLength, int outLength, double scale, bool antialiasing)
        {
            bool widen = scale < 1 && antialiasing;
            double kernelWidth = widen ? 4.0 / scale : 4.0;
            float scaleF = (float)scale;
            float offset = (float)(0.5 * (1 - 1 / scale));
            float halfWidth = (float)(kernelWidth / 2);
            int p = (int)Math.Ceiling(kernelWidth) + 2;

            var weights = new float[outLength * p];
            var indices = new float[outLength * p];
            for (int i = 0; i < outLength; i++)
            {
                float x = i + 1;                          // torch.linspace(1, out, out): exact integers
                float u = x / scaleF + offset;
                float left = MathF.Floor(u - halfWidth);
                var row = weights.AsSpan(i * p, p);
                for (int j = 0; j < p; j++)
                {
                    float index = left + j;
                    indices[i * p + j] = index;
                    float d = u - index;
                    row[j] = widen ? scaleF * Cubic(d * scaleF) : Cubic(d);
                }
                float sum = TorchRowSum(row);
                for (int j = 0; j < p; j++)
                    row[j] /= sum;
            }

            // BasicSR drops a first/last column containing any zero weight with narrow(); note that dropping the
            // first one keeps columns 1..p-2 (so the last goes too), and dropping only the last keeps 0..p-3.
            bool zeroFirst = false, zeroLast = false;
            for (int i = 0; i < outLength; i++)
            {
                if (weights[i * p] == 0f) zeroFirst = true;
                if (weights[i * p + p - 1] == 0f) zeroLast = true;
            }
            int start = 0, taps = p;
            if (zeroFirst) { start = 1; taps = p - 2; }
            else if (zeroLast) { start = 0; taps = p - 2; }

            var w = new float[outLength * taps];
            var src = new int[outLength * taps];
            for (int i = 0; i < outLength; i++)
                for (int k = 0; k < taps; k++)
                {
                    w[i * taps + k] = weights[i * p + start + k];
                    // 1-based MATLAB index -> 0-based input index with half-sample symmetric padding.
                    src[i * taps + k] = Reflect((int)indices[i * p + start + k] - 1, inLength);
                }
            return new AxisPlan(outLength, taps, w, src);
        }

        /// <summary>Half-sample symmetric extension: ..., 1, 0 | 0, 1, ..., n-1 | n-1, n-2, ...</summary>
        private static int Reflect(int i, int n)
        {
            int period = 2 * n;
            int m = i % period;
            if (m < 0) m += period;
            return m < n ? m : period - 1 - m;
        }
    }
}
