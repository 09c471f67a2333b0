using Mcir.Abstractions.ModelContrast;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Embeddings;

/// <summary>
/// Frozen ImageNet VGG16/VGG19 feature extractor φ in torchvision's layout: returns the requested named layers
/// (features after ReLU for reluX_Y), runs only up to the deepest one, optionally ImageNet-normalises the [0,1] RGB
/// input. Parameters never require grad and the network is in eval mode; gradient flows to the input.
/// </summary>
public sealed class VggEmbedding : IFeatureEmbedding
{
    /// <summary>The mandatory marker in <see cref="WeightsDescription"/> when random weights are in use.</summary>
    public const string RandomWeightsMarker = "RANDOM weights (allow_random_weights: true) — not the method";

    private static readonly float[] ImageNetMean = [0.485f, 0.456f, 0.406f];
    private static readonly float[] ImageNetStd = [0.229f, 0.224f, 0.225f];

    private readonly int[] _indices;
    private Tensor _mean, _std;
    private bool _disposed;

    /// <summary>Builds the network truncated after the deepest requested layer and loads (or, only if allowed, randomises) its weights.</summary>
    public VggEmbedding(VggEmbeddingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Layers is null || options.Layers.Count == 0)
            throw new ArgumentException("VGG embedding: at least one layer must be requested (e.g. relu1_2, relu2_2, relu3_3).", nameof(options));
        Options = options;
        Layers = options.Layers.ToArray();
        _indices = Layers.Select(l => VggLayout.IndexOf(options.Variant, l)).ToArray();
        int deepest = _indices.Max();
        string variant = VggLayout.VariantName(options.Variant);

        VggWeightSet? weights = null;
        // No configured path: the user's installed copy ($MCIR_VGG16_WEIGHTS or `mcir-host weights fetch`'s cache).
        string? weightsPath = !string.IsNullOrWhiteSpace(options.WeightsPath) ? options.WeightsPath
            : Weights.WeightsLocations.LocateInstalled(Weights.KnownWeights.Get(variant));
        if (weightsPath is not null)
        {
            weights = VggWeights.Load(weightsPath, options.Variant);
            var missing = VggLayout.ExpectedKeys(options.Variant, deepest).Where(k => !weights.Tensors.ContainsKey(k.Key)).Select(k => k.Key).ToList();
            if (missing.Count > 0)
                throw new InvalidDataException(
                    $"'{weights.Path}' lacks {missing.Count} key(s) needed for {variant} up to {Layers[Array.IndexOf(_indices, deepest)]} " +
                    $"(features[{deepest}]): {string.Join(", ", missing)}. Keys present: {VggWeights.Sample(weights.Tensors.Keys)}.");
        }
        else if (!options.AllowRandomWeights)
        {
            var entry = Weights.KnownWeights.Get(variant);
            throw new McirException(
                $"VGG embedding ({variant}): no weights_path given, ${entry.EnvironmentVariable} is not set and the weights cache has no " +
                $"{entry.FileName}. The method needs ImageNet weights: torchvision's " +
                $"'{VggLayout.TorchvisionFileName(options.Variant)}' (or a .safetensors conversion); {VggWeights.FetchHint(options.Variant)}. " +
                "Random weights are refused unless the config sets allow_random_weights: true (for tests only — not the method).");
        }

        Network = new VggFeatureNet(options.Variant, deepest);
        using (torch.no_grad())
        {
            if (weights is not null)
            {
                foreach (var (key, p) in Network.named_parameters())
                    p.copy_(weights.Tensors[key]);
                WeightsDescription = $"{variant} torchvision weights from {weights.Path} ({weights.Format}), layers {string.Join(", ", Layers)}, normalize {options.Normalize}";
            }
            else
            {
                RandomInit(Network, options.RandomSeed);
                WeightsDescription = $"{variant}: {RandomWeightsMarker} (seed {options.RandomSeed}), layers {string.Join(", ", Layers)}, normalize {options.Normalize}";
            }
        }
        foreach (var p in Network.parameters()) p.requires_grad = false;
        Network.eval();

        _mean = torch.tensor(ImageNetMean).reshape(1, 3, 1, 1).DetachFromDisposeScope();
        _std = torch.tensor(ImageNetStd).reshape(1, 3, 1, 1).DetachFromDisposeScope();
    }

    /// <summary>The options used.</summary>
    public VggEmbeddingOptions Options { get; }

    /// <summary>"vgg16" or "vgg19".</summary>
    public string Name => VggLayout.VariantName(Options.Variant);

    /// <inheritdoc />
    public IReadOnlyList<string> Layers { get; }

    /// <summary>torchvision feature indices of <see cref="Layers"/>.</summary>
    public IReadOnlyList<int> FeatureIndices => _indices;

    /// <inheritdoc />
    public string WeightsDescription { get; }

    /// <summary>True when the weights are random (allowed explicitly).</summary>
    public bool UsesRandomWeights => WeightsDescription.Contains(RandomWeightsMarker, StringComparison.Ordinal);

    /// <summary>The truncated torchvision-layout network (frozen, eval mode).</summary>
    public VggFeatureNet Network { get; }

    /// <summary>Moves the network to <paramref name="device"/>.</summary>
    public VggEmbedding To(Device device)
    {
        Network.to(device);
        foreach (var p in Network.parameters()) p.requires_grad = false;
        return this;
    }

    /// <inheritdoc />
    public IReadOnlyList<Tensor> Extract(Tensor rgb)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (rgb.dim() != 4 || rgb.shape[1] != 3)
            throw new ArgumentException($"VGG embedding expects RGB [B, 3, H, W], got {VggWeights.Shape(rgb.shape)}.", nameof(rgb));
        if (Network.training) Network.eval();
        using var scope = torch.NewDisposeScope();
        Tensor x = rgb;
        if (Options.Normalize)
        {
            // Device objects are not compared by value: compare type and index.
            if (_mean.device_type != rgb.device_type || _mean.device_index != rgb.device_index || _mean.dtype != rgb.dtype)
            {
                var m = _mean.to(rgb.dtype, rgb.device).DetachFromDisposeScope();
                var s = _std.to(rgb.dtype, rgb.device).DetachFromDisposeScope();
                _mean.Dispose(); _std.Dispose();
                _mean = m; _std = s;
            }
            x = (rgb - _mean) / _std;
        }
        var outs = Network.Run(Compute.ConvolutionLayout.ForEmbedding(x), _indices);
        foreach (var o in outs.Distinct()) o.MoveToOuterDisposeScope();
        return outs;
    }

    /// <summary>torchvision's VGG init: kaiming normal (fan_out, relu) for conv weights, zero biases; seeded.</summary>
    private static void RandomInit(VggFeatureNet net, ulong seed)
    {
        var g = new Generator(seed);
        foreach (var (name, p) in net.named_parameters())
        {
            if (name.EndsWith(".bias", StringComparison.Ordinal)) { p.zero_(); continue; }
            long fanOut = p.shape[0] * p.shape[2] * p.shape[3];
            using var r = torch.randn(p.shape, generator: g);
            p.copy_(r.mul_(Math.Sqrt(2.0 / fanOut)));
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Network.Dispose();
        _mean.Dispose();
        _std.Dispose();
    }
}
