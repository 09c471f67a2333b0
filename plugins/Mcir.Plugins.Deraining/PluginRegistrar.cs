using Mcir.Abstractions.Models;
using Mcir.Plugins.Deraining;
using Microsoft.Extensions.DependencyInjection;

namespace McirGenerated;

/// <summary>Registers, besides the generated <c>idt</c> entry, the <c>idt-small</c> preset and the <c>ssim</c> loss term.</summary>
internal sealed partial class PluginRegistrar
{
    partial void RegisterServices(IServiceCollection services)
    {
        services.AddMcirPresets(Idt.Descriptor, Idt.Presets,
            o => $"IDT preset: embed_dim {o.EmbedDim}, img_size {o.ImgSize} (evaluated in {o.ImgSize}x{o.ImgSize} windows), win_size {o.WinSize}");
        services.AddMcirLossTerm(SsimLoss.Descriptor);
    }
}
