using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Abstractions.Models;

/// <summary>
/// What the host knows about one registered architecture: its name, tasks, options type with defaults and a factory.
/// The <c>[McirModel]</c> source generator creates one per annotated class (its static <c>Descriptor</c> property,
/// built with <see cref="Of{TModel, TOptions}"/>).
/// </summary>
/// <remarks>
/// Equality compares <see cref="Name"/>, <see cref="Tasks"/> (in order), <see cref="Description"/>,
/// <see cref="ModelType"/>, <see cref="OptionsType"/>, <see cref="DefaultOptions"/>, <see cref="TileSafe"/> and
/// <see cref="TileSafetyNote"/>; the factory and the cached
/// parameter count are not compared. All properties are get-only, so a <c>with</c> expression yields an equal copy.
/// </remarks>
public sealed record ModelDescriptor : Components.IComponentDescriptor
{
    private readonly Lazy<long> _parameterCount;

    /// <summary>Describes a model; prefer <see cref="Of{TModel, TOptions}"/>, which checks the options type.</summary>
    /// <param name="name">Registered name (lower kebab case, e.g. <c>"edsr"</c>).</param>
    /// <param name="tasks">Tasks the model is meant for (e.g. <c>"sr"</c>).</param>
    /// <param name="description">One-line description; may be empty.</param>
    /// <param name="modelType">The network class.</param>
    /// <param name="optionsType">The type of the constructor's single options parameter.</param>
    /// <param name="defaultOptions">The default configuration, an instance of <paramref name="optionsType"/>.</param>
    /// <param name="create">Builds a new, randomly initialised network from an options instance.</param>
    /// <exception cref="ArgumentException">The name is empty or the default options have the wrong type.</exception>
    public ModelDescriptor(
        string name,
        IReadOnlyList<string> tasks,
        string description,
        Type modelType,
        Type optionsType,
        object defaultOptions,
        Func<object, nn.Module<Tensor, Tensor>> create)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(tasks);
        ArgumentNullException.ThrowIfNull(description);
        ArgumentNullException.ThrowIfNull(modelType);
        ArgumentNullException.ThrowIfNull(optionsType);
        ArgumentNullException.ThrowIfNull(defaultOptions);
        ArgumentNullException.ThrowIfNull(create);
        if (!optionsType.IsInstanceOfType(defaultOptions))
        {
            throw new ArgumentException(
                $"Default options of model '{name}' are a {defaultOptions.GetType().FullName}, not a {optionsType.FullName}.",
                nameof(defaultOptions));
        }

        Name = name;
        Tasks = tasks.ToArray();
        Description = description;
        ModelType = modelType;
        OptionsType = optionsType;
        DefaultOptions = defaultOptions;
        Create = create;
        _parameterCount = new Lazy<long>(CountDefaultParameters, LazyThreadSafetyMode.ExecutionAndPublication);
    }

    /// <summary>Registered name, used by configurations (e.g. <c>"edsr"</c>).</summary>
    public string Name { get; }

    /// <summary>Tasks the model is meant for (e.g. <c>"sr"</c>, <c>"denoise"</c>).</summary>
    public IReadOnlyList<string> Tasks { get; }

    /// <summary>One-line, human-readable description; may be empty.</summary>
    public string Description { get; }

    /// <summary>The network class.</summary>
    public Type ModelType { get; }

    /// <summary>The kind constant, <c>"model"</c>: models are named components like the others (one registry model,
    /// one duplicate-name rule: <see cref="Components.ComponentNames"/>).</summary>
    public const string KindName = "model";

    /// <inheritdoc />
    public string Kind => KindName;

    /// <inheritdoc />
    Type Components.IComponentDescriptor.ComponentType => ModelType;

    /// <summary>The type of the options the constructor takes.</summary>
    public Type OptionsType { get; }

    /// <summary>
    /// The default configuration (<c>new TOptions()</c>). Shared by every caller: treat it as read-only and derive
    /// variants with <c>with</c> expressions when the options are records.
    /// </summary>
    public object DefaultOptions { get; }

    /// <summary>
    /// Builds a new, randomly initialised network from an options instance of type <see cref="OptionsType"/>.
    /// The caller owns (and disposes) the returned module.
    /// </summary>
    public Func<object, nn.Module<Tensor, Tensor>> Create { get; }

    /// <summary>
    /// True (default) when the network's output at a pixel depends on a bounded neighbourhood of the input, so that
    /// tile-by-tile restoration agrees with the whole-image result away from the blend bands; false for networks with
    /// global statistics (see <see cref="McirModelAttribute.TileSafe"/>). The host warns when such a model is run with
    /// <c>--tile</c>.
    /// </summary>
    public bool TileSafe { get; init; } = true;

    /// <summary>Why the model is not tile-safe (one phrase, e.g. "global average pooling in its channel attention"); empty when it is.</summary>
    public string TileSafetyNote { get; init; } = "";

    /// <summary>
    /// Number of scalar parameters of the default configuration. Computed on first access by building the model
    /// with <see cref="DefaultOptions"/> (then disposed), and cached.
    /// </summary>
    public long ParameterCount => _parameterCount.Value;

    /// <summary>Builds the network with <see cref="DefaultOptions"/>. The caller owns the returned module.</summary>
    public nn.Module<Tensor, Tensor> CreateDefault() => Create(DefaultOptions);

    /// <summary>Describes <typeparamref name="TModel"/>, built from <typeparamref name="TOptions"/>.</summary>
    /// <typeparam name="TModel">The network class.</typeparam>
    /// <typeparam name="TOptions">The options type of its constructor.</typeparam>
    /// <param name="name">Registered name (lower kebab case).</param>
    /// <param name="tasks">Tasks the model is meant for.</param>
    /// <param name="description">One-line description; may be empty.</param>
    /// <param name="defaultOptions">The default configuration.</param>
    /// <param name="factory">Builds the network from typed options.</param>
    /// <returns>A descriptor whose <see cref="Create"/> rejects options of another type with a clear message.</returns>
    public static ModelDescriptor Of<TModel, TOptions>(
        string name,
        IReadOnlyList<string> tasks,
        string description,
        TOptions defaultOptions,
        Func<TOptions, TModel> factory)
        where TModel : nn.Module<Tensor, Tensor>
        where TOptions : notnull
    {
        ArgumentNullException.ThrowIfNull(factory);
        return new ModelDescriptor(
            name,
            tasks,
            description,
            typeof(TModel),
            typeof(TOptions),
            defaultOptions,
            options => options is TOptions typed
                ? factory(typed)
                : throw new ArgumentException(
                    $"Model '{name}' takes options of type {typeof(TOptions).FullName}, "
                    + $"not {options?.GetType().FullName ?? "null"}.",
                    nameof(options)));
    }

    /// <inheritdoc />
    public bool Equals(ModelDescriptor? other) =>
        other is not null
        && (ReferenceEquals(this, other)
            || (Name == other.Name
                && Description == other.Description
                && ModelType == other.ModelType
                && OptionsType == other.OptionsType
                && Tasks.SequenceEqual(other.Tasks)
                && Equals(DefaultOptions, other.DefaultOptions)
                && TileSafe == other.TileSafe
                && TileSafetyNote == other.TileSafetyNote));

    /// <inheritdoc />
    public override int GetHashCode() => HashCode.Combine(Name, ModelType, OptionsType);

    /// <summary>Name, model type and tasks; never builds the model (unlike <see cref="ParameterCount"/>).</summary>
    public override string ToString() =>
        $"{Name} ({ModelType.FullName}; tasks: {(Tasks.Count == 0 ? "-" : string.Join(", ", Tasks))})";

    private long CountDefaultParameters()
    {
        using var scope = torch.NewDisposeScope();
        using var model = Create(DefaultOptions);
        long total = 0;
        foreach (var parameter in model.parameters())
        {
            total += parameter.numel();
        }

        return total;
    }
}
