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
/// The registries a run resolves configured names in, one per named kind: models, degradations, loss terms, data set
/// layouts and SPN embeddings (engine and plugins). The host builds them from its service provider and passes them in;
/// the engine never looks services up itself. <paramref name="Layouts"/> / <paramref name="Embeddings"/> null: the
/// engine's built-in ones only.
/// </summary>
public sealed record RunRegistries(
    IModelRegistry Models,
    IComponentRegistry<DegradationDescriptor> Degradations,
    IComponentRegistry<LossTermDescriptor> LossTerms,
    IComponentRegistry<DatasetLayoutDescriptor>? Layouts = null,
    IComponentRegistry<EmbeddingDescriptor>? Embeddings = null);

/// <summary>
/// Turns configuration sections into engine components: the model, the degradation of a <c>degraded-folder</c> data set
/// and the reconstruction loss (by registered name), data sets, contrastive terms. A name that is not known is an
/// error listing the known ones.
/// </summary>
public static class RunComposition
{
    /// <summary>The data set types that make their inputs (not registered layouts): <c>hr-folder</c>, <c>degraded-folder</c>.</summary>
    public static readonly IReadOnlyList<string> GeneratedDatasetTypes = ["hr-folder", "degraded-folder"];

    /// <summary>Every data set type of the engine: <see cref="GeneratedDatasetTypes"/> and the built-in layouts.</summary>
    public static readonly IReadOnlyList<string> DatasetTypes =
        [.. GeneratedDatasetTypes, .. Microsoft.Extensions.DependencyInjection.McirEngineServiceCollectionExtensions.Layouts.Select(l => l.Name)];

    /// <summary>The engine's built-in layouts as a registry (used when <see cref="RunRegistries.Layouts"/> is null).</summary>
    public static IComponentRegistry<DatasetLayoutDescriptor> BuiltInLayouts { get; } =
        new DatasetLayoutRegistry(Microsoft.Extensions.DependencyInjection.McirEngineServiceCollectionExtensions.Layouts);

    /// <summary>Option keys that give a model's input channels, in the order they are tried (SwinIR/DehazeFormer, KAIR, BasicSR, DnCNN here, EDSR (EDSR-PyTorch)).</summary>
    public static readonly IReadOnlyList<string> InputChannelKeys = ["in_chans", "in_nc", "num_in_ch", "in_channels", "channels", "n_colors"];

    /// <summary>
    /// The number of channels <paramref name="net"/> takes: <see cref="IInputChannels.InputChannels"/> when the network
    /// implements it, else the first of <see cref="InputChannelKeys"/> in its options, else 3.
    /// </summary>
    /// <param name="net">The network.</param>
    /// <param name="options">Its options instance (as bound from the configuration).</param>
    /// <param name="source">Where the number came from, for messages (e.g. <c>model option 'channels'</c>).</param>
    public static int ModelInputChannels(nn.Module net, object? options, out string source)
    {
        if (net is IInputChannels declared)
        {
            source = $"{net.GetType().Name}.InputChannels";
            return declared.InputChannels;
        }
        if (options is not null && ConfigBinder.ToJson(options) is JsonObject json)
            foreach (var key in InputChannelKeys)
                if (json[key] is JsonValue v && v.TryGetValue<int>(out int c))
                {
                    source = $"model option '{key}'";
                    return c;
                }
        source = "no channel option: RGB assumed";
        return 3;
    }

    /// <summary>The model option that holds the SR scale (BasicSR's <c>network_g.upscale</c>: EDSR, SwinIR).</summary>
    public const string UpscaleKey = "upscale";

    /// <summary>
    /// The model's scale read from its options: the integer option <see cref="UpscaleKey"/>, or null when the model has
    /// no such option (same-size models) or it is not an integer. The one place the scale of a model is read.
    /// </summary>
    /// <param name="options">An options instance of a model (any type <see cref="ConfigBinder.ToJson"/> writes) or its JSON object.</param>
    public static int? ModelUpscale(object? options) =>
        OptionsJson(options) is { } json && json[UpscaleKey] is JsonValue v && v.TryGetValue(out int s) ? s : null;

    /// <summary>True when the options have the key <see cref="UpscaleKey"/> (whatever its value).</summary>
    public static bool HasUpscale(object? options) => OptionsJson(options)?.ContainsKey(UpscaleKey) == true;

    private static JsonObject? OptionsJson(object? options) => options switch
    {
        null => null,
        JsonObject o => o,
        _ => ConfigBinder.ToJson(options) as JsonObject,
    };

    /// <summary>
    /// The channels images are read with for a model taking <paramref name="modelChannels"/>: 1 or 3, the data set's
    /// <c>channels</c> when set; a mismatch is an error naming both.
    /// </summary>
    public static int DataChannels(DatasetSection s, string where, int modelChannels, string modelSource)
    {
        int data = s.Channels ?? modelChannels;
        if (data is not (1 or 3))
            throw new McirException(s.Channels is null
                ? $"the model takes {modelChannels} input channels ({modelSource}), but images are read with 1 (gray) or 3 (RGB) channels; set {where}.channels only when it matches the model"
                : $"{where}.channels {data}: expected 1 (gray) or 3 (RGB)");
        if (data != modelChannels)
            throw new McirException($"{where}.channels is {data} but the model takes {modelChannels} input channel{(modelChannels == 1 ? "" : "s")} ({modelSource}); make them equal (or remove {where}.channels: it follows the model)");
        return data;
    }
    public static readonly IReadOnlyList<string> ContrastiveLosses = ["spn", "cr"];
    public static readonly IReadOnlyList<string> NegativeKinds = ["ema", "fixed-random", "fixed-pretrained"];

    /// <summary>Image files up to this total size are cached in memory when <c>cache_images</c> is not set.</summary>
    public const long AutoCacheBytes = 64L << 20;

    /// <summary>Whether the data set keeps decoded images in memory (<c>cache_images</c>, or the size rule when unset).</summary>
    public static bool CachesImages(DatasetSection s) => s.CacheImages ?? FolderBytes(s) <= AutoCacheBytes;

    // Recursive: layouts such as gopro and did read sub-folders (an over-estimate for the others only turns caching off).
    private static long FolderBytes(DatasetSection s) =>
        new[] { s.DatarootGt, s.DatarootLq }.Where(Directory.Exists)
            .Sum(d => Directory.EnumerateFiles(d!, "*", SearchOption.AllDirectories).Where(f => Data.ImageFolder.Extensions.Contains(Path.GetExtension(f))).Sum(f => new FileInfo(f).Length));

    /// <summary>Binds the whole configuration (every key checked).</summary>
    public static RunConfig Bind(JsonObject root) => ConfigBinder.Bind<RunConfig>(root, "");

    /// <summary>The model's options: its defaults with the configuration's overrides applied key by key.</summary>
    public static object ModelOptions(ModelDescriptor model, JsonObject? overrides) => ConfigBinder.ComponentOptions(model, overrides, "model.options");

    /// <summary>A component's options: its defaults with the overrides at <paramref name="where"/> applied key by key.</summary>
    public static object ComponentOptions(IComponentDescriptor component, JsonObject? overrides, string where) =>
        ConfigBinder.ComponentOptions(component, overrides, where);

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
    /// <paramref name="trained"/>'s current weights; null when no other model is named. When both models share an options
    /// type, the evaluation model takes the trained model's options (<paramref name="trainedOptions"/>) with only what
    /// makes the evaluation variant different (its preset's values that differ from the type's defaults, e.g.
    /// <c>nafnet-local</c>'s <c>train_size</c>), so <c>model.name=nafnet-small</c> with <c>eval_name: nafnet-local</c>
    /// evaluates NAFNetLocal of the small network; otherwise its own defaults with <c>model.options</c>.
    /// </summary>
    /// <exception cref="McirException">The name is not registered, or its state dict differs from the trained model's.</exception>
    public static nn.Module<Tensor, Tensor>? CreateEvalModel(IModelRegistry registry, ModelSection section, nn.Module<Tensor, Tensor> trained, object? trainedOptions = null)
    {
        if (section.EvalName is not { Length: > 0 } name || name == section.Name) return null;
        if (!registry.TryGet(name, out var descriptor))
            throw new McirException($"model.eval_name '{name}' is not a registered model (known: {Known(registry)}); load its plugin with --plugins or --plugin-dir");
        object options = trainedOptions is not null && trainedOptions.GetType() == descriptor.OptionsType
            ? EvalVariantOf(trainedOptions, descriptor)
            : ModelOptions(descriptor, section.Options);
        var net = Compute.ChannelsLast.ForConvolutions(descriptor.Create(options));
        try
        {
            var device = Compute.TorchDevice.Of(trained);
            if (device.type != DeviceType.CPU) net.to(device); // scored on the trained model's device
            CopyWeights(trained, net, section);
            return net;
        }
        catch
        {
            net.Dispose();
            throw;
        }
    }

    /// <summary>The trained options with the evaluation preset's own values (those that differ from the options type's defaults).</summary>
    private static object EvalVariantOf(object trainedOptions, ModelDescriptor eval)
    {
        var typeDefaults = (JsonObject)ConfigBinder.ToJson(Activator.CreateInstance(eval.OptionsType)!);
        var variant = (JsonObject)ConfigBinder.ToJson(eval.DefaultOptions);
        var result = (JsonObject)ConfigBinder.ToJson(trainedOptions);
        foreach (var (key, value) in variant)
            if (!JsonNode.DeepEquals(value, typeDefaults[key]))
                result[key] = value?.DeepClone();
        return ConfigBinder.ComponentOptions(eval, result, "model.eval_name");
    }

    /// <summary>Copies <paramref name="from"/>'s state dict into the evaluation model <paramref name="to"/> (same keys and shapes).</summary>
    /// <exception cref="McirException">The state dicts differ (the message lists how).</exception>
    public static void CopyWeights(nn.Module from, nn.Module to, ModelSection section)
    {
        using var scope = NewDisposeScope();
        Weights.StateDictLoader.Load(to, from.state_dict(), $"the trained model '{section.Name}' (model.eval_name '{section.EvalName}' must have the same state dict)");
    }

    private static string Known(IModelRegistry r) => r.Models.Count == 0 ? "none: no model plugin is loaded" : string.Join(", ", r.Models.Select(m => m.Name));

    /// <summary>A data set of the engine's types with the built-in layouts, read with 3 channels (RGB).</summary>
    public static IPairedDataset CreateDataset(DatasetSection s, string where, bool training, IComponentRegistry<DegradationDescriptor> degradations) =>
        CreateDataset(s, where, training, degradations, BuiltInLayouts, channels: 3);

    /// <summary>
    /// A data set from its section: <c>hr-folder</c>, <c>degraded-folder</c>, or a registered layout named by <c>type</c>
    /// (its options from <c>options</c>), read with <paramref name="channels"/> (1 or 3, see <see cref="DataChannels"/>).
    /// </summary>
    /// <exception cref="McirException">A missing key, an unknown type, or files that do not pair (naming them and the rule).</exception>
    public static IPairedDataset CreateDataset(DatasetSection s, string where, bool training, IComponentRegistry<DegradationDescriptor> degradations,
        IComponentRegistry<DatasetLayoutDescriptor> layouts, int channels) =>
        Configured(where, () => CreateDatasetCore(s, where, training, degradations, layouts, channels));

    private static IPairedDataset CreateDatasetCore(DatasetSection s, string where, bool training, IComponentRegistry<DegradationDescriptor> degradations,
        IComponentRegistry<DatasetLayoutDescriptor> layouts, int channels)
    {
        ArgumentNullException.ThrowIfNull(layouts);
        if (string.IsNullOrWhiteSpace(s.DatarootGt))
            throw new McirException($"{where}.dataroot_gt is missing");
        if (s.Degradation is not null && s.Type != "degraded-folder")
            throw new McirException($"{where}.degradation is only used by data sets of type degraded-folder, this one is {s.Type}");
        bool generated = GeneratedDatasetTypes.Contains(s.Type);
        if (generated && s.Options is not null)
            throw new McirException($"{where}.options is only used by registered layouts, not by type {s.Type}");
        if (generated && (s.FilenameTmpl != "{}" || s.MetaInfoFile is not null))
            throw new McirException($"{where}.{(s.MetaInfoFile is not null ? "meta_info_file" : "filename_tmpl")} is not used by type {s.Type} (it pairs files: use paired-folder or another layout)");
        var options = new PairedDatasetOptions
        {
            Channels = channels,
            Scale = s.Scale,
            GtSize = training ? s.GtSize : null,
            UseHFlip = training && s.UseHflip,
            UseRot = training && s.UseRot,
            CacheImages = CachesImages(s),
        };
        IPairedDataset data = s.Type switch
        {
            "hr-folder" => new HrFolderDataset(s.DatarootGt, options),
            "degraded-folder" => new DegradedFolderDataset(s.DatarootGt,
                CreateDegradation(degradations, s.Degradation ?? throw new McirException($"{where}.degradation is missing (type degraded-folder): give its name and options, e.g. {{\"name\": \"gaussian-noise\", \"options\": {{\"sigma\": 25}}}}"), $"{where}.degradation"),
                options, fixedSeed: training ? null : s.Degradation.Seed),
            _ when layouts.TryGet(s.Type, out var layout) => CreateLayoutDataset(s, where, layout, options),
            _ => throw new McirException($"{where}.type '{s.Type}' is not a data set type (known: {string.Join(", ", GeneratedDatasetTypes.Concat(layouts.All.Select(l => l.Name)))}); load a plugin that registers it with --plugins or --plugin-dir"),
        };
        return training && s.DatasetEnlargeRatio != 1 ? new RepeatedDataset(data, s.DatasetEnlargeRatio) : data;
    }

    private static LayoutDataset CreateLayoutDataset(DatasetSection s, string where, DatasetLayoutDescriptor descriptor, PairedDatasetOptions options)
    {
        if (s.Type == "paired-folder" && s.DatarootLq is null)
            throw new McirException($"{where}.dataroot_lq is missing (type paired-folder)");
        var layout = descriptor.Create(ComponentOptions(descriptor, s.Options, $"{where}.options"));
        try
        {
            return new LayoutDataset(layout, new DatasetRoots(s.DatarootGt, s.DatarootLq, s.FilenameTmpl, s.MetaInfoFile), options);
        }
        catch (McirException e)
        {
            throw new McirException($"{where}: {e.Message}", e);
        }
    }

    /// <summary>
    /// The loss terms in order: the reconstruction term (a registered loss term), then SPN and CR when configured. Terms
    /// that own native resources are disposable.
    /// </summary>
    /// <param name="s">The loss section.</param>
    /// <param name="lossTerms">Where <c>loss.reconstruction</c> is resolved.</param>
    /// <param name="embeddings">Where <c>loss.spn.embedding_type</c> is resolved (default: the engine's embeddings).</param>
    public static IReadOnlyList<ILossTerm> CreateLosses(LossSection s, IComponentRegistry<LossTermDescriptor> lossTerms, IComponentRegistry<EmbeddingDescriptor>? embeddings = null)
    {
        var reconstruction = Resolve(lossTerms, s.Reconstruction, "loss.reconstruction");
        var reconstructionOptions = ComponentOptions(reconstruction, s.ReconstructionOptions, "loss.reconstruction_options");
        var terms = new List<ILossTerm> { Configured("loss.reconstruction_options", () => reconstruction.Create(reconstructionOptions)) };
        try
        {
            if (s.Spn is { } spn) terms.Add(Configured("loss.spn", () => SpnLoss.FromOptions(spn, embeddings)));
            if (s.Cr is { } cr) terms.Add(Configured("loss.cr", () => new ContrastRegularizationLoss(cr)));
        }
        catch
        {
            foreach (var t in terms) (t as IDisposable)?.Dispose();
            throw;
        }
        return terms;
    }

    /// <summary>
    /// Moves the loss terms' own networks (the SPN/CR embeddings) to <paramref name="device"/>; other terms compute on
    /// the device of the tensors they are given.
    /// </summary>
    public static void MoveTo(IEnumerable<ILossTerm> terms, Device device)
    {
        foreach (var t in terms)
        {
            if (t is SpnLoss spn) spn.To(device);
            else if (t is ContrastRegularizationLoss cr) cr.To(device);
        }
    }

    /// <summary>The dataset's display name: the configured one, else the GT folder's name.</summary>
    public static string DisplayName(DatasetSection s) =>
        s.Name ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(s.DatarootGt)));
}
