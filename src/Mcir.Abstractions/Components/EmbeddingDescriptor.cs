using Mcir.Abstractions.ModelContrast;

namespace Mcir.Abstractions.Components;

/// <summary>
/// A named feature embedding φ for the SPN term (<c>loss.spn.embedding_type</c>), registered with
/// <c>services.AddMcirEmbedding(descriptor)</c> like any other component. The engine registers <c>vgg</c>,
/// <c>resnet18-imagenet</c> and <c>onnx</c>; a plugin adds its own (e.g. a domain network) and a configuration picks
/// it by name, its options under <c>loss.spn.embedding_options</c>.
/// </summary>
/// <remarks>
/// The factory receives the options and the layers SPN compares (the keys of <c>loss.spn.layer_weights</c>, or
/// <see cref="DefaultLayerWeights"/> when the configuration gives none). The embedding runs in evaluation mode without
/// gradient to its own weights; SPN back-propagates through it to the restored image only.
/// </remarks>
public sealed class EmbeddingDescriptor : ComponentDescriptor<IFeatureEmbedding>
{
    /// <summary>The kind constant, <c>"embedding"</c>.</summary>
    public const string KindName = "embedding";

    /// <summary>Creates a descriptor; prefer <see cref="Of{TEmbedding, TOptions}"/>.</summary>
    /// <param name="name">Registered name (<c>loss.spn.embedding_type</c>).</param>
    /// <param name="description">One line for <c>mcir-host list</c>.</param>
    /// <param name="componentType">The embedding class.</param>
    /// <param name="optionsType">Its options record (snake_case keys in <c>loss.spn.embedding_options</c>).</param>
    /// <param name="defaultOptions">Defaults, an instance of <paramref name="optionsType"/>.</param>
    /// <param name="defaultLayerWeights">Layers and weights w_l used when the configuration names none; empty: the
    /// configuration must give <c>loss.spn.layer_weights</c>.</param>
    /// <param name="create">Builds the embedding from options and the layer names to extract, in order.</param>
    public EmbeddingDescriptor(string name, string description, Type componentType, Type optionsType, object defaultOptions,
        IReadOnlyDictionary<string, double> defaultLayerWeights, Func<object, IReadOnlyList<string>, IFeatureEmbedding> create)
        : base(name, description, componentType, optionsType, defaultOptions, NoLayers(name))
    {
        ArgumentNullException.ThrowIfNull(defaultLayerWeights);
        ArgumentNullException.ThrowIfNull(create);
        DefaultLayerWeights = defaultLayerWeights;
        CreateWithLayers = create;
    }

    /// <inheritdoc />
    public override string Kind => KindName;

    /// <summary>The layers (feature names) and weights w_l used when <c>loss.spn.layer_weights</c> is not given; may be empty.</summary>
    public IReadOnlyDictionary<string, double> DefaultLayerWeights { get; }

    /// <summary>Builds the embedding from its options and the layer names to extract (in the order given).</summary>
    /// <exception cref="ArgumentException">Options of the wrong type, or a layer the embedding does not have.</exception>
    public Func<object, IReadOnlyList<string>, IFeatureEmbedding> CreateWithLayers { get; }

    /// <summary>A descriptor for <typeparamref name="TEmbedding"/> with options <typeparamref name="TOptions"/>.</summary>
    public static EmbeddingDescriptor Of<TEmbedding, TOptions>(string name, string description, TOptions defaultOptions,
        IReadOnlyDictionary<string, double> defaultLayerWeights, Func<TOptions, IReadOnlyList<string>, TEmbedding> factory)
        where TEmbedding : IFeatureEmbedding
        where TOptions : notnull
    {
        ArgumentNullException.ThrowIfNull(factory);
        return new(name, description, typeof(TEmbedding), typeof(TOptions), defaultOptions!, defaultLayerWeights,
            (options, layers) => options is TOptions typed
                ? factory(typed, layers)
                : throw new ArgumentException($"'{name}' takes options of type {typeof(TOptions).FullName}, not {options?.GetType().FullName ?? "null"}.", nameof(options)));
    }

    // An embedding needs its layers: the one-argument factory of the base class names the two-argument one.
    private static Func<object, IFeatureEmbedding> NoLayers(string name) =>
        _ => throw new InvalidOperationException($"embedding '{name}': create it with {nameof(CreateWithLayers)}(options, layers)");
}
