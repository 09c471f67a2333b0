using System.Diagnostics.CodeAnalysis;

namespace Mcir.Abstractions.Components;

/// <summary>
/// The components of one kind known to the host, by registered name (resolved from DI):
/// <c>IComponentRegistry&lt;DegradationDescriptor&gt;</c>, <c>IComponentRegistry&lt;LossTermDescriptor&gt;</c>.
/// </summary>
/// <typeparam name="TDescriptor">The descriptor type of the kind.</typeparam>
public interface IComponentRegistry<TDescriptor>
    where TDescriptor : IComponentDescriptor
{
    /// <summary>What the components are called in messages, e.g. <c>"degradation"</c>, <c>"loss term"</c>.</summary>
    string Kind { get; }

    /// <summary>Every registered component, ordered by name.</summary>
    IReadOnlyList<TDescriptor> All { get; }

    /// <summary>Finds a component by its registered name (case-sensitive).</summary>
    /// <param name="name">The registered name.</param>
    /// <param name="descriptor">The component's descriptor when found.</param>
    /// <returns>True when a component is registered under <paramref name="name"/>.</returns>
    bool TryGet(string name, [MaybeNullWhen(false)] out TDescriptor descriptor);

    /// <summary>The component registered under <paramref name="name"/>.</summary>
    /// <param name="name">The registered name.</param>
    /// <returns>Its descriptor.</returns>
    /// <exception cref="KeyNotFoundException">Unknown name; the message lists the known names.</exception>
    TDescriptor Get(string name);
}
