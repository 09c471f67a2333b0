using Mcir.Abstractions.ModelContrast;
using Mcir.Core.Compute;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.ModelContrast;

/// <summary>Shared plumbing of the feature-space contrastive terms (SPN, CR).</summary>
internal static class FeatureDistances
{
    /// <summary>
    /// Positions of <paramref name="layers"/> in <paramref name="embedding"/>'s output list (names compared without
    /// case); throws naming what is missing, or two names of the same layer (the distances consume the negatives'
    /// features of a layer, so each may be taken once).
    /// </summary>
    public static int[] LayerPositions(IFeatureEmbedding embedding, IEnumerable<string> layers, string term)
    {
        var available = embedding.Layers;
        var names = layers.ToArray();
        var positions = names.Select(l =>
        {
            for (int i = 0; i < available.Count; i++)
                if (string.Equals(available[i], l, StringComparison.OrdinalIgnoreCase)) return i;
            throw new ArgumentException($"{term}: layer '{l}' is not produced by embedding '{embedding.Name}' (it gives {string.Join(", ", available)}).");
        }).ToArray();
        for (int i = 0; i < positions.Length; i++)
            for (int j = 0; j < i; j++)
                if (positions[i] == positions[j])
                    throw new ArgumentException($"{term}: layers '{names[j]}' and '{names[i]}' name the same layer of embedding '{embedding.Name}'; give each layer once.");
        return positions;
    }

    /// <summary>Checks Negatives is [K, B, C, H, W] matching the output [B, C, H, W]; returns K.</summary>
    public static long CheckNegatives(Tensor? negatives, Tensor output, string term)
    {
        if (negatives is null)
            throw new InvalidOperationException($"{term}: this term needs negatives (LossContext.Negatives is null); configure a negative source.");
        if (negatives.dim() != 5 || !negatives.shape.Skip(1).SequenceEqual(output.shape))
            throw new ArgumentException(
                $"{term}: negatives must be [K, B, C, H, W] with [B, C, H, W] = output {Fmt(output.shape)}, got {Fmt(negatives.shape)}.");
        if (negatives.shape[0] < 1) throw new ArgumentException($"{term}: K = 0 negatives.");
        return negatives.shape[0];
    }

    /// <summary>
    /// Features of several no-grad image batches in ONE forward: the tensors (each [N_i, C, H, W]) are concatenated along
    /// the batch axis, run once under no_grad, and the features split back into per-batch chunks [N_i, ...].
    /// </summary>
    public static Tensor[][] NoGradFeatures(IFeatureEmbedding embedding, IReadOnlyList<Tensor> batches)
    {
        using var noGrad = torch.no_grad();
        using var all = batches.Count == 1 ? batches[0].detach() : torch.cat(batches.Select(b => b.detach()).ToArray(), 0);
        var feats = embedding.Extract(all);
        var sizes = batches.Select(b => b.shape[0]).ToArray();
        var result = new Tensor[feats.Count][];
        for (int l = 0; l < feats.Count; l++)
            result[l] = feats[l].split(sizes, 0);
        return result;
    }

    /// <summary>
    /// d_j = mean |a − b_j| for each negative j: <paramref name="a"/> [B, ...] (may require grad) against
    /// <paramref name="negatives"/> [K, B, ...] (no grad) → [K], with the gradient of that mean with respect to a,
    /// sign(a − b_j) / M per element (M = a's element count). <paramref name="negatives"/> is OVERWRITTEN (it becomes
    /// sign(b_j − a)): pass features that are not read again. For losses whose gradient reaches the d_j unequally (CR's
    /// ratio per negative); SPN, which uses only their mean, takes <see cref="MeanAbsOverNegatives"/>.
    /// </summary>
    /// <remarks>
    /// The same numbers as autograd's <c>(a.unsqueeze(0) − b).abs().mean(1..)</c> to float32 rounding, without its three
    /// K·B-sized temporaries and their backward passes (on VGG16's relu1_2 of K·B = 16 images of 192², each one is 151 MB):
    /// the difference and its sign are made in place, Σ|a − b_j| is summed one negative at a time, and the gradient flows
    /// through −(sign(b_j − a) · a) / M, a matrix–vector product [K, M] · [M] whose backward is one more (its value is
    /// cancelled exactly: x − detach(x) = 0, so the result is the sums' value).
    /// </remarks>
    public static Tensor MeanAbsPerNegative(Tensor a, Tensor negatives)
    {
        long k = negatives.shape[0];
        long m = a.numel();
        var (sums, sign) = SumsAndSigns(a, negatives);
        // Flatten a and every sign(b_j − a) in a's memory order, so both are views when their layouts agree.
        var order = MemoryOrder(a);
        var flatA = a.permute(order).reshape(m);
        var flatSign = sign.permute([0, .. order.Select(d => d + 1)]).reshape(k, m);
        var surrogate = flatSign.mv(flatA).neg().div(m);               // gradient: sign(a − b_j) / M
        return sums.div(m) + (surrogate - surrogate.detach());
    }

    /// <summary>
    /// SPN's distance of one layer: the mean over the K negatives of d_j = mean |a − b_j|, with
    /// <paramref name="a"/> [B, ...] (float, may require grad) and <paramref name="negatives"/> [K, B, ...] (no grad).
    /// Returns <c>Mean</c> (a scalar whose gradient with respect to a is Σ_j sign(a − b_j) / (K·M), M = a's element
    /// count) and <c>PerNegative</c> (the K values d_j, without gradient, for reports).
    /// <paramref name="negatives"/> is OVERWRITTEN (its first negative's memory holds the sign sum, which the gradient
    /// reads): pass features that are not read again.
    /// </summary>
    /// <remarks>
    /// Equal to autograd's <c>(a.unsqueeze(0) − b).abs().mean(1..).mean()</c> to float32 rounding, values and gradient.
    /// On the CPU, for float32 features laid out alike (the embedding's features of the network's output and of the
    /// batched negatives are), <see cref="MeanAbsKernel"/> reads the K negatives once and writes only the M-sized sign
    /// sum, over the first negative's features (no allocation), and the gradient flows through
    /// (Σ_j sign(a − b_j)) · a / (K·M), a dot product whose backward is one M-sized multiply — against the [K, M] matrix–vector product <see cref="MeanAbsPerNegative"/> needs for unequal
    /// per-negative gradients (the SPN step of EDSR-light ×4, batch 4 of 48², K = 4, on the Zen 5 guest: the three
    /// layers' distances, forward and backward, 69 → 35 ms; whole steps 0.9–1.7 % faster in paired runs). Elsewhere
    /// (CUDA, other layouts or types) the same formulation runs on ATen's operations, in place in
    /// <paramref name="negatives"/>.
    /// </remarks>
    public static (Tensor Mean, Tensor PerNegative) MeanAbsOverNegatives(Tensor a, Tensor negatives)
    {
        long k = negatives.shape[0];
        long m = a.numel();
        Tensor sums, signSum;                                           // Σ|a − b_j| [K]; Σ_j sign(a − b_j), a's shape
        using (torch.no_grad())
        {
            if (MeanAbsKernel.Applies(a, negatives))
            {
                // Written over the first negative's features (read before written; see MeanAbsKernel.Run), viewed
                // with a's strides: its memory order is a's, which Applies checked.
                signSum = negatives.as_strided(a.shape, a.stride(), negatives.storage_offset());
                double[] host;
                unsafe
                {
                    host = MeanAbsKernel.Run((float*)TensorData.Pointer(a), (float*)TensorData.Pointer(negatives), m, (int)k,
                        (float*)TensorData.Pointer(signSum), torch.get_num_threads());
                }
                GC.KeepAlive(a);
                GC.KeepAlive(negatives);
                sums = torch.tensor(host.Select(v => (float)v).ToArray(), device: a.device);
            }
            else
            {
                var (s, sign) = SumsAndSigns(a, negatives);
                sums = s;
                signSum = sign.sum([0L]).neg_();                         // Σ_j sign(a − b_j)
            }
        }
        var perNegative = sums.div(m);
        var order = MemoryOrder(a);
        var surrogate = signSum.permute(order).reshape(m).dot(a.permute(order).reshape(m)).div(k * m);
        return (perNegative.mean() + (surrogate - surrogate.detach()), perNegative);
    }

    /// <summary>
    /// Σ|a − b_j| per negative ([K], ATen's cascade sum, as mean() sums) and sign(b_j − a), made in place in
    /// <paramref name="negatives"/>.
    /// </summary>
    private static (Tensor Sums, Tensor Sign) SumsAndSigns(Tensor a, Tensor negatives)
    {
        using var noGrad = torch.no_grad();
        long k = negatives.shape[0];
        var sign = negatives.sub_(a.detach().unsqueeze(0));              // b_j − a, in place
        // abs().sum(), not a 1-norm, whose reduction drifts by 1e-5 on 10⁷ terms; one negative at a time, so the
        // temporary holds one negative's M values.
        var sums = torch.stack(Enumerable.Range(0, (int)k).Select(j => { using var d = sign[j]; using var abs = d.abs(); return abs.sum(); }).ToArray());
        sign.sign_();                                                    // sign(b_j − a), in place
        return (sums, sign);
    }

    /// <summary>a's dimensions from the largest stride to the smallest (its memory order; NHWC for channels-last).</summary>
    private static long[] MemoryOrder(Tensor a)
    {
        var strides = a.stride();
        return Enumerable.Range(0, strides.Length).OrderByDescending(d => strides[d]).ThenBy(d => d).Select(d => (long)d).ToArray();
    }

    /// <summary>Copies a small 1-D tensor's values to the host in one transfer.</summary>
    public static double[] ToHost(Tensor t)
    {
        using var c = t.detach().to(ScalarType.Float64, CPU).contiguous();
        return c.data<double>().ToArray();
    }

    public static string Fmt(long[] s) => "[" + string.Join(", ", s) + "]";
}
