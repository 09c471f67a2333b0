using Mcir.Abstractions.Models;
using Mcir.Plugins.Deblurring;
using Microsoft.Extensions.DependencyInjection;

namespace McirGenerated;

/// <summary>Registers, besides the generated <c>nafnet</c> entry, the <c>nafnet-small</c> preset and the <c>psnr-loss</c> loss term.</summary>
internal sealed partial class PluginRegistrar
{
    partial void RegisterServices(IServiceCollection services)
    {
        // A preset is the same architecture under another name with other default options; "nafnet" itself is the
        // generated descriptor.
        var nafnet = Nafnet.Descriptor;
        foreach (var (name, options) in Nafnet.Presets.Where(p => p.Key != nafnet.Name))
        {
            services.AddMcirModel(new ModelDescriptor(
                name, nafnet.Tasks,
                $"NAFNet preset: width {options.Width}, encoder blocks [{string.Join(", ", options.EncBlkNums)}], {options.MiddleBlkNum} middle, decoder blocks [{string.Join(", ", options.DecBlkNums)}]",
                nafnet.ModelType, nafnet.OptionsType, options, nafnet.Create));
        }

        services.AddMcirLossTerm(PsnrLoss.Descriptor);
    }
}
