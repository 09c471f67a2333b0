using Mcir.Core.ModelContrast;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Training;

/// <summary>
/// A module's <c>state_dict()</c> (parameters and buffers, by their state-dict names) as a safetensors file, readable by
/// Python's <c>safetensors.torch.load_file</c>; metadata <c>format</c> = <c>mcir.module_state</c>, <c>role</c>
/// (target / ema) and <c>architecture</c> (the .NET type name). Uses the safetensors container of
/// <see cref="NegativeBankStateFile"/>.
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
        using var state = new NegativeBankState(tensors, meta);
        NegativeBankStateFile.Write(stream, state);
    }

    /// <summary>
    /// Loads a file written by <see cref="Write"/> into <paramref name="module"/>: keys, shapes and dtypes must match
    /// exactly (checked before anything is changed; errors name the key).
    /// </summary>
    public static void Read(string path, nn.Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        using var state = NegativeBankStateFile.Read(path);
        string where = $"module state '{path}'";
        if (!state.Metadata.TryGetValue("format", out var f) || f != FormatName)
            throw new InvalidDataException($"{where}: not a module state file (format '{f}')");
        var byName = state.Tensors.ToDictionary(kv => kv.Key, kv => kv.Value);
        var own = module.state_dict();
        foreach (var (key, dst) in own)
        {
            if (!byName.TryGetValue(key, out var src)) throw new InvalidDataException($"{where}: missing key '{key}' (saved for a different architecture?)");
            if (!src.shape.SequenceEqual(dst.shape))
                throw new InvalidDataException($"{where}: '{key}' has shape ({string.Join(", ", src.shape)}), the network expects ({string.Join(", ", dst.shape)})");
            if (src.dtype != dst.dtype) throw new InvalidDataException($"{where}: '{key}' is {src.dtype}, the network expects {dst.dtype}");
        }
        foreach (var key in byName.Keys)
            if (!own.ContainsKey(key)) throw new InvalidDataException($"{where}: unexpected key '{key}' (saved for a different architecture?)");
        using var _ = no_grad();
        foreach (var (key, dst) in own) dst.copy_(byName[key]);
    }
}
