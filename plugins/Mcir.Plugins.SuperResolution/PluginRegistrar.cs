using Mcir.Abstractions.Models;
using Mcir.Plugins.SuperResolution;
using Microsoft.Extensions.DependencyInjection;

namespace McirGenerated;

/// <summary>Registers, besides the generated model entries, the named EDSR presets (e.g. <c>edsr-light</c>).</summary>
internal sealed partial class PluginRegistrar
{
    partial void RegisterServices(IServiceCollection services) =>
        services.AddMcirPresets(Edsr.Descriptor, Edsr.Presets,
            options => $"EDSR preset: {options.NumFeat} features, {options.NumBlock} blocks, res_scale {options.ResScale}")
            .AddMcirPresets(SwinIR.Descriptor, SwinIR.Presets, o => $"SwinIR preset: embed_dim {o.EmbedDim}, depths [{string.Join(", ", o.Depths)}], window {o.WindowSize}, {o.Upsampler} x{o.Upscale}");
}
