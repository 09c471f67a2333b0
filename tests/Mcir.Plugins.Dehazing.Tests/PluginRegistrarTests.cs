using Mcir.Abstractions.Models;
using Microsoft.Extensions.DependencyInjection;

namespace Mcir.Plugins.Dehazing.Tests;

public sealed class PluginRegistrarTests
{
    [Fact]
    public void RegistersFfaNetAndItsSmallPreset()
    {
        var services = new ServiceCollection();
        new McirGenerated.PluginRegistrar().Register(services);
        var models = services.Select(static s => s.ImplementationInstance).OfType<ModelDescriptor>().ToDictionary(static d => d.Name);
        Assert.Equal(["dehazeformer", "dehazeformer-b", "dehazeformer-l", "dehazeformer-m", "dehazeformer-s", "dehazeformer-t", "ffa-net", "ffa-net-small"],
            models.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(new FfaNetOptions(), models["ffa-net"].DefaultOptions);
        Assert.Same(FfaNetOptions.Small, models["ffa-net-small"].DefaultOptions);
        Assert.Equal(["dehaze"], models["ffa-net-small"].Tasks);
        Assert.Contains("1 block", models["ffa-net-small"].Description, StringComparison.Ordinal);
        using var small = models["ffa-net-small"].Create(models["ffa-net-small"].DefaultOptions);
        Assert.Equal(1, Assert.IsType<FfaNet>(small).Options.Blocks);
    }

    [Fact]
    public void RegistersDehazeFormerAndTheOfficialPresets()
    {
        var services = new ServiceCollection();
        new McirGenerated.PluginRegistrar().Register(services);
        var models = services.Select(static s => s.ImplementationInstance).OfType<ModelDescriptor>().ToDictionary(static d => d.Name);
        Assert.Equal(new DehazeFormerOptions(), models["dehazeformer"].DefaultOptions);
        foreach (var (name, options) in DehazeFormer.Presets)
        {
            Assert.Same(options, models[name].DefaultOptions);
            Assert.Equal(["dehaze"], models[name].Tasks);
            Assert.Equal(typeof(DehazeFormer), models[name].ModelType);
            Assert.Contains("[-1, 1] mapping inside", models[name].Description, StringComparison.Ordinal);
        }
        Assert.Contains("depths [4, 4, 4, 2, 2]", models["dehazeformer-t"].Description, StringComparison.Ordinal);
        Assert.Contains("Conv, window 8", models["dehazeformer-m"].Description, StringComparison.Ordinal);
        using var t = models["dehazeformer-t"].Create(models["dehazeformer-t"].DefaultOptions);
        Assert.Equal(687_404, Assert.IsType<DehazeFormer>(t).parameters().Sum(static p => p.numel()));
    }
}
