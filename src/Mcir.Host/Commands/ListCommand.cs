using System.CommandLine;
using Mcir.Abstractions.Components;
using Mcir.Abstractions.Models;
using Mcir.Core.Config;
using Mcir.Core.Runs;
using Microsoft.Extensions.DependencyInjection;

namespace Mcir.Host.Commands;

/// <summary><c>mcir-host list</c>: what the engine and the loaded plugins provide, with descriptors and owners.</summary>
internal static class ListCommand
{
    public static Command Create(HostConsole console)
    {
        var plugins = new PluginOptions();
        var command = new Command("list", "List the models (and other components) that the loaded plugins register");
        plugins.AddTo(command);
        command.SetAction(r =>
        {
            var loaded = plugins.Load(r);
            using var services = new ServiceCollection().AddMcirPlugins(loaded).BuildServiceProvider();
            var registry = services.GetRequiredService<IModelRegistry>();
            console.Out.WriteLine(loaded.Count == 0
                ? "plugins: none loaded"
                : "plugins: " + string.Join(", ", loaded.Select(p => $"{p.Name} ({p.Path})")));
            console.Out.WriteLine();
            console.Out.WriteLine("models:");
            if (registry.Models.Count == 0) console.Out.WriteLine("  (none)");
            foreach (var m in registry.Models)
            {
                console.Out.WriteLine($"  {m.Name}  [{string.Join(", ", m.Tasks)}]  {m.Description}");
                console.Out.WriteLine($"    class {m.ModelType.FullName} ({m.ModelType.Assembly.GetName().Name}), options {m.OptionsType.Name}, {m.ParameterCount:N0} parameters by default");
                console.Out.WriteLine($"    defaults {ConfigBinder.ToJson(m.DefaultOptions).ToJsonString()}");
                if (!m.TileSafe) console.Out.WriteLine($"    not tile-safe: {RestoreRun.TileSafetyReason(m)}");
            }
            ListComponents(console, "degradations (data.*.degradation.name, type degraded-folder)", services.GetRequiredService<IComponentRegistry<DegradationDescriptor>>());
            ListComponents(console, "data set layouts (data.*.type; also hr-folder and degraded-folder)", services.GetRequiredService<IComponentRegistry<DatasetLayoutDescriptor>>());
            var lossTerms = services.GetRequiredService<IComponentRegistry<LossTermDescriptor>>();
            ListComponents(console, "loss terms (loss.reconstruction)", lossTerms);
            ListComponents(console, "embeddings (loss.spn.embedding_type; also auto)", services.GetRequiredService<IComponentRegistry<EmbeddingDescriptor>>());
            console.Out.WriteLine();
            console.Out.WriteLine("built into the engine:");
            console.Out.WriteLine($"  data sets:        {string.Join(", ", RunComposition.GeneratedDatasetTypes)} (and the layouts above marked engine)");
            var engineTerms = lossTerms.All.Where(d => d.ComponentType.Assembly == typeof(RunComposition).Assembly).Select(d => d.Name);
            console.Out.WriteLine($"  loss terms:       {string.Join(", ", engineTerms.Concat(RunComposition.ContrastiveLosses))}");
            console.Out.WriteLine($"  negative sources: {string.Join(", ", RunComposition.NegativeKinds)} (model negatives); the degraded input (cr)");
            return 0;
        });
        return command;
    }

    // Name, owner (the engine or the plugin assembly), description and default options of every component of a kind.
    private static void ListComponents<T>(HostConsole console, string title, IComponentRegistry<T> registry) where T : IComponentDescriptor
    {
        console.Out.WriteLine();
        console.Out.WriteLine($"{title}:");
        if (registry.All.Count == 0) console.Out.WriteLine("  (none)");
        foreach (var d in registry.All)
        {
            var assembly = d.ComponentType.Assembly;
            string owner = assembly == typeof(RunComposition).Assembly ? "engine" : assembly.GetName().Name ?? "?";
            console.Out.WriteLine($"  {d.Name}  ({owner})  {d.Description}");
            console.Out.WriteLine($"    class {d.ComponentType.FullName}, options {d.OptionsType.Name}, defaults {ConfigBinder.ToJson(d.DefaultOptions).ToJsonString()}");
        }
    }
}
