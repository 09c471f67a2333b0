using Mcir.Abstractions.Models;
using Mcir.Plugins.Deblurring;
using Microsoft.Extensions.DependencyInjection;

namespace McirGenerated;

/// <summary>Registers, besides the generated <c>nafnet</c> entry, the <c>nafnet-small</c>, <c>nafnet-local</c> and <c>nafnet-small-local</c> presets and the <c>psnr-loss</c> loss term.</summary>
internal sealed partial class PluginRegistrar
{
    partial void RegisterServices(IServiceCollection services)
    {
        services.AddMcirPresets(Nafnet.Descriptor, Nafnet.Presets, options =>
            $"NAFNet preset: width {options.Width}, encoder blocks [{string.Join(", ", options.EncBlkNums)}], " +
            $"{options.MiddleBlkNum} middle, decoder blocks [{string.Join(", ", options.DecBlkNums)}]" +
            (options.TrainSize is { } t ? $"; NAFNetLocal: local average pooling for train_size [{string.Join(", ", t)}] (the plain preset's weights)" : ""));
        services.AddMcirLossTerm(PsnrLoss.Descriptor);
    }
}
