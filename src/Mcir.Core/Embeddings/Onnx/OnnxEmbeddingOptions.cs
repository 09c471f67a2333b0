namespace Mcir.Core.Embeddings.Onnx;

/// <summary>
/// How an embedding turns its RGB input in [0, 1] into what the ONNX network expects:
/// x' = (reorder(x) · <see cref="Scale"/> − <see cref="Mean"/>) / <see cref="Std"/>, with <see cref="Mean"/> and
/// <see cref="Std"/> given in the network's channel order (after the optional RGB → BGR reorder).
/// </summary>
public sealed record OnnxInputNormalization
{
    /// <summary>Reorder the channels RGB → BGR before scaling (Caffe/CNTK-style models).</summary>
    public bool Bgr { get; init; }

    /// <summary>Multiplies the [0, 1] input (255 for models trained on 0–255 pixels).</summary>
    public double Scale { get; init; } = 1.0;

    /// <summary>Per-channel value subtracted after scaling (network channel order).</summary>
    public IReadOnlyList<double> Mean { get; init; } = [0.0, 0.0, 0.0];

    /// <summary>Per-channel divisor applied after the mean (network channel order).</summary>
    public IReadOnlyList<double> Std { get; init; } = [1.0, 1.0, 1.0];

    /// <summary>No change: the network takes RGB in [0, 1].</summary>
    public static OnnxInputNormalization None { get; } = new();

    /// <summary>torchvision's ImageNet normalisation: RGB, mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225).</summary>
    public static OnnxInputNormalization ImageNet { get; } = new() { Mean = [0.485, 0.456, 0.406], Std = [0.229, 0.224, 0.225] };

    /// <summary>One line for logs.</summary>
    public string Describe() =>
        $"RGB[0,1]{(Bgr ? " → BGR" : "")}{(Scale != 1 ? $" × {Scale:G}" : "")}" +
        (Mean.Any(m => m != 0) ? $" − ({string.Join(", ", Mean.Select(m => m.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture)))})" : "") +
        (Std.Any(s => s != 1) ? $" ÷ ({string.Join(", ", Std.Select(m => m.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture)))})" : "");
}

/// <summary>Configuration of the ONNX embeddings (<c>resnet18-imagenet</c> and <c>onnx</c>).</summary>
public sealed record OnnxEmbeddingOptions
{
    /// <summary>
    /// The .onnx file (or a directory holding it). Required for <c>onnx</c>; for <c>resnet18-imagenet</c> it overrides the
    /// copy found next to the application or in the NuGet package folder.
    /// </summary>
    public string? ModelPath { get; init; }

    /// <summary>
    /// Feature layers returned by Extract, in that order: node output names (e.g. <c>ReLU283_Output_0</c>) or, for
    /// <c>resnet18-imagenet</c>, the aliases stem, layer1 … layer4 (and block aliases layer1.0 …). Null = the embedding's
    /// default (resnet18-imagenet: stem, layer1, layer2).
    /// </summary>
    public IReadOnlyList<string>? Layers { get; init; }

    /// <summary>Input normalisation. Null = the embedding's default (resnet18-imagenet: the package's preprocessing; onnx: none).</summary>
    public OnnxInputNormalization? Normalization { get; init; }

    /// <summary>
    /// resnet18-imagenet only: the package's <c>ResNetPreprocess.onnx</c>, read for its per-channel BGR means. Null = found
    /// next to the model; if absent, the built-in means (103.06, 115.90, 123.15) are used.
    /// </summary>
    public string? PreprocessPath { get; init; }

    /// <summary>Fold each inference BatchNormalization into its Conv (same function, faster).</summary>
    public bool FoldBatchNorm { get; init; } = true;

    /// <summary>The registered name reported by the embedding (default: the name it was created under).</summary>
    public string? Name { get; init; }
}
