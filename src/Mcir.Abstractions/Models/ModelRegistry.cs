using System.Diagnostics.CodeAnalysis;

namespace Mcir.Abstractions.Models;

/// <summary>
/// The default <see cref="IModelRegistry"/>: every <see cref="ModelDescriptor"/> registered in the service collection
/// (see <see cref="Microsoft.Extensions.DependencyInjection.McirModelServiceCollectionExtensions.AddMcirModel"/>).
/// </summary>
public sealed class ModelRegistry : IModelRegistry
{
    private readonly Dictionary<string, ModelDescriptor> _byName = new(StringComparer.Ordinal);

    /// <summary>Indexes <paramref name="descriptors"/> by name.</summary>
    /// <param name="descriptors">The registered descriptors (the same descriptor registered twice counts once).</param>
    /// <exception cref="InvalidOperationException">Two different models share a name.</exception>
    public ModelRegistry(IEnumerable<ModelDescriptor> descriptors)
    {
        ArgumentNullException.ThrowIfNull(descriptors);
        foreach (var descriptor in descriptors)
        {
            if (_byName.TryGetValue(descriptor.Name, out var existing))
            {
                if (existing.ModelType == descriptor.ModelType)
                {
                    continue;
                }

                throw new InvalidOperationException(
                    $"Two models are registered as '{descriptor.Name}': {Describe(existing)} and {Describe(descriptor)}.");
            }

            _byName.Add(descriptor.Name, descriptor);
        }

        Models = _byName.Values.OrderBy(d => d.Name, StringComparer.Ordinal).ToArray();
    }

    /// <inheritdoc />
    public IReadOnlyList<ModelDescriptor> Models { get; }

    /// <inheritdoc />
    public bool TryGet(string name, [MaybeNullWhen(false)] out ModelDescriptor descriptor) =>
        _byName.TryGetValue(name, out descriptor);

    /// <inheritdoc />
    public ModelDescriptor Get(string name)
    {
        if (TryGet(name, out var descriptor))
        {
            return descriptor;
        }

        var known = Models.Count == 0 ? "none (no model plugin loaded)" : string.Join(", ", Models.Select(m => m.Name));
        throw new KeyNotFoundException($"Unknown model '{name}'. Known models: {known}.");
    }

    private static string Describe(ModelDescriptor d) => $"{d.ModelType.FullName} ({d.ModelType.Assembly.GetName().Name})";
}
