namespace Mcir.Abstractions.Components;

/// <summary>
/// What every named component (model, degradation, loss term, data set layout, embedding) describes about itself: its
/// kind, name, class, options type and defaults. Configurations name the component and override its options key by key.
/// Every kind is registered the same way (<c>services.AddMcirXxx(descriptor)</c>) and looked up through one
/// <see cref="ComponentRegistry{TDescriptor}"/>, which also holds the one duplicate-name check.
/// </summary>
public interface IComponentDescriptor
{
    /// <summary>What components of this kind are called in messages: <c>"model"</c>, <c>"degradation"</c>,
    /// <c>"loss term"</c>, <c>"data set layout"</c>, <c>"embedding"</c>. Names are unique within a kind.</summary>
    string Kind { get; }

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
