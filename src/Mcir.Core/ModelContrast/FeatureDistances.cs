using Mcir.Abstractions.ModelContrast;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.ModelContrast;

/// <summary>Shared plumbing of the feature-space contrastive terms (SPN, CR).</summary>
internal static class FeatureDistances
{
    /// <summary>Positions of <paramref name="layers"/> in <paramref name="embedding"/>'s output list; throws naming what is missing.</summary>
    public static int[] LayerPositions(IFeatureEmbedding embedding, IEnumerable<string> layers, string term)
    {
        var available = embedding.Layers;
        return layers.Select(l =>
        {
            for (int i = 0; i < available.Count; i++)
                if (string.Equals(available[i], l, StringComparison.OrdinalIgnoreCase)) return i;
            throw new ArgumentException($"{term}: layer '{l}' is not produced by embedding '{embedding.Name}' (it gives {string.Join(", ", available)}).");
        }).ToArray();
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

    /// <summary>mean |a − b_j| over all but the first axis of b ([K, B, ...] vs a [B, ...]) → [K].</summary>
    public static Tensor MeanAbsPerNegative(Tensor a, Tensor bStacked)
    {
        var dims = Enumerable.Range(1, (int)bStacked.dim() - 1).Select(i => (long)i).ToArray();
        return (a.unsqueeze(0) - bStacked).abs().mean(dims);
    }

    /// <summary>Copies a small 1-D tensor's values to the host in one transfer.</summary>
    public static double[] ToHost(Tensor t)
    {
        using var c = t.detach().to(ScalarType.Float64, CPU).contiguous();
        return c.data<double>().ToArray();
    }

    public static string Fmt(long[] s) => "[" + string.Join(", ", s) + "]";
}
