using Mcir.Abstractions.Losses;
using Mcir.Abstractions.ModelContrast;
using Mcir.Core.Embeddings;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.ModelContrast;

/// <summary>
/// Contrastive regularisation (AECR-Net): anchor o, positive y, negative x (or each negative model output n_j):
/// cr_j = Σ_l w_l·mean|φ_l(o) − φ_l(y)| / (mean|φ_l(o) − φ_l(n_j)| + ε), CR = (1/K)·Σ_j cr_j, value = β·CR.
/// φ(o) once with gradient; y and all negatives in ONE no-grad forward.
/// Parts: "cr" (= value), "cr/ratio" (CR, without β), "cr/neg{j}" (cr_j), "cr/layer/{name}/ap" and "/an" (mean over j).
/// </summary>
public sealed class ContrastRegularizationLoss : ILossTerm, IDisposable
{
    private readonly IFeatureEmbedding _embedding;
    private readonly bool _ownsEmbedding;
    private readonly string[] _layers;
    private readonly double[] _weights;
    private readonly int[] _positions;

    /// <summary>Builds its own VGG embedding (and disposes it).</summary>
    public ContrastRegularizationLoss(ContrastRegularizationOptions options)
        : this(options, new VggEmbedding(options.EmbeddingOptions()), ownsEmbedding: true) { }

    /// <summary>Uses a given embedding, which must produce every layer of <see cref="ContrastRegularizationOptions.LayerWeights"/>.</summary>
    public ContrastRegularizationLoss(ContrastRegularizationOptions options, IFeatureEmbedding embedding)
        : this(options, embedding, ownsEmbedding: false) { }

    private ContrastRegularizationLoss(ContrastRegularizationOptions options, IFeatureEmbedding embedding, bool ownsEmbedding)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(embedding);
        if (options.LayerWeights.Count == 0) throw new ArgumentException("cr: no layers (layer_weights is empty).");
        if (!double.IsFinite(options.Weight) || options.Weight < 0) throw new ArgumentException($"cr: weight must be finite and ≥ 0, got {options.Weight}.");
        Options = options;
        _embedding = embedding;
        _ownsEmbedding = ownsEmbedding;
        _layers = options.LayerWeights.Keys.ToArray();
        _weights = _layers.Select(l => options.LayerWeights[l]).ToArray();
        _positions = FeatureDistances.LayerPositions(embedding, _layers, "cr");
    }

    /// <summary>Moves the embedding to <paramref name="device"/> (the training device); returns this term.</summary>
    public ContrastRegularizationLoss To(Device device)
    {
        EmbeddingDevice.Move(_embedding, device, "loss.cr");
        return this;
    }

    /// <summary>The options in use.</summary>
    public ContrastRegularizationOptions Options { get; }

    /// <summary>The embedding φ.</summary>
    public IFeatureEmbedding Embedding => _embedding;

    /// <inheritdoc />
    public string Name => "cr";

    /// <inheritdoc />
    public bool NeedsNegatives => Options.Negatives == CrNegatives.Models;

    /// <inheritdoc />
    public LossResult Compute(LossContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var output = context.Output;
        if (!context.Target.shape.SequenceEqual(output.shape))
            throw new ArgumentException($"cr: target {FeatureDistances.Fmt(context.Target.shape)} must match output {FeatureDistances.Fmt(output.shape)}.");
        using var scope = torch.NewDisposeScope();
        Tensor negFlat;
        long k, b = output.shape[0];
        if (Options.Negatives == CrNegatives.Models)
        {
            k = FeatureDistances.CheckNegatives(context.Negatives, output, "cr");
            negFlat = context.Negatives!.reshape([k * b, .. output.shape.Skip(1)]);
        }
        else
        {
            if (!context.Input.shape.SequenceEqual(output.shape))
                throw new ArgumentException(
                    $"cr (negatives: input): the degraded input {FeatureDistances.Fmt(context.Input.shape)} must have the output's shape " +
                    $"{FeatureDistances.Fmt(output.shape)} (true for dehazing/deraining; for super-resolution use negatives: models).");
            k = 1;
            negFlat = context.Input;
        }

        var fo = _embedding.Extract(output);
        var chunks = FeatureDistances.NoGradFeatures(_embedding, [context.Target, negFlat]);

        int n = _layers.Length;
        var ap = new Tensor[n];
        var an = new Tensor[n];
        Tensor? perNeg = null;                                    // [K]: cr_j
        for (int i = 0; i < n; i++)
        {
            int p = _positions[i];
            ap[i] = (fo[p] - chunks[p][0]).abs().mean();
            var fn = chunks[p][1].view([k, b, .. chunks[p][1].shape.Skip(1)]);
            an[i] = FeatureDistances.MeanAbsPerNegative(fo[p], fn);
            var term = ap[i] * _weights[i] / (an[i] + Options.Epsilon);
            perNeg = perNeg is null ? term : perNeg + term;
        }
        var cr = perNeg!.mean();
        var value = cr * Options.Weight;

        var report = new List<Tensor> { value.detach().reshape(1), cr.detach().reshape(1), perNeg.detach() };
        for (int i = 0; i < n; i++) { report.Add(ap[i].detach().reshape(1)); report.Add(an[i].detach().mean().reshape(1)); }
        var host = FeatureDistances.ToHost(torch.cat(report.ToArray(), 0));
        var parts = new Dictionary<string, double> { ["cr"] = host[0], ["cr/ratio"] = host[1] };
        int at = 2;
        for (int j = 0; j < k; j++) parts[$"cr/neg{j}"] = host[at++];
        foreach (var l in _layers) { parts[$"cr/layer/{l}/ap"] = host[at++]; parts[$"cr/layer/{l}/an"] = host[at++]; }

        value.MoveToOuterDisposeScope();
        return new LossResult(value, parts);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_ownsEmbedding) _embedding.Dispose();
    }
}
