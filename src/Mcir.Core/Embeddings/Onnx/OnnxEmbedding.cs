using Mcir.Abstractions.ModelContrast;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Embeddings.Onnx;

/// <summary>
/// A frozen feature extractor φ backed by an ONNX graph run in TorchSharp (<see cref="OnnxGraphModule"/>): normalises the
/// [0, 1] RGB input as configured, runs the graph only as far as the deepest requested layer and returns the requested
/// node outputs. No parameters, eval mode; gradient flows to the input. Created by <see cref="OnnxEmbeddings.Create"/>.
/// </summary>
public sealed class OnnxEmbedding : IFeatureEmbedding
{
    private Tensor _scale, _shift;
    private readonly bool _bgr;
    private bool _disposed;

    /// <summary>
    /// Wraps <paramref name="model"/>: <paramref name="layers"/> are the names reported in <see cref="Layers"/>,
    /// <paramref name="outputs"/> the node outputs they stand for (same order).
    /// </summary>
    public OnnxEmbedding(string name, OnnxModel model, IReadOnlyList<string> layers, IReadOnlyList<string> outputs,
        OnnxInputNormalization normalization, bool foldBatchNorm, string weightsDescription)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentNullException.ThrowIfNull(normalization);
        if (layers.Count == 0) throw new ArgumentException($"{name}: at least one layer must be requested.", nameof(layers));
        if (layers.Count != outputs.Count) throw new ArgumentException($"{name}: {layers.Count} layer names for {outputs.Count} outputs.", nameof(outputs));
        if (normalization.Mean.Count != 3 || normalization.Std.Count != 3)
            throw new ArgumentException($"{name}: normalisation mean and std need 3 values each (got {normalization.Mean.Count}, {normalization.Std.Count}).", nameof(normalization));
        if (normalization.Std.Any(s => s == 0 || !double.IsFinite(s)) || !double.IsFinite(normalization.Scale) || normalization.Scale == 0)
            throw new ArgumentException($"{name}: normalisation scale and std must be finite and non-zero.", nameof(normalization));

        Name = name;
        ModelDescription = model.Describe();
        Layers = layers.ToArray();
        OutputNames = outputs.ToArray();
        Normalization = normalization;
        Network = new OnnxGraphModule(model.Graph, OutputNames.Distinct(StringComparer.Ordinal), new OnnxGraphModuleOptions { FoldBatchNorm = foldBatchNorm }, name.Replace('-', '_'));
        _positions = OutputNames.Select(o => Network.OutputNames.ToList().IndexOf(o)).ToArray();
        WeightsDescription = weightsDescription;
        _bgr = normalization.Bgr;
        _scale = torch.tensor(normalization.Std.Select(s => (float)(normalization.Scale / s)).ToArray()).reshape(1, 3, 1, 1).DetachFromDisposeScope();
        _shift = torch.tensor(normalization.Mean.Zip(normalization.Std, (m, s) => (float)(m / s)).ToArray()).reshape(1, 3, 1, 1).DetachFromDisposeScope();
    }

    private readonly int[] _positions;

    /// <inheritdoc />
    public string Name { get; }

    /// <inheritdoc />
    public IReadOnlyList<string> Layers { get; }

    /// <summary>The graph node outputs behind <see cref="Layers"/> (same order).</summary>
    public IReadOnlyList<string> OutputNames { get; }

    /// <inheritdoc />
    public string WeightsDescription { get; }

    /// <summary>The input normalisation applied by <see cref="Extract"/>.</summary>
    public OnnxInputNormalization Normalization { get; }

    /// <summary>The ONNX file, producer, IR/opset, node and initializer counts (the parsed model itself is not kept:
    /// only the initializers the requested layers need live on, as the network's buffers).</summary>
    public string ModelDescription { get; }

    /// <summary>The TorchSharp graph runner (frozen, eval mode).</summary>
    public OnnxGraphModule Network { get; }

    /// <summary>Moves the network to <paramref name="device"/>.</summary>
    public OnnxEmbedding To(Device device)
    {
        Network.to(device);
        foreach (var (_, b) in Network.named_buffers()) b.requires_grad = false;
        return this;
    }

    /// <summary>Converts the network's constants to <paramref name="type"/> (e.g. float64 for finite-difference checks).</summary>
    public OnnxEmbedding To(ScalarType type)
    {
        Network.to(type);
        foreach (var (_, b) in Network.named_buffers()) b.requires_grad = false;
        return this;
    }

    /// <summary>The network input for <paramref name="rgb"/> in [0, 1] (channel reorder, scale, mean, std).</summary>
    public Tensor Preprocess(Tensor rgb)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (rgb.dim() != 4 || rgb.shape[1] != 3)
            throw new ArgumentException($"{Name}: expects RGB [B, 3, H, W], got [{string.Join(", ", rgb.shape)}].", nameof(rgb));
        if (_scale.device_type != rgb.device_type || _scale.device_index != rgb.device_index || _scale.dtype != rgb.dtype)
        {
            var s = _scale.to(rgb.dtype, rgb.device).DetachFromDisposeScope();
            var t = _shift.to(rgb.dtype, rgb.device).DetachFromDisposeScope();
            _scale.Dispose(); _shift.Dispose();
            _scale = s; _shift = t;
        }
        using var ordered = _bgr ? rgb.flip(1) : rgb.alias();
        using var scaled = ordered * _scale;
        return scaled - _shift;
    }

    /// <inheritdoc />
    public IReadOnlyList<Tensor> Extract(Tensor rgb)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Network.training) Network.eval();
        using var scope = torch.NewDisposeScope();
        var x = Preprocess(rgb);
        var outs = Network.Run(Compute.ConvolutionLayout.ForEmbedding(x));
        var result = _positions.Select(p => outs[p]).ToArray();
        foreach (var o in result.Distinct()) o.MoveToOuterDisposeScope();
        return result;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Network.Dispose();
        _scale.Dispose();
        _shift.Dispose();
    }
}
