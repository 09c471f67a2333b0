using Mcir.Abstractions.Components;
using Mcir.Core.Data.Datasets;
using Mcir.Core.Data.Degradations;
using Mcir.Core.Losses;

// ReSharper disable once CheckNamespace
namespace Microsoft.Extensions.DependencyInjection;

/// <summary>The engine's own named components, registered through the same DI path as a plugin's.</summary>
public static class McirEngineServiceCollectionExtensions
{
    /// <summary>The descriptor of the built-in <c>l1</c> reconstruction term.</summary>
    public static LossTermDescriptor L1 { get; } = LossTermDescriptor.Of<L1Loss, L1LossOptions>(
        "l1", "mean absolute error times weight (BasicSR L1Loss)", new L1LossOptions(), o => new L1Loss(o.Weight));

    /// <summary>The built-in data set layouts: <c>paired-folder</c>, <c>reside</c>, <c>rain200</c>, <c>ddn</c>, <c>did</c>, <c>spa</c>, <c>gopro</c>.</summary>
    public static IReadOnlyList<DatasetLayoutDescriptor> Layouts { get; } =
    [
        PairedFolderLayout.Descriptor, ResideLayout.Descriptor, Rain200Layout.Descriptor, DdnLayout.Descriptor,
        DidLayout.Descriptor, SpaLayout.Descriptor, GoProLayout.Descriptor,
    ];

    /// <summary>Registers the engine's named components: the degradations <c>bicubic</c> and <c>gaussian-noise</c>, the loss
    /// term <c>l1</c>, the <see cref="Layouts"/> and the SPN embeddings <c>vgg</c>, <c>resnet18-imagenet</c>, <c>onnx</c>.</summary>
    /// <param name="services">The service collection.</param>
    /// <returns><paramref name="services"/>, for chaining.</returns>
    public static IServiceCollection AddMcirEngineComponents(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services
            .AddMcirDegradation(BicubicDownscaleDegradation.Descriptor)
            .AddMcirDegradation(GaussianNoiseDegradation.Descriptor)
            .AddMcirLossTerm(L1);
        foreach (var layout in Layouts) services.AddMcirDatasetLayout(layout);
        foreach (var embedding in Mcir.Core.ModelContrast.SpnEmbeddingSelection.BuiltIn) services.AddMcirEmbedding(embedding);
        return services;
    }
}
