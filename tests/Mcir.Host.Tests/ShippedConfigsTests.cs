using Mcir.Abstractions.Models;
using Mcir.Core.Config;
using Mcir.Core.Runs;
using Mcir.Host.Plugins;
using Microsoft.Extensions.DependencyInjection;

namespace Mcir.Host.Tests;

/// <summary>
/// Every configuration under configs/ binds: known keys, known model, valid model options, known degradations and
/// reconstruction loss with valid options.
/// </summary>
public class ShippedConfigsTests
{
    // configs/** is copied next to the tests (see the project file).
    private static string RepoRoot() => AppContext.BaseDirectory;

    public static TheoryData<string> Configs()
    {
        var data = new TheoryData<string>();
        string root = RepoRoot();
        foreach (var f in Directory.GetFiles(Path.Combine(root, "configs"), "*.json", SearchOption.AllDirectories).Order())
            data.Add(Path.GetRelativePath(root, f));
        return data;
    }

    [Fact]
    public void GoProConfigTestsWithNafnetLocalAsNafnetsPublishedNumbers()
    {
        var config = RunComposition.Bind(ConfigBinder.Load(Path.Combine(RepoRoot(), "configs", "deblur", "nafnet-width32-gopro-spn.json")));
        Assert.Equal(("nafnet", "nafnet-local"), (config.Model.Name, config.Model.EvalName));
    }

    [Theory]
    [MemberData(nameof(Configs))]
    public void Binds(string relativePath)
    {
        var root = ConfigBinder.Load(Path.Combine(RepoRoot(), relativePath));
        var config = RunComposition.Bind(root);
        var plugins = PluginLoader.Load(PluginLoader.Discover(Path.Combine(AppContext.BaseDirectory, "plugins")));
        using var services = new ServiceCollection().AddMcirPlugins(plugins).BuildServiceProvider();
        var registry = services.GetRequiredService<IModelRegistry>();

        Assert.True(registry.TryGet(config.Model.Name, out var model), $"{relativePath}: model '{config.Model.Name}' is not registered");
        var options = RunComposition.ModelOptions(model!, config.Model.Options);
        Assert.IsType(model!.OptionsType, options);
        if (config.Model.EvalName is { Length: > 0 } evalName)
        {
            // The evaluation model exists and takes the trained model's state dict.
            using var trained = model.Create(options);
            using var eval = RunComposition.CreateEvalModel(registry, config.Model, trained, options);
            Assert.True(eval is not null, $"{relativePath}: model.eval_name '{evalName}'");
        }
        var registries = services.GetRunRegistries();
        var reconstruction = RunComposition.Resolve(registries.LossTerms, config.Loss.Reconstruction, "loss.reconstruction");
        Assert.IsType(reconstruction.OptionsType, RunComposition.ComponentOptions(reconstruction, config.Loss.ReconstructionOptions, "loss.reconstruction_options"));
        foreach (var set in config.Data.Test.Append(config.Data.Train).Concat(config.Data.Val is { } v ? [v] : []))
        {
            Assert.Contains(set.Type, RunComposition.DatasetTypes);
            Assert.Equal(set.Type == "degraded-folder", set.Degradation is not null);
            if (set.Degradation is not { } d) continue;
            var degradation = RunComposition.Resolve(registries.Degradations, d.Name, "degradation.name");
            Assert.IsType(degradation.OptionsType, RunComposition.ComponentOptions(degradation, d.Options, "degradation.options"));
        }
        config.Train.Validate();
        config.Negatives.Validate();
        Assert.Equal(Path.GetFileNameWithoutExtension(relativePath), config.Name.Replace("quickstart-", ""));
    }
}
