using Mcir.Abstractions.ModelContrast;

namespace Mcir.Core.Embeddings.Onnx;

/// <summary>
/// The registered ONNX embeddings: <c>resnet18-imagenet</c> (the offline ImageNet ResNet18 from NuGet, its own
/// preprocessing, aliases stem/layer1…layer4) and <c>onnx</c> (any file; layers are node output names, normalisation
/// from the config, default none).
/// </summary>
public static class OnnxEmbeddings
{
    /// <summary>Name of the generic embedding.</summary>
    public const string GenericName = "onnx";

    /// <summary>The names <see cref="Create"/> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } = [ResNet18ImageNet.Name, GenericName];

    /// <summary>True when <paramref name="name"/> is one of <see cref="Names"/> (case-insensitive).</summary>
    public static bool IsRegistered(string name) => Names.Contains(name, StringComparer.OrdinalIgnoreCase);

    /// <summary>Creates the embedding registered as <paramref name="name"/>.</summary>
    public static IFeatureEmbedding Create(string name, OnnxEmbeddingOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        options ??= new OnnxEmbeddingOptions();
        if (string.Equals(name, ResNet18ImageNet.Name, StringComparison.OrdinalIgnoreCase)) return ResNet18ImageNet.Create(options);
        if (string.Equals(name, GenericName, StringComparison.OrdinalIgnoreCase)) return CreateGeneric(options);
        throw new McirException($"unknown ONNX embedding '{name}'; registered: {string.Join(", ", Names)}.");
    }

    /// <summary>The <c>onnx</c> embedding: <see cref="OnnxEmbeddingOptions.ModelPath"/> and <see cref="OnnxEmbeddingOptions.Layers"/> are required.</summary>
    public static OnnxEmbedding CreateGeneric(OnnxEmbeddingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        string name = options.Name ?? GenericName;
        if (string.IsNullOrWhiteSpace(options.ModelPath))
            throw new McirException($"{name} embedding: model_path is required (the .onnx file).");
        if (options.Layers is not { Count: > 0 } layers)
            throw new McirException($"{name} embedding: layers are required (node output names of '{options.ModelPath}').");
        var model = OnnxReader.Load(options.ModelPath);
        var norm = options.Normalization ?? OnnxInputNormalization.None;
        string description = $"{name}: {model.Describe()}; layers {string.Join(", ", layers)}; input {norm.Describe()}";
        return new OnnxEmbedding(name, model, layers.ToArray(), layers.ToArray(), norm, options.FoldBatchNorm, description);
    }
}
