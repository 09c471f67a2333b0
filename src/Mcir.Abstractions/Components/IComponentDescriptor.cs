namespace Mcir.Abstractions.Components;

/// <summary>
/// What every named component (degradation, loss term) describes about itself: its name, its class, its options type
/// and defaults. Configurations name the component and override its options key by key.
/// </summary>
public interface IComponentDescriptor
{
    /// <summary>Registered name, used by configurations (lower kebab case, e.g. <c>"gaussian-noise"</c>).</summary>
    string Name { get; }

    /// <summary>One-line, human-readable description; may be empty.</summary>
    string Description { get; }

    /// <summary>The class the factory builds (its assembly is the component's owner).</summary>
    Type ComponentType { get; }

    /// <summary>The type of the options the factory takes.</summary>
    Type OptionsType { get; }

    /// <summary>The default options, an instance of <see cref="OptionsType"/>. Shared: treat it as read-only.</summary>
    object DefaultOptions { get; }
}
