using Mcir.Abstractions.Models;
using Mcir.Plugins.SuperResolution;
using Microsoft.Extensions.DependencyInjection;

namespace McirGenerated;

/// <summary>Registers, besides the generated model entries, the named EDSR presets (e.g. <c>edsr-light</c>).</summary>
internal sealed partial class PluginRegistrar
{
    partial void RegisterServices(IServiceCollection services)
    {
        // A preset is the same architecture under another name with other default options; "edsr" itself is the
        // generated descriptor.
        var edsr = Edsr.Descriptor;
        foreach (var (name, options) in Edsr.Presets.Where(p => p.Key != edsr.Name))
        {
            services.AddMcirModel(new ModelDescriptor(
                name, edsr.Tasks, $"EDSR preset: {options.NumFeat} features, {options.NumBlock} blocks, res_scale {options.ResScale}",
                edsr.ModelType, edsr.OptionsType, options, edsr.Create));
        }
    }
}
