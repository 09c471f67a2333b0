using System.Text.Json.Nodes;
using Mcir.Abstractions.Losses;
using Mcir.Abstractions.Models;
using Mcir.Core.Config;
using Mcir.Core.Data.Datasets;
using Mcir.Core.Losses;
using Mcir.Core.ModelContrast;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Runs;

/// <summary>
/// Turns configuration sections into engine components: the model (by registered name), data sets, loss terms.
/// A name that is not known is an error listing the known ones.
/// </summary>
public static class RunComposition
{
    public static readonly IReadOnlyList<string> DatasetTypes = ["hr-folder", "paired-folder"];
    public static readonly IReadOnlyList<string> ReconstructionLosses = ["l1"];
    public static readonly IReadOnlyList<string> ContrastiveLosses = ["spn", "cr"];
    public static readonly IReadOnlyList<string> NegativeKinds = ["ema", "fixed-random", "fixed-pretrained"];
    public static readonly IReadOnlyList<string> Embeddings = ["vgg16", "vgg19", "resnet18-imagenet", "onnx"];

    /// <summary>Binds the whole configuration (every key checked).</summary>
    public static RunConfig Bind(JsonObject root) => ConfigBinder.Bind<RunConfig>(root, "");

    /// <summary>The model's options: its defaults with the configuration's overrides applied key by key.</summary>
    public static object ModelOptions(ModelDescriptor model, JsonObject? overrides)
    {
        var merged = (JsonObject)ConfigBinder.ToJson(model.DefaultOptions);
        foreach (var (key, value) in overrides ?? [])
        {
            if (!merged.ContainsKey(key))
            {
                var keys = merged.Select(p => p.Key).ToList();
                var closest = ConfigBinder.Closest(key, keys);
                throw new McirException($"unknown configuration key 'model.options.{key}' for model '{model.Name}' ({(closest is null ? "valid keys: " + string.Join(", ", keys) : $"did you mean 'model.options.{closest}'?")})");
            }
            merged[key] = value?.DeepClone();
        }
        return ConfigBinder.Bind(merged, model.OptionsType, "model.options");
    }

    public static nn.Module<Tensor, Tensor> CreateModel(IModelRegistry registry, ModelSection section, out object options)
    {
        if (string.IsNullOrWhiteSpace(section.Name))
            throw new McirException($"model.name is missing (known models: {Known(registry)})");
        if (!registry.TryGet(section.Name, out var descriptor))
            throw new McirException($"model.name '{section.Name}' is not a registered model (known: {Known(registry)}); load its plugin with --plugins or --plugin-dir");
        options = ModelOptions(descriptor, section.Options);
        return descriptor.Create(options);
    }

    private static string Known(IModelRegistry r) => r.Models.Count == 0 ? "none: no model plugin is loaded" : string.Join(", ", r.Models.Select(m => m.Name));

    public static IPairedDataset CreateDataset(DatasetSection s, string where, bool training)
    {
        if (string.IsNullOrWhiteSpace(s.DatarootGt))
            throw new McirException($"{where}.dataroot_gt is missing");
        var options = new PairedDatasetOptions
        {
            Scale = s.Scale,
            GtSize = training ? s.GtSize : null,
            UseHFlip = training && s.UseHflip,
            UseRot = training && s.UseRot,
            CacheImages = true,
        };
        IPairedDataset data = s.Type switch
        {
            "hr-folder" => new HrFolderDataset(s.DatarootGt, options),
            "paired-folder" => new PairedFolderDataset(s.DatarootGt,
                s.DatarootLq ?? throw new McirException($"{where}.dataroot_lq is missing (type paired-folder)"), options),
            _ => throw new McirException($"{where}.type '{s.Type}' is not a data set type (known: {string.Join(", ", DatasetTypes)})"),
        };
        return training && s.DatasetEnlargeRatio != 1 ? new RepeatedDataset(data, s.DatasetEnlargeRatio) : data;
    }

    /// <summary>The loss terms in order (reconstruction first). Terms that own native resources are disposable.</summary>
    public static IReadOnlyList<ILossTerm> CreateLosses(LossSection s)
    {
        var terms = new List<ILossTerm>
        {
            s.Reconstruction switch
            {
                "l1" => new L1Loss(),
                _ => throw new McirException($"loss.reconstruction '{s.Reconstruction}' is not known (known: {string.Join(", ", ReconstructionLosses)})"),
            },
        };
        if (s.Spn is { } spn) terms.Add(SpnLoss.FromOptions(spn));
        if (s.Cr is { } cr) terms.Add(new ContrastRegularizationLoss(cr));
        return terms;
    }

    /// <summary>The dataset's display name: the configured one, else the GT folder's name.</summary>
    public static string DisplayName(DatasetSection s) =>
        s.Name ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(s.DatarootGt)));
}
