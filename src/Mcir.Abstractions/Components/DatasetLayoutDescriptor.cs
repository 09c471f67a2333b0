namespace Mcir.Abstractions.Components;

/// <summary>
/// A registered <see cref="IDatasetLayout"/>: name (the data set's <c>type</c>), description, options type with defaults
/// (bound from the data set's <c>options</c> object, snake_case keys) and a factory. Register it with
/// <see cref="Microsoft.Extensions.DependencyInjection.McirComponentServiceCollectionExtensions.AddMcirDatasetLayout"/>.
/// </summary>
public sealed class DatasetLayoutDescriptor : ComponentDescriptor<IDatasetLayout>
{
    /// <summary>Describes a layout; prefer <see cref="Of{TLayout, TOptions}"/>, which checks the options type.</summary>
    /// <param name="name">Registered name (lower kebab case, e.g. <c>"paired-folder"</c>).</param>
    /// <param name="description">One-line description; may be empty.</param>
    /// <param name="componentType">The class the factory builds.</param>
    /// <param name="optionsType">The type of the options the factory takes.</param>
    /// <param name="defaultOptions">The default options, an instance of <paramref name="optionsType"/>.</param>
    /// <param name="create">Builds the layout from an options instance.</param>
    public DatasetLayoutDescriptor(string name, string description, Type componentType, Type optionsType, object defaultOptions,
        Func<object, IDatasetLayout> create)
        : base(name, description, componentType, optionsType, defaultOptions, create)
    {
    }

    /// <summary>The kind constant, <c>"data set layout"</c>.</summary>
    public const string KindName = "data set layout";

    /// <inheritdoc />
    public override string Kind => KindName;

    /// <summary>Describes <typeparamref name="TLayout"/>, built from <typeparamref name="TOptions"/>.</summary>
    /// <typeparam name="TLayout">The layout class.</typeparam>
    /// <typeparam name="TOptions">Its options type (a record with defaults; an empty record when it has none).</typeparam>
    /// <param name="name">Registered name (lower kebab case).</param>
    /// <param name="description">One-line description; may be empty.</param>
    /// <param name="defaultOptions">The default options.</param>
    /// <param name="factory">Builds the layout from typed options.</param>
    /// <returns>A descriptor whose <see cref="ComponentDescriptor{TComponent}.Create"/> rejects options of another type.</returns>
    public static DatasetLayoutDescriptor Of<TLayout, TOptions>(string name, string description, TOptions defaultOptions,
        Func<TOptions, TLayout> factory)
        where TLayout : IDatasetLayout
        where TOptions : notnull =>
        new(name, description, typeof(TLayout), typeof(TOptions), defaultOptions, Typed<TOptions>(name, o => factory(o)));
}

/// <summary>Options of a layout that has none (no keys in the data set's <c>options</c>).</summary>
public sealed record NoLayoutOptions;
