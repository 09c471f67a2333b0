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
        // A preset is the same architecture under another name with other default options.
        var dncnn = DnCnn.Descriptor;
        foreach (var (name, options) in DnCnn.Presets.Where(p => p.Key != dncnn.Name))
        {
            services.AddMcirModel(new ModelDescriptor(
                name, dncnn.Tasks, $"DnCNN preset: {options.Features} features, depth {options.Depth}",
                dncnn.ModelType, dncnn.OptionsType, options, dncnn.Create));
        }

        services.AddMcirLossTerm(CharbonnierLoss.Descriptor);
        services.AddMcirDegradation(PoissonGaussianDegradation.Descriptor);
    }
}
