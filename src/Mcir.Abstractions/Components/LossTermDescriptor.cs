using Mcir.Abstractions.Losses;

namespace Mcir.Abstractions.Components;

/// <summary>
/// A registered <see cref="ILossTerm"/>: name, description, options type with defaults and a factory. Register it with
/// <see cref="Microsoft.Extensions.DependencyInjection.McirComponentServiceCollectionExtensions.AddMcirLossTerm"/>; a
/// configuration names it in <c>loss.reconstruction</c> and overrides its defaults in <c>loss.reconstruction_options</c>.
/// </summary>
/// <remarks>
/// A reconstruction term reports its (weighted) value in <see cref="LossResult.Parts"/> under its own
/// <see cref="ILossTerm.Name"/>: the collapse guard and the logs read it there. A term that owns native resources
/// implements <see cref="IDisposable"/>; the run disposes it.
/// </remarks>
public sealed class LossTermDescriptor : ComponentDescriptor<ILossTerm>
{
    /// <summary>Describes a loss term; prefer <see cref="Of{TLoss, TOptions}"/>, which checks the options type.</summary>
    /// <param name="name">Registered name (lower kebab case, e.g. <c>"charbonnier"</c>).</param>
    /// <param name="description">One-line description; may be empty.</param>
    /// <param name="componentType">The class the factory builds.</param>
    /// <param name="optionsType">The type of the options the factory takes.</param>
    /// <param name="defaultOptions">The default options, an instance of <paramref name="optionsType"/>.</param>
    /// <param name="create">Builds the loss term from an options instance.</param>
    public LossTermDescriptor(string name, string description, Type componentType, Type optionsType, object defaultOptions,
        Func<object, ILossTerm> create)
        : base(name, description, componentType, optionsType, defaultOptions, create)
    {
    }

    /// <summary>The kind constant, <c>"loss term"</c>.</summary>
    public const string KindName = "loss term";

    /// <inheritdoc />
    public override string Kind => KindName;

    /// <summary>Describes <typeparamref name="TLoss"/>, built from <typeparamref name="TOptions"/>.</summary>
    /// <typeparam name="TLoss">The loss term class.</typeparam>
    /// <typeparam name="TOptions">Its options type (a record with defaults, bound from snake_case configuration keys).</typeparam>
    /// <param name="name">Registered name (lower kebab case).</param>
    /// <param name="description">One-line description; may be empty.</param>
    /// <param name="defaultOptions">The default options.</param>
    /// <param name="factory">Builds the loss term from typed options.</param>
    /// <returns>A descriptor whose <see cref="ComponentDescriptor{TComponent}.Create"/> rejects options of another type.</returns>
    public static LossTermDescriptor Of<TLoss, TOptions>(string name, string description, TOptions defaultOptions,
        Func<TOptions, TLoss> factory)
        where TLoss : ILossTerm
        where TOptions : notnull =>
        new(name, description, typeof(TLoss), typeof(TOptions), defaultOptions, Typed<TOptions>(name, o => factory(o)));
}
