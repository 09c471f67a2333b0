using Mcir.Abstractions.Models;
using Mcir.Plugins.Dehazing;
using Microsoft.Extensions.DependencyInjection;

namespace McirGenerated;

/// <summary>Registers, besides the generated <c>ffa-net</c> and <c>dehazeformer</c> entries, the <c>ffa-net-small</c> and
/// <c>dehazeformer-t/-s/-b/-m/-l</c> presets.</summary>
internal sealed partial class PluginRegistrar
{
    partial void RegisterServices(IServiceCollection services) =>
        services.AddMcirPresets(FfaNet.Descriptor, FfaNet.Presets,
            options => $"FFA-Net preset: {options.Gps} groups of {options.Blocks} block(s), {FfaNetOptions.Dim} channels, "
                + (options.NormalizeInput ? "MCLIR input normalisation" : "no input normalisation"))
            .AddMcirPresets(DehazeFormer.Descriptor, DehazeFormer.Presets,
                o => $"DehazeFormer preset: embed_dims [{string.Join(", ", o.EmbedDims)}], depths [{string.Join(", ", o.Depths)}], "
                    + $"attn_ratio [{string.Join(", ", o.AttnRatio)}], {o.ConvType[0]}, window {o.WindowSize}, "
                    + (o.InputRange == DehazeFormerInputRange.MinusOneOne ? "[-1, 1] mapping inside" : "bare network on [0, 1]"));
}
