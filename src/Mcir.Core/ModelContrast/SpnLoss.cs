using Mcir.Core.Compute;
using Mcir.Abstractions.Losses;
using Mcir.Abstractions.ModelContrast;
using Mcir.Core.Embeddings;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.ModelContrast;

/// <summary>
/// The SPN (model-contrastive) term. φ(o) is computed once per call (with gradient); all K negatives' features come from
/// ONE no-grad forward of the [K·B, C, H, W] batch, then the per-negative distances are taken from the batched features.
/// Parts: "spn" (the term's value), "spn/neg{j}" (Σ_l w_l·mean|φ_l(o) − φ_l(n_j)|, not multiplied by λ),
/// "spn/layer/{name}" (unweighted distance, mean over j), and for the ratio form "spn/pos" (Σ_l w_l·mean|φ_l(o) − φ_l(y)|).
/// </summary>
public sealed class SpnLoss : ILossTerm, IDisposable
{
    private readonly IFeatureEmbedding _embedding;
    private readonly bool _ownsEmbedding;
    // A low-precision copy of the embedding for the negatives' (no-gradient) features; null = use _embedding.
    private readonly IFeatureEmbedding? _negativeEmbedding;
    private readonly string[] _layers;
    private readonly double[] _weights;
    private readonly int[] _positions;

    /// <summary>Builds its own VGG embedding from <see cref="SpnLossOptions.EmbeddingOptions"/> (and disposes it).</summary>
    public SpnLoss(SpnLossOptions options) : this(options, new VggEmbedding(options.VggOptions()), ownsEmbedding: true) { }

    /// <summary>Uses a given embedding, which must produce every layer of <see cref="SpnLossOptions.LayerWeights"/>.</summary>
    public SpnLoss(SpnLossOptions options, IFeatureEmbedding embedding) : this(options, embedding, ownsEmbedding: false) { }

    /// <summary>
    /// The SPN term with the embedding chosen by <see cref="SpnLossOptions.EmbeddingType"/> (see
    /// <see cref="SpnEmbeddingSelection"/>) among <paramref name="embeddings"/> (default: the engine's); the term owns
    /// and disposes it.
    /// </summary>
    public static SpnLoss FromOptions(SpnLossOptions options, Abstractions.Components.IComponentRegistry<Abstractions.Components.EmbeddingDescriptor>? embeddings = null)
    {
        var (embedding, resolved) = SpnEmbeddingSelection.Create(options, embeddings);
        IFeatureEmbedding? negativeEmbedding = null;
        try
        {
            negativeEmbedding = SpnEmbeddingSelection.CreateNegativeCopy(resolved, embedding);
            return new SpnLoss(resolved, embedding, ownsEmbedding: true, negativeEmbedding);
        }
        catch
        {
            embedding.Dispose();
            negativeEmbedding?.Dispose();
            throw;
        }
    }

    private SpnLoss(SpnLossOptions options, IFeatureEmbedding embedding, bool ownsEmbedding, IFeatureEmbedding? negativeEmbedding = null)
    {
        _negativeEmbedding = negativeEmbedding;
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(embedding);
        if (options.LayerWeights.Count == 0) throw new ArgumentException("spn: no layers (layer_weights is empty).");
        if (!double.IsFinite(options.Lambda) || options.Lambda < 0) throw new ArgumentException($"spn: lambda must be finite and ≥ 0, got {options.Lambda}.");
        if (!(options.Epsilon >= 0)) throw new ArgumentException($"spn: epsilon must be ≥ 0, got {options.Epsilon}.");
        Options = options;
        _embedding = embedding;
        _ownsEmbedding = ownsEmbedding;
        _layers = options.LayerWeights.Keys.ToArray();
        _weights = _layers.Select(l => options.LayerWeights[l]).ToArray();
        _positions = FeatureDistances.LayerPositions(embedding, _layers, "spn");
    }

    /// <summary>Moves the embeddings (also the negatives' low-precision copy) to <paramref name="device"/> (the training device); returns this term.</summary>
    public SpnLoss To(Device device)
    {
        EmbeddingDevice.Move(_embedding, device, "loss.spn");
        if (_negativeEmbedding is not null) EmbeddingDevice.Move(_negativeEmbedding, device, "loss.spn");
        return this;
    }

    /// <summary>The options in use.</summary>
    public SpnLossOptions Options { get; }

    /// <summary>The embedding φ.</summary>
    public IFeatureEmbedding Embedding => _embedding;

    /// <inheritdoc />
    public string Name => "spn";

    /// <inheritdoc />
    public bool NeedsNegatives => true;

    /// <summary>One line for run logs: form, λ, layers and weights, embedding weights.</summary>
    public string Describe() =>
        $"spn: form {Options.Form.ToString().ToLowerInvariant()}, lambda {Options.Lambda:G}, layers " +
        string.Join(", ", _layers.Select((l, i) => $"{l}:{_weights[i]:G}")) + $"; embedding {_embedding.WeightsDescription}";

    /// <inheritdoc />
    public LossResult Compute(LossContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var output = context.Output;
        long k = FeatureDistances.CheckNegatives(context.Negatives, output, "spn");
        var negatives = context.Negatives!;
        long b = output.shape[0];
        bool ratio = Options.Form == SpnForm.Ratio;
        if (ratio && !context.Target.shape.SequenceEqual(output.shape))
            throw new ArgumentException($"spn (ratio): target {FeatureDistances.Fmt(context.Target.shape)} must match output {FeatureDistances.Fmt(output.shape)}.");

        using var scope = torch.NewDisposeScope();
        var fo = _embedding.Extract(output);                     // with gradient, once
        var flat = negatives.reshape([k * b, .. output.shape.Skip(1)]);
        Tensor[] noGradInputs = ratio ? [flat, context.Target] : [flat];
        var chunks = _negativeEmbedding is null
            ? FeatureDistances.NoGradFeatures(_embedding, noGradInputs)
            : FeatureDistances.NoGradFeatures(_negativeEmbedding, noGradInputs.Select(t => t.to(Options.NegativePrecision.ToScalarType())).ToArray())
                .Select(layer => layer.Select(t => t.to(ScalarType.Float32)).ToArray()).ToArray();

        int n = _layers.Length;
        var perLayerPerNeg = new Tensor[n];                      // [K] each, no gradient: mean|φ_l(o) − φ_l(n_j)|
        var perLayerPos = new Tensor[n];
        Tensor? weightedPerNeg = null;                           // [K], no gradient: Σ_l w_l d_lj
        Tensor? value = null;
        for (int i = 0; i < n; i++)
        {
            int p = _positions[i];
            var fn = chunks[p][0].view([k, b, .. chunks[p][0].shape.Skip(1)]);
            // Both forms use the d_lj only through their mean over j: (1/K) Σ_j d_lj, with its gradient.
            var (meanOverNegatives, perNegative) = FeatureDistances.MeanAbsOverNegatives(fo[p], fn);
            perLayerPerNeg[i] = perNegative;
            var w = perNegative * _weights[i];
            weightedPerNeg = weightedPerNeg is null ? w : weightedPerNeg + w;
            Tensor term;
            if (ratio)
            {
                perLayerPos[i] = (fo[p] - chunks[p][1]).abs().mean();
                term = perLayerPos[i] * _weights[i] / (meanOverNegatives + Options.Epsilon);
            }
            else term = meanOverNegatives * _weights[i];
            value = value is null ? term : value + term;
        }
        value = (ratio ? 1 : -1) * Options.Lambda * value!;      // −λ Σ_l w_l (1/K) Σ_j d_lj, or λ Σ_l w_l pos_l / (mean_j d_lj + ε)

        // All reported numbers in one host transfer.
        var report = new List<Tensor> { value.detach().reshape(1), weightedPerNeg!.detach() };
        if (Options.ReportLayerParts) report.AddRange(perLayerPerNeg.Select(t => t.detach().mean().reshape(1)));
        if (ratio) report.Add(perLayerPos.Select((t, i) => t.detach() * _weights[i]).Aggregate((a, c) => a + c).reshape(1));
        var host = FeatureDistances.ToHost(torch.cat(report.ToArray(), 0));

        var parts = new Dictionary<string, double> { ["spn"] = host[0] };
        int at = 1;
        for (int j = 0; j < k; j++) parts[$"spn/neg{j}"] = host[at++];
        if (Options.ReportLayerParts) foreach (var l in _layers) parts[$"spn/layer/{l}"] = host[at++];
        if (ratio) parts["spn/pos"] = host[at++];

        value.MoveToOuterDisposeScope();
        return new LossResult(value, parts);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_ownsEmbedding) _embedding.Dispose();
        _negativeEmbedding?.Dispose();
    }
}
