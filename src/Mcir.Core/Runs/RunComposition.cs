using System.Text.Json.Nodes;
using Mcir.Abstractions.Components;
using Mcir.Abstractions.Losses;
using Mcir.Abstractions.Models;
using Mcir.Core.Config;
using Mcir.Core.Data.Datasets;
using Mcir.Core.ModelContrast;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Runs;

/// <summary>
/// The registries a run resolves configured names in: models, degradations and loss terms (engine and plugins). The
/// host builds them from its service provider and passes them in; the engine never looks services up itself.
/// </summary>
public sealed record RunRegistries(
    IModelRegistry Models,
    IComponentRegistry<DegradationDescriptor> Degradations,
    IComponentRegistry<LossTermDescriptor> LossTerms);

/// <summary>
/// Turns configuration sections into engine components: the model, the degradation of a <c>degraded-folder</c> data set
/// and the reconstruction loss (by registered name), data sets, contrastive terms. A name that is not known is an
/// error listing the known ones.
/// </summary>
public static class RunComposition
{
    public static readonly IReadOnlyList<string> DatasetTypes = ["hr-folder", "paired-folder", "degraded-folder"];
    public static readonly IReadOnlyList<string> ContrastiveLosses = ["spn", "cr"];
    public static readonly IReadOnlyList<string> NegativeKinds = ["ema", "fixed-random", "fixed-pretrained"];
    public static readonly IReadOnlyList<string> Embeddings = ["vgg16", "vgg19", "resnet18-imagenet", "onnx"];

    /// <summary>Image files up to this total size are cached in memory when <c>cache_images</c> is not set.</summary>
    public const long AutoCacheBytes = 64L << 20;

    /// <summary>Whether the data set keeps decoded images in memory (<c>cache_images</c>, or the size rule when unset).</summary>
    public static bool CachesImages(DatasetSection s) => s.CacheImages ?? FolderBytes(s) <= AutoCacheBytes;

    private static long FolderBytes(DatasetSection s) =>
        new[] { s.DatarootGt, s.DatarootLq }.Where(Directory.Exists)
            .Sum(d => Directory.EnumerateFiles(d!).Where(f => Data.ImageFolder.Extensions.Contains(Path.GetExtension(f))).Sum(f => new FileInfo(f).Length));

    /// <summary>Binds the whole configuration (every key checked).</summary>
    public static RunConfig Bind(JsonObject root) => ConfigBinder.Bind<RunConfig>(root, "");

    /// <summary>The model's options: its defaults with the configuration's overrides applied key by key.</summary>
    public static object ModelOptions(ModelDescriptor model, JsonObject? overrides) =>
        BindOptions(model.DefaultOptions, model.OptionsType, overrides, "model.options", $"model '{model.Name}'");

    /// <summary>A component's options: its defaults with the overrides at <paramref name="where"/> applied key by key.</summary>
    public static object ComponentOptions(IComponentDescriptor component, JsonObject? overrides, string where) =>
        BindOptions(component.DefaultOptions, component.OptionsType, overrides, where, $"'{component.Name}'");

    private static object BindOptions(object defaults, Type optionsType, JsonObject? overrides, string where, string owner)
    {
        var merged = (JsonObject)ConfigBinder.ToJson(defaults);
        foreach (var (key, value) in overrides ?? [])
        {
            if (!merged.ContainsKey(key))
            {
                var keys = merged.Select(p => p.Key).ToList();
                var closest = ConfigBinder.Closest(key, keys);
                throw new McirException($"unknown configuration key '{where}.{key}' for {owner} ({(closest is null ? "valid keys: " + string.Join(", ", keys) : $"did you mean '{where}.{closest}'?")})");
            }
            merged[key] = value?.DeepClone();
        }
        return ConfigBinder.Bind(merged, optionsType, where);
    }

    /// <summary>The component registered as <paramref name="name"/>, else an error naming the key and the known names.</summary>
    public static T Resolve<T>(IComponentRegistry<T> registry, string name, string key) where T : IComponentDescriptor
    {
        if (string.IsNullOrWhiteSpace(name))
            throw new McirException($"{key} is missing (known {registry.Kind}s: {Known(registry)})");
        if (!registry.TryGet(name, out var descriptor))
            throw new McirException($"{key} '{name}' is not a registered {registry.Kind} (known: {Known(registry)}); load its plugin with --plugins or --plugin-dir");
        return descriptor;
    }

    private static string Known<T>(IComponentRegistry<T> r) where T : IComponentDescriptor =>
        r.All.Count == 0 ? "none" : string.Join(", ", r.All.Select(d => d.Name));

    /// <summary>The degradation of a <c>degraded-folder</c> data set, built from its options.</summary>
    public static IDegradation CreateDegradation(IComponentRegistry<DegradationDescriptor> registry, DegradationSection section, string where)
    {
        var descriptor = Resolve(registry, section.Name, $"{where}.name");
        var options = ComponentOptions(descriptor, section.Options, $"{where}.options");
        return Configured($"{where}.options", () => descriptor.Create(options));
    }

    /// <summary>
    /// Runs <paramref name="create"/>, a constructor fed from the configuration at <paramref name="where"/>: an
    /// <see cref="ArgumentException"/> it throws (how components refuse bad options) becomes an
    /// <see cref="McirException"/> naming the key path.
    /// </summary>
    public static T Configured<T>(string where, Func<T> create)
    {
        try { return create(); }
        catch (ArgumentException e)
        {
            string message = e.ParamName is { } p ? e.Message.Replace($" (Parameter '{p}')", "") : e.Message;
            throw new McirException($"{where}: {message.ReplaceLineEndings(" ")}", e);
        }
    }

    public static nn.Module<Tensor, Tensor> CreateModel(IModelRegistry registry, ModelSection section, out object options)
    {
        if (string.IsNullOrWhiteSpace(section.Name))
            throw new McirException($"model.name is missing (known models: {Known(registry)})");
        if (!registry.TryGet(section.Name, out var descriptor))
            throw new McirException($"model.name '{section.Name}' is not a registered model (known: {Known(registry)}); load its plugin with --plugins or --plugin-dir");
        var bound = options = ModelOptions(descriptor, section.Options);
        return Compute.ChannelsLast.ForConvolutions(Configured("model.options", () => descriptor.Create(bound)));
    }

    /// <summary>
    /// The evaluation model of <c>model.eval_name</c> (see <see cref="ModelSection.EvalName"/>), with
    /// <paramref name="trained"/>'s current weights; null when no other model is named.
    /// </summary>
    /// <exception cref="McirException">The name is not registered, or its state dict differs from the trained model's.</exception>
    public static nn.Module<Tensor, Tensor>? CreateEvalModel(IModelRegistry registry, ModelSection section, nn.Module<Tensor, Tensor> trained)
    {
        if (section.EvalName is not { Length: > 0 } name || name == section.Name) return null;
        if (!registry.TryGet(name, out var descriptor))
            throw new McirException($"model.eval_name '{name}' is not a registered model (known: {Known(registry)}); load its plugin with --plugins or --plugin-dir");
        var net = Compute.ChannelsLast.ForConvolutions(descriptor.Create(ModelOptions(descriptor, section.Options)));
        try
        {
            CopyWeights(trained, net, section);
            return net;
        }
        catch
        {
            net.Dispose();
            throw;
        }
    }

    /// <summary>Copies <paramref name="from"/>'s state dict into the evaluation model <paramref name="to"/> (same keys and shapes).</summary>
    /// <exception cref="McirException">The state dicts differ (the message lists how).</exception>
    public static void CopyWeights(nn.Module from, nn.Module to, ModelSection section)
    {
        using var scope = NewDisposeScope();
        Weights.StateDictLoader.Load(to, from.state_dict(), $"the trained model '{section.Name}' (model.eval_name '{section.EvalName}' must have the same state dict)");
    }

    private static string Known(IModelRegistry r) => r.Models.Count == 0 ? "none: no model plugin is loaded" : string.Join(", ", r.Models.Select(m => m.Name));

    public static IPairedDataset CreateDataset(DatasetSection s, string where, bool training, IComponentRegistry<DegradationDescriptor> degradations) =>
        Configured(where, () => CreateDatasetCore(s, where, training, degradations));

    private static IPairedDataset CreateDatasetCore(DatasetSection s, string where, bool training, IComponentRegistry<DegradationDescriptor> degradations)
    {
        if (string.IsNullOrWhiteSpace(s.DatarootGt))
            throw new McirException($"{where}.dataroot_gt is missing");
        if (s.Degradation is not null && s.Type != "degraded-folder")
            throw new McirException($"{where}.degradation is only used by data sets of type degraded-folder, this one is {s.Type}");
        var options = new PairedDatasetOptions
        {
            Scale = s.Scale,
            GtSize = training ? s.GtSize : null,
            UseHFlip = training && s.UseHflip,
            UseRot = training && s.UseRot,
            CacheImages = CachesImages(s),
        };
        IPairedDataset data = s.Type switch
        {
            "hr-folder" => new HrFolderDataset(s.DatarootGt, options),
            "paired-folder" => new PairedFolderDataset(s.DatarootGt,
                s.DatarootLq ?? throw new McirException($"{where}.dataroot_lq is missing (type paired-folder)"), options),
            "degraded-folder" => new DegradedFolderDataset(s.DatarootGt,
                CreateDegradation(degradations, s.Degradation ?? throw new McirException($"{where}.degradation is missing (type degraded-folder): give its name and options, e.g. {{\"name\": \"gaussian-noise\", \"options\": {{\"sigma\": 25}}}}"), $"{where}.degradation"),
                options, fixedSeed: training ? null : s.Degradation.Seed),
            _ => throw new McirException($"{where}.type '{s.Type}' is not a data set type (known: {string.Join(", ", DatasetTypes)})"),
        };
        return training && s.DatasetEnlargeRatio != 1 ? new RepeatedDataset(data, s.DatasetEnlargeRatio) : data;
    }

    /// <summary>
    /// The loss terms in order: the reconstruction term (a registered loss term), then SPN and CR when configured. Terms
    /// that own native resources are disposable.
    /// </summary>
    public static IReadOnlyList<ILossTerm> CreateLosses(LossSection s, IComponentRegistry<LossTermDescriptor> lossTerms)
    {
        var reconstruction = Resolve(lossTerms, s.Reconstruction, "loss.reconstruction");
        var reconstructionOptions = ComponentOptions(reconstruction, s.ReconstructionOptions, "loss.reconstruction_options");
        var terms = new List<ILossTerm> { Configured("loss.reconstruction_options", () => reconstruction.Create(reconstructionOptions)) };
        try
        {
            if (s.Spn is { } spn) terms.Add(Configured("loss.spn", () => SpnLoss.FromOptions(spn)));
            if (s.Cr is { } cr) terms.Add(Configured("loss.cr", () => new ContrastRegularizationLoss(cr)));
        }
        catch
        {
            foreach (var t in terms) (t as IDisposable)?.Dispose();
            throw;
        }
        return terms;
    }

    /// <summary>The dataset's display name: the configured one, else the GT folder's name.</summary>
    public static string DisplayName(DatasetSection s) =>
        s.Name ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(s.DatarootGt)));
}
