using Mcir.Abstractions.Models;
using Mcir.Plugins.Denoising;
using Microsoft.Extensions.DependencyInjection;

namespace McirGenerated;

/// <summary>
/// Registers, besides the generated <c>dncnn</c> entry, the <c>dncnn-light</c> preset, the <c>charbonnier</c> loss term
/// and the <c>poisson-gaussian</c> degradation.
/// </summary>
internal sealed partial class PluginRegistrar
{
    partial void RegisterServices(IServiceCollection services)
    {
        services.AddMcirPresets(DnCnn.Descriptor, DnCnn.Presets, options => $"DnCNN preset: {options.Features} features, depth {options.Depth}");
        services.AddMcirLossTerm(CharbonnierLoss.Descriptor);
        services.AddMcirDegradation(PoissonGaussianDegradation.Descriptor);
    }
}
