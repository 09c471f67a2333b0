namespace Mcir.Abstractions.Models;

/// <summary>The models known to the host, by registered name (resolved from DI).</summary>
public interface IModelRegistry
{
    /// <summary>Every registered model, ordered by name.</summary>
    IReadOnlyList<ModelDescriptor> Models { get; }

    /// <summary>Finds a model by its registered name (case-sensitive).</summary>
    /// <param name="name">The registered name, e.g. <c>"edsr"</c>.</param>
    /// <param name="descriptor">The model's descriptor when found.</param>
    /// <returns>True when a model is registered under <paramref name="name"/>.</returns>
    bool TryGet(string name, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out ModelDescriptor descriptor);

    /// <summary>The model registered under <paramref name="name"/>.</summary>
    /// <param name="name">The registered name, e.g. <c>"edsr"</c>.</param>
    /// <returns>Its descriptor.</returns>
    /// <exception cref="KeyNotFoundException">Unknown name; the message lists the known names.</exception>
    ModelDescriptor Get(string name);
}
