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
        Assert.Equal(["ffa-net", "ffa-net-small"], models.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(new FfaNetOptions(), models["ffa-net"].DefaultOptions);
        Assert.Same(FfaNetOptions.Small, models["ffa-net-small"].DefaultOptions);
        Assert.Equal(["dehaze"], models["ffa-net-small"].Tasks);
        Assert.Contains("1 block", models["ffa-net-small"].Description, StringComparison.Ordinal);
        using var small = models["ffa-net-small"].Create(models["ffa-net-small"].DefaultOptions);
        Assert.Equal(1, Assert.IsType<FfaNet>(small).Options.Blocks);
    }
}
