using System.Numerics;
using TorchSharp;
using static TorchSharp.torch;

using Mcir.Core.Compute;

namespace Mcir.Core.ModelContrast;

/// <summary>
/// SPN's distance in one pass over memory on the CPU: for features a (M float32 values) and K negatives' features b_j
/// laid out like a, the sums Σ_i |a_i − b_j,i| (one per negative) and the element-wise Σ_j sign(a_i − b_j,i) (the
/// direction of the distance's gradient). ATen makes five passes over the K·M values for the same (difference,
/// absolute value, sum, sign, sum over negatives), most of them writing K·M values; here each b_j is read from memory
/// once, a block of a and of the sign sum is re-read from cache for each negative, and only the M-sized sign sum is
/// written.
/// </summary>
/// <remarks>
/// Memory is split into blocks of <see cref="BlockElements"/> values; a block's sums are accumulated in float32 over at
/// most <see cref="FloatRun"/> vectors, then in float64, and the blocks' sums are added in block order — so the result
/// does not depend on how many threads ran (it does depend, at the 1e-7 level, on the vector width
/// <c>Vector&lt;float&gt;.Count</c> of the CPU), and is closer to the exact sum than a float32 accumulation such as
/// ATen's. Blocks are the unit of parallel work, so at most ⌈M / <see cref="BlockElements"/>⌉ threads run: two for
/// VGG16's relu3_3 of a batch of 4 at 48², one below 131,072 values. sign(0) = 0 and sign(NaN) = 0, as ATen's CPU
/// <c>torch.sign</c> and the gradient autograd gives |x| at 0.
/// </remarks>
internal static unsafe class MeanAbsKernel
{
    /// <summary>
    /// Values per block (512 KB of float32): long sequential runs for the hardware prefetchers on the three streams of
    /// a block (a, b_j, the sign sum; with 16,384 values the kernel ran 1.7× slower on the Zen 5 guest), while a block
    /// of a and of the sign sum (1 MB together) stays in a core's L2 or L3 as the negatives stream past. Fixed, so the
    /// summation order, and with it the result, does not depend on the machine's thread count.
    /// </summary>
    public const int BlockElements = 131072;

    /// <summary>Vectors summed in float32 before being widened into the float64 accumulators.</summary>
    public const int FloatRun = 64;

    /// <summary>
    /// Writes Σ_j sign(a − b_j) to <paramref name="signSum"/> (M values) and returns Σ|a − b_j| for each j.
    /// </summary>
    /// <param name="a">M values.</param>
    /// <param name="b">K·M values, b_j at b + j·M.</param>
    /// <param name="m">Values per feature tensor (M ≥ 0).</param>
    /// <param name="k">Number of negatives (K ≥ 1).</param>
    /// <param name="signSum">M values, written. It may be b itself (the first negative's memory: each value of b_0 is read
    /// before the sign sum is written over it, and b_0 is not read again); it must not alias a or any other part of b.</param>
    /// <param name="threads">Threads to use (≥ 1); the result does not depend on it.</param>
    public static double[] Run(float* a, float* b, long m, int k, float* signSum, int threads)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(m);
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        long blocks = (m + BlockElements - 1) / BlockElements;
        var blockSums = new double[blocks * k];
        nint pa = (nint)a, pb = (nint)b, ps = (nint)signSum;
        IntraOpParallel.For(0L, blocks, Math.Max(1, threads), blk =>
        {
            long start = blk * BlockElements;
            long count = Math.Min(BlockElements, m - start);
            fixed (double* sums = &blockSums[blk * k])
                RunBlock((float*)pa + start, (float*)pb + start, m, k, (float*)ps + start, (int)count, sums);
        });
        var result = new double[k];
        for (long blk = 0; blk < blocks; blk++)
            for (int j = 0; j < k; j++)
                result[j] += blockSums[blk * k + j];
        return result;
    }

    private static void RunBlock(float* a, float* b, long m, int k, float* signSum, int count, double* sums)
    {
        int w = Vector<float>.Count;
        int vectorEnd = count - count % w;
        for (int j = 0; j < k; j++)
        {
            float* bj = b + j * m;
            var wide = Vector<double>.Zero;
            int i = 0;
            while (i < vectorEnd)
            {
                int runEnd = Math.Min(vectorEnd, i + FloatRun * w);
                var acc = Vector<float>.Zero;
                for (; i < runEnd; i += w)
                {
                    var d = Vector.Load(a + i) - Vector.Load(bj + i);
                    acc += Vector.Abs(d);
                    var sign = Vector.ConditionalSelect(Vector.GreaterThan(d, Vector<float>.Zero), Vector<float>.One, Vector<float>.Zero)
                             - Vector.ConditionalSelect(Vector.LessThan(d, Vector<float>.Zero), Vector<float>.One, Vector<float>.Zero);
                    if (j == 0) Vector.Store(sign, signSum + i);
                    else Vector.Store(Vector.Load(signSum + i) + sign, signSum + i);
                }
                Vector.Widen(acc, out var low, out var high);
                wide += low + high;
            }
            double tail = 0;
            for (; i < count; i++)
            {
                float d = a[i] - bj[i];
                tail += Math.Abs(d);
                float sign = d > 0 ? 1f : d < 0 ? -1f : 0f;
                signSum[i] = j == 0 ? sign : signSum[i] + sign;
            }
            sums[j] = Vector.Sum(wide) + tail;
        }
    }

    /// <summary>
    /// True when <paramref name="a"/> [B, …] and <paramref name="negatives"/> [K, B, …] can be read as flat memory by
    /// <see cref="Run"/>: CPU float32, a dense in its own memory order (contiguous or channels-last), every negative
    /// b_j with a's strides (on axes longer than 1), and the negatives back to back (stride of the K axis = M).
    /// </summary>
    public static bool Applies(Tensor a, Tensor negatives)
    {
        if (a.device_type != DeviceType.CPU || negatives.device_type != DeviceType.CPU) return false;
        if (a.dtype != ScalarType.Float32 || negatives.dtype != ScalarType.Float32) return false;
        if (negatives.dim() != a.dim() + 1 || !negatives.shape.Skip(1).SequenceEqual(a.shape)) return false;
        if (!IsDense(a)) return false;
        // Strides of size-1 axes are arbitrary (views choose them freely) and never used to address memory.
        var negativeStrides = negatives.stride();
        if (negatives.shape[0] > 1 && negativeStrides[0] != a.numel()) return false;
        var strides = a.stride();
        for (int d = 0; d < strides.Length; d++)
            if (a.shape[d] != 1 && strides[d] != negativeStrides[d + 1]) return false;
        return true;
    }

    /// <summary>Dense without overlap in some memory order: the strides, sorted, are the running products of the sizes (size-1 axes ignored).</summary>
    private static bool IsDense(Tensor t)
    {
        var sizes = t.shape;
        var strides = t.stride();
        long expected = 1;
        foreach (int d in Enumerable.Range(0, sizes.Length).Where(d => sizes[d] != 1).OrderBy(d => strides[d]))
        {
            if (strides[d] != expected) return false;
            expected *= sizes[d];
        }
        return true;
    }
}
