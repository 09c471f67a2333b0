using System.Diagnostics.CodeAnalysis;

namespace Mcir.Abstractions.Components;

/// <summary>
/// The default <see cref="IComponentRegistry{TDescriptor}"/>: every descriptor of the kind registered in the service
/// collection, indexed by name. The same component registered twice under one name counts once; two different
/// components under one name are an error naming both classes and assemblies.
/// </summary>
/// <typeparam name="TDescriptor">The descriptor type of the kind.</typeparam>
public class ComponentRegistry<TDescriptor> : IComponentRegistry<TDescriptor>
    where TDescriptor : IComponentDescriptor
{
    private readonly Dictionary<string, TDescriptor> _byName = new(StringComparer.Ordinal);

    /// <summary>Indexes <paramref name="descriptors"/> by name (<see cref="ComponentNames.Unique{T}"/>: the owner of a
    /// component is its class's assembly).</summary>
    /// <param name="descriptors">The registered descriptors.</param>
    /// <param name="kind">What the components are called in messages, e.g. <c>"degradation"</c>.</param>
    /// <exception cref="DuplicateComponentException">Two different components share a name.</exception>
    public ComponentRegistry(IEnumerable<TDescriptor> descriptors, string kind)
    {
        ArgumentNullException.ThrowIfNull(descriptors);
        ArgumentException.ThrowIfNullOrWhiteSpace(kind);
        Kind = kind;
        foreach (var descriptor in ComponentNames.Unique(descriptors, d => Owner(d)))
            _byName.Add(descriptor.Name, descriptor);
        All = _byName.Values.OrderBy(d => d.Name, StringComparer.Ordinal).ToArray();
    }

    /// <inheritdoc />
    public string Kind { get; }

    /// <inheritdoc />
    public IReadOnlyList<TDescriptor> All { get; }

    /// <inheritdoc />
    public bool TryGet(string name, [MaybeNullWhen(false)] out TDescriptor descriptor) => _byName.TryGetValue(name, out descriptor);

    /// <inheritdoc />
    public TDescriptor Get(string name)
    {
        if (TryGet(name, out var descriptor))
            return descriptor;
        throw new KeyNotFoundException($"Unknown {Kind} '{name}'. Known {Kind}s: {KnownNames()}.");
    }

    /// <summary>The registered names, comma-separated, or <c>"none"</c> (a kind may say more, e.g. that no plugin is loaded).</summary>
    public virtual string KnownNames() => All.Count == 0 ? "none" : string.Join(", ", All.Select(d => d.Name));

    /// <summary>The class of a component and its assembly, e.g. <c>Ns.GaussianNoise (Mcir.Core)</c>.</summary>
    /// <param name="descriptor">The component.</param>
    public static string Owner(IComponentDescriptor descriptor)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        return $"{descriptor.ComponentType.FullName} ({descriptor.ComponentType.Assembly.GetName().Name})";
    }
}

/// <summary>The registered <see cref="DegradationDescriptor"/>s (kind <c>"degradation"</c>).</summary>
/// <param name="descriptors">The registered descriptors (from DI).</param>
public sealed class DegradationRegistry(IEnumerable<DegradationDescriptor> descriptors)
    : ComponentRegistry<DegradationDescriptor>(descriptors, "degradation");

/// <summary>The registered <see cref="LossTermDescriptor"/>s (kind <c>"loss term"</c>).</summary>
/// <param name="descriptors">The registered descriptors (from DI).</param>
public sealed class LossTermRegistry(IEnumerable<LossTermDescriptor> descriptors)
    : ComponentRegistry<LossTermDescriptor>(descriptors, "loss term");

/// <summary>The registered <see cref="DatasetLayoutDescriptor"/>s (kind <c>"data set layout"</c>).</summary>
/// <param name="descriptors">The registered descriptors (from DI).</param>
public sealed class DatasetLayoutRegistry(IEnumerable<DatasetLayoutDescriptor> descriptors)
    : ComponentRegistry<DatasetLayoutDescriptor>(descriptors, "data set layout");

/// <summary>The registered <see cref="EmbeddingDescriptor"/>s (kind <c>"embedding"</c>).</summary>
/// <param name="descriptors">The registered descriptors (from DI).</param>
public sealed class EmbeddingRegistry(IEnumerable<EmbeddingDescriptor> descriptors)
    : ComponentRegistry<EmbeddingDescriptor>(descriptors, EmbeddingDescriptor.KindName);

/// <summary>
/// The one rule for names, for every kind of component: within a kind a name belongs to one component. The same
/// component (same class, equal default options) registered twice by the same owner counts once; anything else under
/// one name is an error naming both owners.
/// </summary>
public static class ComponentNames
{
    /// <summary>The descriptors with repeated registrations of the same component collapsed, in their first order.</summary>
    /// <typeparam name="T">The descriptor type.</typeparam>
    /// <param name="descriptors">Every registration, possibly of several kinds (names are unique per <see cref="IComponentDescriptor.Kind"/>).</param>
    /// <param name="owner">Who registered a component, for the message and the same-owner rule (e.g. its assembly, a plugin file).</param>
    /// <exception cref="DuplicateComponentException">Two different components, or two owners, share a kind and a name.</exception>
    public static IReadOnlyList<T> Unique<T>(IEnumerable<T> descriptors, Func<T, string> owner) where T : IComponentDescriptor
    {
        ArgumentNullException.ThrowIfNull(descriptors);
        ArgumentNullException.ThrowIfNull(owner);
        var first = new Dictionary<(string Kind, string Name), (T Descriptor, string Owner)>();
        var unique = new List<T>();
        foreach (var d in descriptors)
        {
            string who = owner(d);
            if (first.TryGetValue((d.Kind, d.Name), out var seen))
            {
                if (seen.Owner == who && seen.Descriptor.ComponentType == d.ComponentType && Equals(seen.Descriptor.DefaultOptions, d.DefaultOptions))
                    continue;
                throw new DuplicateComponentException(d.Kind, d.Name, seen.Owner, who);
            }
            first.Add((d.Kind, d.Name), (d, who));
            unique.Add(d);
        }
        return unique;
    }
}

/// <summary>Two components registered under one name within a kind (<see cref="ComponentNames.Unique{T}"/>).</summary>
public sealed class DuplicateComponentException : InvalidOperationException
{
    /// <summary>Names the kind, the name and both owners.</summary>
    public DuplicateComponentException(string kind, string name, string firstOwner, string secondOwner)
        : base(SameOwner(firstOwner, secondOwner)
            ? $"{kind} '{name}' is registered twice by {firstOwner}, as two different components; give one of them another name"
            : $"{kind} '{name}' is registered twice: by {firstOwner} and by {secondOwner}; rename one or load only one of them")
    {
        Kind = kind;
        Name = name;
    }

    /// <summary>The kind, e.g. <c>"model"</c>.</summary>
    public string Kind { get; }

    /// <summary>The name registered twice.</summary>
    public string Name { get; }

    private static bool SameOwner(string a, string b) => a == b;
}
