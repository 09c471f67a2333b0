using Mcir.Abstractions.Components;
using Mcir.Abstractions.Models;
using Microsoft.Extensions.DependencyInjection;

namespace Mcir.Plugins.Deblurring.Tests;

public sealed class PluginRegistrarTests
{
    [Fact]
    public void RegistersNafnetItsSmallPresetAndThePsnrLoss()
    {
        var services = new ServiceCollection();
        new McirGenerated.PluginRegistrar().Register(services);
        var models = services.Select(static s => s.ImplementationInstance).OfType<ModelDescriptor>().ToDictionary(static d => d.Name);
        Assert.Equal(["nafnet", "nafnet-local", "nafnet-small", "nafnet-small-local"], models.Keys.Order(StringComparer.Ordinal));
        Assert.Same(NafnetOptions.Local, models["nafnet-local"].DefaultOptions);
        Assert.Same(NafnetOptions.SmallLocal, models["nafnet-small-local"].DefaultOptions);
        Assert.Contains("train_size [1, 3, 256, 256]", models["nafnet-local"].Description);
        Assert.Equal(new NafnetOptions(), models["nafnet"].DefaultOptions);
        Assert.Same(NafnetOptions.Small, models["nafnet-small"].DefaultOptions);
        Assert.Equal(["deblur"], models["nafnet-small"].Tasks);
        using var small = models["nafnet-small"].Create(models["nafnet-small"].DefaultOptions);
        Assert.Equal(8, Assert.IsType<Nafnet>(small).Options.Width);

        var losses = services.Select(static s => s.ImplementationInstance).OfType<LossTermDescriptor>().ToList();
        var psnr = Assert.Single(losses);
        Assert.Equal("psnr-loss", psnr.Name);
        Assert.Equal(new PsnrLossOptions(), psnr.DefaultOptions);
    }
}
