using Mcir.Abstractions.Models;
using Mcir.Plugins.Dehazing;
using Microsoft.Extensions.DependencyInjection;

namespace McirGenerated;

/// <summary>Registers, besides the generated <c>ffa-net</c> entry, the <c>ffa-net-small</c> preset.</summary>
internal sealed partial class PluginRegistrar
{
    partial void RegisterServices(IServiceCollection services)
    {
        // A preset is the same architecture under another name with other default options; "ffa-net" itself is the
        // generated descriptor.
        var ffa = FfaNet.Descriptor;
        foreach (var (name, options) in FfaNet.Presets.Where(p => p.Key != ffa.Name))
        {
            services.AddMcirModel(new ModelDescriptor(
                name, ffa.Tasks,
                $"FFA-Net preset: {options.Gps} groups of {options.Blocks} block(s), {FfaNetOptions.Dim} channels, "
                + (options.NormalizeInput ? "MCLIR input normalisation" : "no input normalisation"),
                ffa.ModelType, ffa.OptionsType, options, ffa.Create));
        }
    }
}
