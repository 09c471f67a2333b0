using Mcir.Abstractions.Components;

namespace Mcir.Abstractions.Models;

/// <summary>
/// The default <see cref="IModelRegistry"/>: every <see cref="ModelDescriptor"/> registered in the service collection
/// (see <see cref="Microsoft.Extensions.DependencyInjection.McirModelServiceCollectionExtensions.AddMcirModel"/>), a
/// <see cref="ComponentRegistry{TDescriptor}"/> of kind <c>"model"</c> like every other named kind.
/// </summary>
/// <param name="descriptors">The registered descriptors (the same descriptor registered twice counts once).</param>
/// <exception cref="DuplicateComponentException">Two different models share a name.</exception>
public sealed class ModelRegistry(IEnumerable<ModelDescriptor> descriptors)
    : ComponentRegistry<ModelDescriptor>(descriptors, ModelDescriptor.KindName), IModelRegistry
{
    /// <inheritdoc />
    public IReadOnlyList<ModelDescriptor> Models => All;

    /// <inheritdoc />
    public override string KnownNames() => All.Count == 0 ? "none (no model plugin loaded)" : base.KnownNames();
}
