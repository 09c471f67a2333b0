using System.Collections;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Mcir.Core.ModelContrast;

/// <summary>
/// Reads the state dict of a pretrained network for <see cref="NegativeKind.FixedPretrained"/> negatives.
/// </summary>
public static class NegativeBankCheckpoint
{
    /// <summary>Wrapper keys tried, in order, when no explicit key is given (BasicSR's default is <c>params</c>).</summary>
    public static readonly IReadOnlyList<string> WrapperKeys = ["params", "params_ema", "state_dict", "model"];

    /// <summary>
    /// Reads <paramref name="path"/>: <c>.safetensors</c>, or a PyTorch zip checkpoint (<c>torch.save</c>, read with
    /// TorchSharp.PyBridge) holding a bare state dict or one wrapped under <paramref name="paramKey"/> (default: the
    /// first of <see cref="WrapperKeys"/> present). A leading <c>module.</c> (DataParallel) is stripped from every key.
    /// The caller owns the returned tensors.
    /// </summary>
    public static Dictionary<string, Tensor> ReadStateDict(string path, string? paramKey = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"pretrained negative checkpoint '{path}' does not exist", path);
        Dictionary<string, Tensor> raw;
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            using var state = NegativeBankStateFile.Read(path);
            raw = state.Tensors.ToDictionary(kv => kv.Key, kv => kv.Value.alias());
        }
        else
        {
            Hashtable table;
            try { table = PyTorchUnpickler.UnpickleStateDict(path); }
            catch (NotImplementedException e)
            {
                throw new InvalidDataException($"pretrained negative checkpoint '{path}': cannot be read ({e.Message}). Only the zip format of torch.save (PyTorch >= 1.6) holding a state dict is supported; re-save it with torch.save(model.state_dict(), path) or as .safetensors.", e);
            }
            catch (Exception e) when (e is InvalidDataException or IOException or InvalidCastException or InvalidOperationException)
            {
                throw new InvalidDataException($"pretrained negative checkpoint '{path}': not a readable PyTorch checkpoint: {e.Message}", e);
            }
            raw = Unwrap(table, path, paramKey);
        }

        var result = new Dictionary<string, Tensor>();
        foreach (var (key, t) in raw)
        {
            string k = key.StartsWith("module.", StringComparison.Ordinal) ? key["module.".Length..] : key;
            if (!result.TryAdd(k, t))
            {
                foreach (var v in raw.Values) v.Dispose();
                throw new InvalidDataException($"pretrained negative checkpoint '{path}': key '{k}' occurs twice after stripping 'module.'");
            }
        }
        return result;
    }

    private static Dictionary<string, Tensor> Unwrap(Hashtable table, string path, string? paramKey)
    {
        bool allTensors = table.Count > 0 && table.Values.Cast<object?>().All(v => v is Tensor);
        Hashtable inner;
        if (paramKey is not null)
        {
            if (table[paramKey] is not Hashtable h)
                throw new InvalidDataException($"pretrained negative checkpoint '{path}': no state dict under key '{paramKey}' (top-level keys: {Keys(table)})");
            inner = h;
        }
        else if (allTensors)
        {
            inner = table;
        }
        else
        {
            string? key = WrapperKeys.FirstOrDefault(k => table[k] is Hashtable);
            if (key is null)
                throw new InvalidDataException($"pretrained negative checkpoint '{path}': neither a bare state dict nor wrapped under {string.Join(", ", WrapperKeys)} (top-level keys: {Keys(table)})");
            inner = (Hashtable)table[key]!;
        }
        var result = new Dictionary<string, Tensor>();
        foreach (DictionaryEntry e in inner)
        {
            if (e.Key is not string k || e.Value is not Tensor t)
                throw new InvalidDataException($"pretrained negative checkpoint '{path}': entry '{e.Key}' is not a tensor");
            result[k] = t;
        }
        return result;
    }

    private static string Keys(Hashtable table) => string.Join(", ", table.Keys.Cast<object>().Select(k => $"'{k}'").Take(20));
}
