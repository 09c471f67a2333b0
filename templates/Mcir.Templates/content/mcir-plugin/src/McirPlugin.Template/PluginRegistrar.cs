using McirPlugin.Template;
using Microsoft.Extensions.DependencyInjection;

namespace McirGenerated;

/// <summary>
/// The generated registrar (it already registers every <c>[McirModel]</c> of this assembly) plus this plugin's loss
/// term and degradation. Presets go here too: <c>services.AddMcirPresets(RestorationNet.Descriptor, presets, describe)</c>.
/// </summary>
internal sealed partial class PluginRegistrar
{
    partial void RegisterServices(IServiceCollection services)
    {
        services.AddMcirLossTerm(GradientL1Loss.Descriptor);
        services.AddMcirDegradation(BlockinessDegradation.Descriptor);
    }
}
