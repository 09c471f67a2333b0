using System.Collections;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mcir.Abstractions.Models;
using Mcir.Core.Config;
using Mcir.Core.Runs;
using Mcir.Core.Training;
using Mcir.Core.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Inference;

/// <summary>Which weights of a checkpoint to use: the target EMA (when there is one) or the trained network.</summary>
public enum EmaChoice
{
    /// <summary>The EMA weights when the checkpoint has them (<c>ema.safetensors</c>, <c>params_ema</c>), else the plain ones.</summary>
    Auto,

    /// <summary>The EMA weights; an error when the checkpoint has none.</summary>
    On,

    /// <summary>The plain weights (<c>model.safetensors</c>, <c>params</c>).</summary>
    Off,
}

/// <summary>What kind of thing a <c>--weights</c> path is.</summary>
public enum WeightsKind
{
    /// <summary>A checkpoint folder of ours (<c>runs/&lt;name&gt;/checkpoints/iter_NNNNNN</c>).</summary>
    Checkpoint,

    /// <summary>A run folder (<c>runs/&lt;name&gt;</c>): its newest complete checkpoint.</summary>
    Run,

    /// <summary>A state-dict file: BasicSR <c>.pth</c> (bare or wrapped) or <c>.safetensors</c>.</summary>
    File,
}

/// <summary>
/// A resolved <c>--weights</c> argument: the file whose state dict is loaded, which wrapper key (for <c>.pth</c>), a
/// human-readable description (which weights were used and why), and — for our checkpoints — the model the run trained
/// (name and full options from the run's <c>config.resolved.json</c>).
/// </summary>
public sealed record WeightsSource
{
    public required string Argument { get; init; }
    public required WeightsKind Kind { get; init; }

    /// <summary>The state-dict file that is loaded.</summary>
    public required string File { get; init; }

    /// <summary>The wrapper key read from a <c>.pth</c> (null: a bare state dict or the reader's default).</summary>
    public string? ParamKey { get; init; }

    /// <summary>True when the EMA weights are used.</summary>
    public bool Ema { get; init; }

    /// <summary>e.g. <c>runs/x/checkpoints/iter_000004/ema.safetensors (target EMA, iteration 4)</c>.</summary>
    public required string Description { get; init; }

    /// <summary>The run folder (for <see cref="WeightsKind.Run"/> and checkpoints inside a run folder).</summary>
    public string? RunDirectory { get; init; }

    /// <summary>The model the weights are for (name and full options): from the run folder's <c>config.resolved.json</c>, or
    /// from the metadata of a <c>.safetensors</c> file written by <c>export</c>; null when neither says.</summary>
    public ModelSection? Model { get; init; }

    /// <summary>The run folder's <c>config.resolved.json</c> as read once when the weights were resolved (the source of
    /// <see cref="Model"/>); null for weights outside a run folder or a run folder without that file.</summary>
    public JsonObject? ResolvedConfig { get; init; }
}

/// <summary>What to build for inference: the model (by name or from the weights' run), option overrides and the weights.</summary>
public sealed record InferenceModelRequest
{
    /// <summary>The <c>--weights</c> argument (checkpoint folder, run folder or state-dict file).</summary>
    public required string Weights { get; init; }

    /// <summary>Registered model name; optional when the weights come from one of our runs.</summary>
    public string? Model { get; init; }

    /// <summary><c>key=value</c> overrides of the model options (value: JSON, else a string).</summary>
    public IReadOnlyList<string> Set { get; init; } = [];

    /// <summary>Sets the model option <c>upscale</c> (an error for models without it).</summary>
    public int? Scale { get; init; }

    public EmaChoice Ema { get; init; } = EmaChoice.Auto;

    /// <summary>Wrapper key of a <c>.pth</c> (overrides the EMA preference).</summary>
    public string? ParamKey { get; init; }

    /// <summary>
    /// True (default): the weights must fit the model exactly. False: the keys with the same name and shape are loaded,
    /// the others are listed in <see cref="InferenceModel.Notes"/> and <see cref="InferenceModel.LoadReport"/>.
    /// </summary>
    public bool Strict { get; init; } = true;
}

/// <summary>A network built for inference with its weights loaded; disposing it disposes the network.</summary>
public sealed class InferenceModel : IDisposable
{
    internal InferenceModel(nn.Module<Tensor, Tensor> network, ModelDescriptor descriptor, object options, WeightsSource weights, IReadOnlyList<string> notes, StateDictLoadReport loadReport)
    {
        LoadReport = loadReport;
        Network = network;
        Descriptor = descriptor;
        Options = options;
        Weights = weights;
        Notes = notes;
    }

    public nn.Module<Tensor, Tensor> Network { get; }
    public ModelDescriptor Descriptor { get; }

    /// <summary>The options the network was built with (an instance of the descriptor's options type).</summary>
    public object Options { get; }

    public WeightsSource Weights { get; }

    /// <summary>What the weights loader loaded and left out (with <c>Strict = false</c>: every ignored and missing key).</summary>
    public StateDictLoadReport LoadReport { get; }

    /// <summary>What was decided on the way (model from the run folder, EMA used, keys left out, …), for the log.</summary>
    public IReadOnlyList<string> Notes { get; }

    /// <summary>The model option <c>upscale</c>, when the model has one (<see cref="RunComposition.ModelUpscale"/>).</summary>
    public int? Upscale => RunComposition.ModelUpscale(Options);

    /// <summary>Moves the network to <paramref name="device"/> (no-op on the CPU, where it was loaded).</summary>
    public void MoveTo(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device.type != DeviceType.CPU) Network.to(device);
    }

    public void Dispose() => Network.Dispose();
}

/// <summary>
/// Loads trained weights for inference: from one of our checkpoint folders, a run folder (its newest complete
/// checkpoint, see <see cref="CheckpointStore"/>) or an official BasicSR state dict (<c>.pth</c> with
/// <c>{"params": …}</c> / <c>{"params_ema": …}</c> wrappers and <c>module.</c> prefixes, or <c>.safetensors</c>, read by
/// <see cref="StateDictFile.Read"/>). Loading (<see cref="StateDictLoader"/>) is strict by default: keys and shapes must
/// match exactly, and a mismatch lists every missing key, unexpected key and shape difference with its likely cause;
/// non-strict loading takes the matching keys and reports the others.
/// </summary>
public static class ModelWeights
{
    /// <summary>The file of a run folder that records the model the run trained.</summary>
    public const string ResolvedConfigName = "config.resolved.json";

    private const string TargetFile = "model.safetensors", EmaFile = "ema.safetensors";

    /// <summary>Decides what <paramref name="weights"/> means and which file/key will be loaded.</summary>
    /// <exception cref="McirException">The path does not exist, is an incomplete checkpoint, a run without checkpoints,
    /// or the requested EMA weights / wrapper key are not there.</exception>
    public static WeightsSource Resolve(string weights, EmaChoice ema = EmaChoice.Auto, string? paramKey = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(weights);
        string full = Path.GetFullPath(weights);
        if (Directory.Exists(full))
        {
            if (paramKey is not null)
                throw new McirException($"--param-key {paramKey}: only for .pth files; '{weights}' is a folder (use --ema to choose between model.safetensors and ema.safetensors)");
            if (File.Exists(Path.Combine(full, CheckpointStore.ManifestName)) || File.Exists(Path.Combine(full, TargetFile)))
                return FromCheckpoint(weights, full, ema, WeightsKind.Checkpoint, RunOfCheckpoint(full));
            if (Directory.Exists(Path.Combine(full, CheckpointStore.FolderName)) || File.Exists(Path.Combine(full, ResolvedConfigName)))
            {
                string? latest = CheckpointStore.FindLatestComplete(full);
                if (latest is null)
                {
                    var all = CheckpointStore.List(full);
                    string detail = all.Count == 0
                        ? "it has no checkpoints"
                        : "no checkpoint is complete: " + string.Join("; ", all.Take(5).Select(c => $"{Path.GetFileName(c.Path)}: {CheckpointStore.Verify(c.Path)}"));
                    throw new McirException($"--weights {weights}: run folder without a usable checkpoint ({detail})");
                }
                return FromCheckpoint(weights, latest, ema, WeightsKind.Run, full);
            }
            throw new McirException($"--weights {weights}: a folder that is neither a checkpoint (no {CheckpointStore.ManifestName} / {TargetFile}) nor a run folder (no {CheckpointStore.FolderName}/ or {ResolvedConfigName})");
        }
        if (!File.Exists(full)) throw new McirException($"--weights {weights}: no such file or folder");
        return FromFile(weights, full, ema, paramKey);
    }

    private static string? RunOfCheckpoint(string checkpoint)
    {
        var parent = Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(checkpoint));
        if (parent is null || Path.GetFileName(parent) != CheckpointStore.FolderName) return null;
        return Path.GetDirectoryName(parent);
    }

    private static WeightsSource FromCheckpoint(string argument, string checkpoint, EmaChoice ema, WeightsKind kind, string? runDir)
    {
        if (CheckpointStore.Verify(checkpoint) is { } why)
            throw new McirException($"--weights {argument}: checkpoint '{checkpoint}' is not complete: {why}");
        bool hasEma = File.Exists(Path.Combine(checkpoint, EmaFile));
        if (ema == EmaChoice.On && !hasEma)
            throw new McirException($"--weights {argument}: --ema on, but checkpoint '{checkpoint}' has no {EmaFile} (the run trained without ema_decay)");
        bool useEma = hasEma && ema != EmaChoice.Off;
        string file = Path.Combine(checkpoint, useEma ? EmaFile : TargetFile);
        long iteration = CheckpointStore.IterationOf(checkpoint);
        string what = useEma
            ? "target EMA"
            : hasEma ? "trained network (EMA weights not used: --ema off)" : "trained network (the checkpoint has no EMA)";
        var resolved = runDir is null ? null : ReadResolvedConfig(runDir);
        return new WeightsSource
        {
            Argument = argument,
            Kind = kind,
            File = file,
            Ema = useEma,
            Description = $"{file} ({what}, iteration {iteration})",
            RunDirectory = runDir,
            Model = resolved is null ? null : RunModel(resolved, Path.Combine(runDir!, ResolvedConfigName)),
            ResolvedConfig = resolved,
        };
    }

    /// <summary>A run folder's <c>config.resolved.json</c>, parsed; null when the folder has none.</summary>
    /// <exception cref="McirException">The file is not a JSON object.</exception>
    public static JsonObject? ReadResolvedConfig(string runDirectory)
    {
        string path = Path.Combine(runDirectory, ResolvedConfigName);
        if (!File.Exists(path)) return null;
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(path)); }
        catch (JsonException e) { throw new McirException($"{path}: not valid JSON: {e.Message}"); }
        return root as JsonObject ?? throw new McirException($"{path}: no model.name (not a run's resolved configuration?)");
    }

    // The model section of a parsed config.resolved.json (path: the file, for the message).
    private static ModelSection RunModel(JsonObject root, string path)
    {
        if (root["model"] is not JsonObject model || model["name"] is not JsonValue name || !name.TryGetValue(out string? n) || string.IsNullOrWhiteSpace(n))
            throw new McirException($"{path}: no model.name (not a run's resolved configuration?)");
        return new ModelSection { Name = n, Options = model["options"] is JsonObject o ? (JsonObject)o.DeepClone() : [] };
    }

    private static WeightsSource FromFile(string argument, string file, EmaChoice ema, string? paramKey)
    {
        string? key = paramKey;
        ModelSection? model = null;
        string what;
        if (file.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            if (paramKey is not null)
                throw new McirException($"--param-key {paramKey}: a .safetensors file holds one state dict without wrapper keys");
            if (ema == EmaChoice.On)
                throw new McirException($"--weights {argument}: --ema on, but a .safetensors file holds one state dict (give the EMA file itself)");
            what = "safetensors state dict";
            model = ModelOfSafetensors(file);
        }
        else if (paramKey is not null)
        {
            what = $"'{paramKey}'";
        }
        else
        {
            var top = StateDictFile.PeekTopLevel(file);
            bool wrapped = top is not null && top.Count > 0 && top.Values.Cast<object?>().Any(v => v is Hashtable);
            bool hasEma = wrapped && top!["params_ema"] is Hashtable, hasParams = wrapped && top!["params"] is Hashtable;
            if (ema == EmaChoice.On && !hasEma)
                throw new McirException($"--weights {argument}: --ema on, but the file has no 'params_ema' state dict{(top is null ? "" : $" (top-level keys: {string.Join(", ", top.Keys.Cast<object>().Take(20))})")}");
            if (ema == EmaChoice.Off && hasParams) key = "params";
            else if (ema != EmaChoice.Off && hasEma) key = "params_ema";
            else if (ema == EmaChoice.Off && hasEma)
                throw new McirException($"--weights {argument}: --ema off, but the file holds only 'params_ema' weights");
            else if (hasParams) key = "params";
            what = key is not null
                ? $"'{key}'{(key == "params_ema" && hasParams ? " (EMA preferred over 'params')" : "")}"
                : wrapped ? "wrapped state dict" : "bare state dict";
        }
        return new WeightsSource
        {
            Argument = argument,
            Kind = WeightsKind.File,
            File = file,
            ParamKey = key,
            Ema = key == "params_ema",
            Description = $"{file} ({what})",
            Model = model,
        };
    }

    /// <summary>
    /// The model a safetensors file written by <c>export</c> names in its metadata (<c>model</c> and
    /// <see cref="StateDictExport.ModelOptionsKey"/>), or null when it names none (e.g. a file from another writer).
    /// </summary>
    /// <exception cref="McirException">The header cannot be read, or <c>model_options</c> is not a JSON object.</exception>
    public static ModelSection? ModelOfSafetensors(string file)
    {
        IReadOnlyDictionary<string, string> metadata;
        try { metadata = SafetensorsFile.ReadMetadata(file, "weights"); }
        catch (Exception e) when (e is InvalidDataException or IOException) { throw new McirException(e.Message, e); }
        if (!metadata.TryGetValue("model", out var name) || string.IsNullOrWhiteSpace(name)
            || !metadata.TryGetValue(StateDictExport.ModelOptionsKey, out var json))
            return null;
        JsonNode? options;
        try { options = JsonNode.Parse(json); }
        catch (JsonException e) { throw new McirException($"weights '{file}': metadata '{StateDictExport.ModelOptionsKey}' is not valid JSON: {e.Message}"); }
        if (options is not JsonObject o)
            throw new McirException($"weights '{file}': metadata '{StateDictExport.ModelOptionsKey}' is not a JSON object");
        return new ModelSection { Name = name, Options = o };
    }

    /// <summary>Reads the state dict of <paramref name="source"/> (keys without <c>module.</c>); the caller owns the tensors.</summary>
    /// <exception cref="McirException">The file cannot be read (one line naming it and why).</exception>
    public static Dictionary<string, Tensor> ReadStateDict(WeightsSource source)
    {
        ArgumentNullException.ThrowIfNull(source);
        try
        {
            return StateDictFile.Read(source.File, source.ParamKey, "weights");
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            throw new McirException(e.Message, e);
        }
    }

    /// <summary>The hint for non-strict loading named in strict-mode errors.</summary>
    public const string NonStrictHint = "--strict false";

    /// <summary>
    /// Loads <paramref name="source"/> into <paramref name="module"/> with <see cref="StateDictLoader"/>: strictly, or with
    /// <paramref name="strict"/> false the matching keys only.
    /// </summary>
    public static StateDictLoadReport Load(nn.Module module, WeightsSource source, bool strict = true)
    {
        var state = ReadStateDict(source);
        try
        {
            return StateDictLoader.Load(module, state, $"weights '{source.File}'", new StateDictLoadOptions { Strict = strict, NonStrictHint = NonStrictHint });
        }
        finally { foreach (var t in state.Values) t.Dispose(); }
    }

    /// <summary>
    /// Builds the network for <paramref name="request"/> and loads its weights: the model is <see cref="InferenceModelRequest.Model"/>
    /// or, when omitted, the one the weights' run trained (with the run's options); <see cref="InferenceModelRequest.Set"/>
    /// and <see cref="InferenceModelRequest.Scale"/> (= <c>upscale</c>) override options. The network is in eval mode.
    /// </summary>
    public static InferenceModel Open(IModelRegistry registry, InferenceModelRequest request)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(request);
        var weights = Resolve(request.Weights, request.Ema, request.ParamKey);
        var notes = new List<string>();
        string name;
        JsonObject overrides;
        if (request.Model is { Length: > 0 } m)
        {
            name = m;
            if (weights.Model is { } run && run.Name == m && run.Options is not null)
            {
                overrides = (JsonObject)run.Options.DeepClone();
                notes.Add(weights.RunDirectory is { } runDir ? $"model {m} with the options of run {runDir}" : $"model {m} with the options in the metadata of {weights.File}");
            }
            else
            {
                overrides = [];
                if (weights.Model is { } other)
                    notes.Add($"model {m} as given (the run trained {other.Name}; its options are not used)");
            }
        }
        else if (weights.Model is { } run)
        {
            name = run.Name;
            overrides = run.Options is null ? [] : (JsonObject)run.Options.DeepClone();
            notes.Add(weights.RunDirectory is { } runDir
                ? $"model {name} and its options from {Path.Combine(runDir, ResolvedConfigName)}"
                : $"model {name} and its options from the metadata of {weights.File}");
        }
        else
        {
            throw new McirException($"--model is required: the weights '{request.Weights}' do not say which model they are for (known models: {Known(registry)})");
        }

        if (!registry.TryGet(name, out var descriptor))
            throw new McirException($"model '{name}' is not a registered model (known: {Known(registry)}); load its plugin with --plugins or --plugin-dir");
        var options = ComposeOptions(descriptor, overrides, request.Set, request.Scale);
        notes.Add($"weights: {weights.Description}");

        var net = Compute.ChannelsLast.ForConvolutions(descriptor.Create(options));
        try
        {
            var report = Load(net, weights, request.Strict);
            if (report.Recomputed.Count > 0)
                notes.Add($"skipped {report.Recomputed.Count} buffers the model recomputes: {string.Join(", ", report.Recomputed)}");
            if (!request.Strict)
                notes.Add(report.IsExact
                    ? $"non-strict load: all {report.Loaded.Count} keys of the model loaded, nothing ignored"
                    : $"non-strict load: {report.Loaded.Count} keys loaded; " + string.Join("; ", report.Describe()));
            net.eval();
            return new InferenceModel(net, descriptor, options, weights, notes, report);
        }
        catch
        {
            net.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The model's options: defaults, then <paramref name="baseOptions"/> (e.g. a run's), then the <c>key=value</c>
    /// assignments, then <c>upscale</c> = <paramref name="scale"/> (an error if the model has no <c>upscale</c> option
    /// or an assignment set it to something else).
    /// </summary>
    public static object ComposeOptions(ModelDescriptor descriptor, JsonObject? baseOptions, IEnumerable<string>? set, int? scale)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        var overrides = baseOptions is null ? [] : (JsonObject)baseOptions.DeepClone();
        var explicitKeys = new HashSet<string>(StringComparer.Ordinal);
        foreach (var assignment in set ?? [])
        {
            ConfigBinder.ApplyOverride(overrides, assignment);
            int eq = assignment.IndexOf('=');
            explicitKeys.Add(assignment[..eq].Trim().Split('.')[0]);
        }
        if (scale is { } s)
        {
            const string key = RunComposition.UpscaleKey;
            var defaults = (JsonObject)ConfigBinder.ToJson(descriptor.DefaultOptions);
            if (!RunComposition.HasUpscale(defaults))
                throw new McirException($"--scale {s}: model '{descriptor.Name}' has no '{key}' option (its options: {string.Join(", ", defaults.Select(p => p.Key))})");
            if (explicitKeys.Contains(key) && overrides[key] is JsonValue v && RunComposition.ModelUpscale(overrides) != s)
                throw new McirException($"--scale {s} contradicts --set {key}={v.ToJsonString()}");
            overrides[key] = s;
        }
        return RunComposition.ModelOptions(descriptor, overrides);
    }

    private static string Known(IModelRegistry r) => r.Models.Count == 0 ? "none: no model plugin is loaded" : string.Join(", ", r.Models.Select(d => d.Name));
}
