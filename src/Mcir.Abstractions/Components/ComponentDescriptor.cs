namespace Mcir.Abstractions.Components;

/// <summary>
/// The common part of the degradation, loss-term, data-set-layout and embedding descriptors: kind, name, description,
/// options type with defaults, and a factory that builds a <typeparamref name="TComponent"/> from options.
/// </summary>
/// <typeparam name="TComponent">What the factory builds (<see cref="IDegradation"/>, an <c>ILossTerm</c>).</typeparam>
public abstract class ComponentDescriptor<TComponent> : IComponentDescriptor
    where TComponent : class
{
    /// <summary>Checks and stores the description of one component.</summary>
    /// <param name="name">Registered name (lower kebab case).</param>
    /// <param name="description">One-line description; may be empty.</param>
    /// <param name="componentType">The class the factory builds.</param>
    /// <param name="optionsType">The type of the options the factory takes.</param>
    /// <param name="defaultOptions">The default options, an instance of <paramref name="optionsType"/>.</param>
    /// <param name="create">Builds the component from an options instance.</param>
    /// <exception cref="ArgumentException">The name is empty or the default options have the wrong type.</exception>
    protected ComponentDescriptor(string name, string description, Type componentType, Type optionsType, object defaultOptions,
        Func<object, TComponent> create)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(description);
        ArgumentNullException.ThrowIfNull(componentType);
        ArgumentNullException.ThrowIfNull(optionsType);
        ArgumentNullException.ThrowIfNull(defaultOptions);
        ArgumentNullException.ThrowIfNull(create);
        if (!optionsType.IsInstanceOfType(defaultOptions))
            throw new ArgumentException(
                $"Default options of '{name}' are a {defaultOptions.GetType().FullName}, not a {optionsType.FullName}.", nameof(defaultOptions));
        Name = name;
        Description = description;
        ComponentType = componentType;
        OptionsType = optionsType;
        DefaultOptions = defaultOptions;
        Create = create;
    }

    /// <inheritdoc />
    public abstract string Kind { get; }

    /// <inheritdoc />
    public string Name { get; }

    /// <inheritdoc />
    public string Description { get; }

    /// <inheritdoc />
    public Type ComponentType { get; }

    /// <inheritdoc />
    public Type OptionsType { get; }

    /// <inheritdoc />
    public object DefaultOptions { get; }

    /// <summary>Builds a new component from an options instance of type <see cref="OptionsType"/>; the caller owns it.</summary>
    public Func<object, TComponent> Create { get; }

    /// <summary>Builds the component with <see cref="DefaultOptions"/>.</summary>
    public TComponent CreateDefault() => Create(DefaultOptions);

    /// <summary>Name and class, e.g. <c>gaussian-noise (Mcir.Core.Data.Degradations.GaussianNoiseDegradation)</c>.</summary>
    public override string ToString() => $"{Name} ({ComponentType.FullName})";

    /// <summary>Wraps a typed factory so that options of another type are rejected with a message naming both types.</summary>
    /// <typeparam name="TOptions">The options type the factory takes.</typeparam>
    /// <param name="name">The component's name, for the message.</param>
    /// <param name="factory">The typed factory.</param>
    protected static Func<object, TComponent> Typed<TOptions>(string name, Func<TOptions, TComponent> factory)
    {
        ArgumentNullException.ThrowIfNull(factory);
        return options => options is TOptions typed
            ? factory(typed)
            : throw new ArgumentException(
                $"'{name}' takes options of type {typeof(TOptions).FullName}, not {options?.GetType().FullName ?? "null"}.", nameof(options));
    }
}
