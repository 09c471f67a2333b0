namespace Mcir.Abstractions.Components;

/// <summary>
/// A registered <see cref="IDegradation"/>: name, description, options type with defaults and a factory. Register it with
/// <see cref="Microsoft.Extensions.DependencyInjection.McirComponentServiceCollectionExtensions.AddMcirDegradation"/>; a
/// <c>degraded-folder</c> data set names it in <c>degradation.name</c> and overrides its defaults in
/// <c>degradation.options</c> (snake_case keys of the options type).
/// </summary>
public sealed class DegradationDescriptor : ComponentDescriptor<IDegradation>
{
    /// <summary>Describes a degradation; prefer <see cref="Of{TDegradation, TOptions}"/>, which checks the options type.</summary>
    /// <param name="name">Registered name (lower kebab case, e.g. <c>"gaussian-noise"</c>).</param>
    /// <param name="description">One-line description; may be empty.</param>
    /// <param name="componentType">The class the factory builds.</param>
    /// <param name="optionsType">The type of the options the factory takes.</param>
    /// <param name="defaultOptions">The default options, an instance of <paramref name="optionsType"/>.</param>
    /// <param name="create">Builds the degradation from an options instance.</param>
    public DegradationDescriptor(string name, string description, Type componentType, Type optionsType, object defaultOptions,
        Func<object, IDegradation> create)
        : base(name, description, componentType, optionsType, defaultOptions, create)
    {
    }

    /// <summary>The kind constant, <c>"degradation"</c>.</summary>
    public const string KindName = "degradation";

    /// <inheritdoc />
    public override string Kind => KindName;

    /// <summary>Describes <typeparamref name="TDegradation"/>, built from <typeparamref name="TOptions"/>.</summary>
    /// <typeparam name="TDegradation">The degradation class.</typeparam>
    /// <typeparam name="TOptions">Its options type (a record with defaults, bound from snake_case configuration keys).</typeparam>
    /// <param name="name">Registered name (lower kebab case).</param>
    /// <param name="description">One-line description; may be empty.</param>
    /// <param name="defaultOptions">The default options.</param>
    /// <param name="factory">Builds the degradation from typed options.</param>
    /// <returns>A descriptor whose <see cref="ComponentDescriptor{TComponent}.Create"/> rejects options of another type.</returns>
    public static DegradationDescriptor Of<TDegradation, TOptions>(string name, string description, TOptions defaultOptions,
        Func<TOptions, TDegradation> factory)
        where TDegradation : IDegradation
        where TOptions : notnull =>
        new(name, description, typeof(TDegradation), typeof(TOptions), defaultOptions, Typed<TOptions>(name, o => factory(o)));
}
