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

    /// <summary>Indexes <paramref name="descriptors"/> by name.</summary>
    /// <param name="descriptors">The registered descriptors.</param>
    /// <param name="kind">What the components are called in messages, e.g. <c>"degradation"</c>.</param>
    /// <exception cref="InvalidOperationException">Two different components share a name.</exception>
    public ComponentRegistry(IEnumerable<TDescriptor> descriptors, string kind)
    {
        ArgumentNullException.ThrowIfNull(descriptors);
        ArgumentException.ThrowIfNullOrWhiteSpace(kind);
        Kind = kind;
        foreach (var descriptor in descriptors)
        {
            if (_byName.TryGetValue(descriptor.Name, out var existing))
            {
                if (existing.ComponentType == descriptor.ComponentType && Equals(existing.DefaultOptions, descriptor.DefaultOptions))
                    continue;
                throw new InvalidOperationException(
                    $"Two {kind}s are registered as '{descriptor.Name}': {Owner(existing)} and {Owner(descriptor)}.");
            }

            _byName.Add(descriptor.Name, descriptor);
        }

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

    /// <summary>The registered names, comma-separated, or <c>"none"</c>.</summary>
    public string KnownNames() => All.Count == 0 ? "none" : string.Join(", ", All.Select(d => d.Name));

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
