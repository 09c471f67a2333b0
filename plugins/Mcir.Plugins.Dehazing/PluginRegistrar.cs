using Mcir.Abstractions.Models;
using Mcir.Plugins.Dehazing;
using Microsoft.Extensions.DependencyInjection;

namespace McirGenerated;

/// <summary>Registers, besides the generated <c>ffa-net</c> entry, the <c>ffa-net-small</c> preset.</summary>
internal sealed partial class PluginRegistrar
{
    partial void RegisterServices(IServiceCollection services) =>
        services.AddMcirPresets(FfaNet.Descriptor, FfaNet.Presets,
            options => $"FFA-Net preset: {options.Gps} groups of {options.Blocks} block(s), {FfaNetOptions.Dim} channels, "
                + (options.NormalizeInput ? "MCLIR input normalisation" : "no input normalisation"));
}
