using System.Collections;
using Mcir.Core.IO;
using Mcir.Core.Weights;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Mcir.Core.Inference;

/// <summary>The file formats a state dict can be exported to.</summary>
public enum StateDictFileFormat
{
    /// <summary>PyTorch's zip format (<c>torch.save</c> / <c>torch.load</c>) in BasicSR's layout <c>{"params": state_dict}</c>.</summary>
    Pth,

    /// <summary>A bare state dict as safetensors (<c>safetensors.torch.load_file</c>), with <c>__metadata__</c>.</summary>
    Safetensors,
}

/// <summary>What <see cref="StateDictExport.Write(InferenceModel, string, string?)"/> wrote.</summary>
public sealed record StateDictExportResult
{
    /// <summary>The written file (full path).</summary>
    public required string Path { get; init; }

    public required StateDictFileFormat Format { get; init; }

    /// <summary>Number of tensors (state-dict entries) written.</summary>
    public required int TensorCount { get; init; }

    /// <summary>The wrapper key of a <c>.pth</c> (null for <c>.safetensors</c>, which has no nesting).</summary>
    public string? ParamKey { get; init; }
}

/// <summary>
/// Writes a network's <c>state_dict()</c> for the Python world: a <c>.pth</c> that <c>torch.load</c> reads as BasicSR's
/// <c>{"params": state_dict}</c> (or <c>params_ema</c>), written with TorchSharp.PyBridge's pickler, or a bare
/// <c>.safetensors</c> state dict with <c>__metadata__</c> <c>format</c> = <c>pt</c>, <c>model</c> and <c>source</c>.
/// Tensor names are the module's state-dict keys (for the bundled models: BasicSR's); values are exact CPU copies in the
/// module's dtype. Files are written atomically (<see cref="AtomicFile"/>): an existing file is replaced only when the
/// new one is complete, and never when the output is the file the weights were read from.
/// </summary>
public static class StateDictExport
{
    /// <summary>The wrapper key of a <c>.pth</c> when none is given (BasicSR's <c>param_key_g</c> default).</summary>
    public const string DefaultParamKey = "params";

    /// <summary>The wrapper keys a <c>.pth</c> can be written under.</summary>
    public static readonly IReadOnlyList<string> ParamKeys = ["params", "params_ema"];

    /// <summary>The safetensors metadata key holding the model's options as JSON (beside <c>model</c>, its name).</summary>
    public const string ModelOptionsKey = "model_options";

    private const string PthExtension = ".pth", SafetensorsExtension = ".safetensors";

    /// <summary>
    /// Checks <paramref name="output"/> and <paramref name="paramKey"/> before anything is loaded and returns the format
    /// the extension selects.
    /// </summary>
    /// <exception cref="McirException">Unknown extension (names it and the accepted ones), a folder, a wrapper key
    /// other than <see cref="ParamKeys"/>, or a wrapper key for <c>.safetensors</c>.</exception>
    public static StateDictFileFormat Validate(string output, string? paramKey = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(output);
        string ext = Path.GetExtension(output);
        StateDictFileFormat format;
        if (ext.Equals(PthExtension, StringComparison.OrdinalIgnoreCase)) format = StateDictFileFormat.Pth;
        else if (ext.Equals(SafetensorsExtension, StringComparison.OrdinalIgnoreCase)) format = StateDictFileFormat.Safetensors;
        else
            throw new McirException($"--output {output}: {(ext.Length == 0 ? "no file extension" : $"unknown extension '{ext}'")}; expected {PthExtension} (PyTorch, BasicSR {{\"params\": …}}) or {SafetensorsExtension} (bare state dict)");
        if (Directory.Exists(output)) throw new McirException($"--output {output}: that is a folder; give a file path");
        if (paramKey is not null)
        {
            if (format == StateDictFileFormat.Safetensors)
                throw new McirException($"--param-key {paramKey}: only for .pth output; a .safetensors file holds one bare state dict without wrapper keys");
            if (!ParamKeys.Contains(paramKey, StringComparer.Ordinal))
                throw new McirException($"--param-key {paramKey}: expected {string.Join(" or ", ParamKeys)}");
        }
        return format;
    }

    /// <summary>
    /// Writes the state dict of <paramref name="model"/>'s network to <paramref name="output"/>; the safetensors metadata
    /// names the model and the weights it was loaded from. Refuses to overwrite the file the weights were read from.
    /// </summary>
    public static StateDictExportResult Write(InferenceModel model, string output, string? paramKey = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        return Write(model.Network, output, model.Descriptor.Name, model.Weights.Description, paramKey, model.Weights.File, model.Options);
    }

    /// <summary>
    /// Writes <paramref name="module"/>'s <c>state_dict()</c> to <paramref name="output"/> (format by extension, see
    /// <see cref="Validate"/>). <paramref name="modelName"/> and <paramref name="source"/> go into the safetensors
    /// metadata, and <paramref name="modelOptions"/>, when given, as JSON under <c>model_options</c> (so
    /// <c>restore</c>/<c>test</c> rebuild the model from the file alone); <paramref name="input"/>, when given, is the
    /// file the weights came from and must not be the output.
    /// </summary>
    public static StateDictExportResult Write(nn.Module module, string output, string modelName, string source, string? paramKey = null, string? input = null, object? modelOptions = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(modelName);
        ArgumentNullException.ThrowIfNull(source);
        var format = Validate(output, paramKey);
        string full = Path.GetFullPath(output);
        if (input is not null && SameFile(full, input))
            throw new McirException($"--output {output}: that is the weights file being exported ({Path.GetFullPath(input)}); choose another file (the input is never overwritten)");

        var tensors = Copies(module);
        try
        {
            if (format == StateDictFileFormat.Pth)
            {
                string key = paramKey ?? DefaultParamKey;
                var inner = new Hashtable(tensors.Count);
                foreach (var (name, t) in tensors) inner[name] = t;
                var outer = new Hashtable { [key] = inner };
                AtomicFile.Write(full, stream => PyTorchPickler.PickleStateDict(stream, outer, leaveOpen: true));
                return new StateDictExportResult { Path = full, Format = format, TensorCount = tensors.Count, ParamKey = key };
            }

            var metadata = new Dictionary<string, string> { ["format"] = "pt", ["model"] = modelName, ["source"] = source };
            if (modelOptions is not null) metadata[ModelOptionsKey] = Config.ConfigBinder.ToJson(modelOptions).ToJsonString();
            var state = new TensorFile(tensors, metadata); // owns the copies now
            tensors = [];
            using (state)
            {
                AtomicFile.Write(full, stream => SafetensorsFile.Write(stream, state));
                return new StateDictExportResult { Path = full, Format = format, TensorCount = state.Tensors.Count };
            }
        }
        finally
        {
            foreach (var (_, t) in tensors) t.Dispose();
        }
    }

    // Contiguous CPU copies of the state dict in its order (storage offset 0, as the pickler writes whole storages).
    private static List<KeyValuePair<string, Tensor>> Copies(nn.Module module)
    {
        var tensors = new List<KeyValuePair<string, Tensor>>();
        using (NewDisposeScope())
        using (no_grad())
        {
            foreach (var (key, t) in module.state_dict())
            {
                var copy = t.detach().cpu().contiguous().clone();
                copy.DetachFromDisposeScope();
                tensors.Add(new(key, copy));
            }
        }
        return tensors;
    }

    /// <summary>True when two paths name the same file (after resolving relative parts and symbolic links).</summary>
    private static bool SameFile(string a, string b)
    {
        static string Canon(string p)
        {
            string full = Path.GetFullPath(p);
            try
            {
                if (File.Exists(full) && new FileInfo(full).ResolveLinkTarget(returnFinalTarget: true) is { } target)
                    full = target.FullName;
            }
            catch (IOException) { }
            return full;
        }
        var comparison = OperatingSystem.IsWindows() || OperatingSystem.IsMacOS() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
        return string.Equals(Canon(a), Canon(b), comparison);
    }
}
