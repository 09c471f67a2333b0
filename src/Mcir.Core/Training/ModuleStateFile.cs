using Mcir.Core.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Training;

/// <summary>
/// A module's <c>state_dict()</c> (parameters and buffers, by their state-dict names) as a safetensors file, readable by
/// Python's <c>safetensors.torch.load_file</c>; metadata <c>format</c> = <c>mcir.module_state</c>, <c>role</c>
/// (target / ema) and <c>architecture</c> (the .NET type name). Written and read with the shared weights module
/// (<see cref="SafetensorsFile"/>, <see cref="StateDictLoader"/>).
/// </summary>
public static class ModuleStateFile
{
    private const string FormatName = "mcir.module_state";

    /// <summary>Writes copies of <paramref name="module"/>'s state to <paramref name="stream"/> (left open).</summary>
    public static void Write(Stream stream, nn.Module module, string role)
    {
        ArgumentNullException.ThrowIfNull(module);
        var tensors = new List<KeyValuePair<string, Tensor>>();
        using (NewDisposeScope())
        using (no_grad())
        {
            foreach (var (key, t) in module.state_dict())
            {
                var copy = t.detach().cpu().clone();
                copy.DetachFromDisposeScope();
                tensors.Add(new(key, copy));
            }
        }
        var meta = new Dictionary<string, string>
        {
            ["format"] = FormatName,
            ["role"] = role,
            ["architecture"] = module.GetType().FullName ?? module.GetType().Name,
        };
        using var state = new TensorFile(tensors, meta);
        SafetensorsFile.Write(stream, state);
    }

    /// <summary>
    /// Loads a file written by <see cref="Write"/> into <paramref name="module"/>: keys, shapes and dtypes must match
    /// exactly (checked before anything is changed; a <see cref="StateDictMismatchException"/> names every key that
    /// differs).
    /// </summary>
    public static void Read(string path, nn.Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        const string what = "module state";
        using var state = SafetensorsFile.Read(path, what);
        string where = $"{what} '{path}'";
        if (!state.Metadata.TryGetValue("format", out var f) || f != FormatName)
            throw new InvalidDataException($"{where}: not a module state file (format '{f}')");
        var byName = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (k, t) in state.Tensors)
            if (!byName.TryAdd(k, t)) throw new InvalidDataException($"{where}: key '{k}' occurs twice");
        StateDictLoader.Load(module, byName, where, new StateDictLoadOptions { ExactDtype = true });
    }
}
