using System.Collections;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Mcir.Core.Weights;

/// <summary>
/// Reads a state dict (name → tensor) from the weights files found in the wild: <c>.safetensors</c>, or PyTorch's
/// <c>torch.save</c> zip format (PyTorch ≥ 1.6, read with TorchSharp.PyBridge) holding a bare state dict or one wrapped
/// in a dictionary, as the projects publish them:
/// <list type="bullet">
/// <item>BasicSR / MCLIR / NAFNet / SwinIR: <c>{"params": sd}</c> and/or <c>{"params_ema": sd}</c>;</item>
/// <item>DehazeFormer: <c>{"state_dict": sd}</c> with <c>module.</c> prefixes;</item>
/// <item>FFA-Net: <c>{"step", "max_psnr", …, "model": sd}</c> with <c>module.</c> prefixes;</item>
/// <item>IDT (DataParallel) and KAIR: a bare state dict (IDT's with <c>module.</c> prefixes).</item>
/// </list>
/// Which wrapper is read (BasicSR's <c>param_key</c>): the given key, else — BasicSR's default — <c>params</c> when
/// present, then the first of <c>params_ema</c>, <c>state_dict</c>, <c>model</c> whose value is a dictionary; a file
/// whose top-level values are all tensors is a bare state dict. A leading <c>module.</c> (DataParallel /
/// DistributedDataParallel) is removed from every key, as BasicSR's <c>load_network</c> does.
/// </summary>
public static class StateDictFile
{
    /// <summary>Wrapper keys tried, in order, when no key is given (BasicSR's default <c>params</c> first).</summary>
    public static readonly IReadOnlyList<string> WrapperKeys = ["params", "params_ema", "state_dict", "model"];

    private const string ModulePrefix = "module.";

    /// <summary>
    /// Reads the state dict of <paramref name="path"/> (see the class remarks); the caller owns the returned tensors.
    /// Errors start with <c>{what} '{path}' cannot be read: </c>.
    /// </summary>
    /// <param name="path">A <c>.safetensors</c> file or a <c>torch.save</c> file (any other extension).</param>
    /// <param name="paramKey">The wrapper key to read (BasicSR's <c>param_key</c>); null for the default rule.</param>
    /// <param name="what">How errors name the file, e.g. <c>weights</c>, <c>pretrained negative checkpoint</c>.</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file cannot be read: PyTorch's legacy (pre-1.6) format (with the
    /// re-save command), not a checkpoint, no state dict under <paramref name="paramKey"/>, an entry that is not a tensor,
    /// or two keys that are equal once <c>module.</c> is removed.</exception>
    public static Dictionary<string, Tensor> Read(string path, string? paramKey = null, string what = "weights")
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"{what} '{path}' does not exist", path);
        string where = $"{what} '{path}' cannot be read";
        Dictionary<string, Tensor> raw;
        if (path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            if (paramKey is not null)
                throw new InvalidDataException($"{where}: a .safetensors file holds one state dict without wrapper keys (param key '{paramKey}' given)");
            using var file = SafetensorsFile.Read(path, what);
            raw = file.Tensors.ToDictionary(kv => kv.Key, kv => kv.Value.alias());
        }
        else
        {
            raw = Unwrap(Unpickle(path, where, skipTensorRead: false), where, paramKey);
        }

        var result = new Dictionary<string, Tensor>(raw.Count, StringComparer.Ordinal);
        foreach (var (key, t) in raw)
        {
            string k = key.StartsWith(ModulePrefix, StringComparison.Ordinal) ? key[ModulePrefix.Length..] : key;
            if (!result.TryAdd(k, t))
            {
                foreach (var v in raw.Values) v.Dispose();
                throw new InvalidDataException($"{where}: key '{k}' occurs twice after removing '{ModulePrefix}'");
            }
        }
        return result;
    }

    /// <summary>
    /// The top-level dictionary of a <c>torch.save</c> file without its tensor data (to see which wrappers it has), or
    /// null when the file cannot be read that way (<see cref="Read"/> then reports why).
    /// </summary>
    public static Hashtable? PeekTopLevel(string path)
    {
        try { return Unpickle(path, path, skipTensorRead: true); }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>True when the file starts like PyTorch's legacy (pre-1.6) <c>torch.save</c> format: a pickle, not a zip.</summary>
    public static bool IsLegacyTorchSave(string path)
    {
        Span<byte> head = stackalloc byte[2];
        using var s = File.OpenRead(path);
        // The legacy format begins with the pickled magic number: PROTO opcode 0x80 and a protocol number 2..5.
        return s.Read(head) == 2 && head[0] == 0x80 && head[1] is >= 2 and <= 5;
    }

    private static bool IsZip(string path)
    {
        Span<byte> sig = stackalloc byte[4];
        using var s = File.OpenRead(path);
        return s.Read(sig) == 4 && sig[0] == 0x50 && sig[1] == 0x4b && sig[2] == 0x03 && sig[3] == 0x04;
    }

    private static Hashtable Unpickle(string path, string where, bool skipTensorRead)
    {
        try
        {
            if (!skipTensorRead) return PyTorchUnpickler.UnpickleStateDict(path);
            using var stream = File.OpenRead(path);
            return PyTorchUnpickler.UnpickleStateDict(stream, leaveOpen: true, skipTensorRead: true);
        }
        catch (Exception e) when (e is NotImplementedException or InvalidDataException or IOException or InvalidCastException
                                       or InvalidOperationException or ArgumentException or KeyNotFoundException or NotSupportedException)
        {
            if (!IsZip(path) && IsLegacyTorchSave(path))
                throw new InvalidDataException($"{where}: it was written in PyTorch's legacy (pre-1.6) torch.save format; only the zip format of torch.save (PyTorch >= 1.6, _use_new_zipfile_serialization=True, the default) and .safetensors can be read. Re-save it with PyTorch >= 1.6: torch.save(torch.load(f), f2)", e);
            if (!IsZip(path))
                throw new InvalidDataException($"{where}: not a PyTorch checkpoint (neither the zip format of torch.save nor .safetensors)", e);
            throw new InvalidDataException($"{where}: not a readable torch.save state dict ({e.GetType().Name}: {e.Message}); re-save the state dict with torch.save(sd, f) or as .safetensors", e);
        }
    }

    private static Dictionary<string, Tensor> Unwrap(Hashtable table, string where, string? paramKey)
    {
        bool allTensors = table.Count > 0 && table.Values.Cast<object?>().All(v => v is Tensor);
        Hashtable inner;
        if (paramKey is not null)
        {
            if (table[paramKey] is not Hashtable h)
                throw new InvalidDataException($"{where}: no state dict under key '{paramKey}' (top-level keys: {Keys(table)})");
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
                throw new InvalidDataException($"{where}: neither a bare state dict nor wrapped under {string.Join(", ", WrapperKeys)} (top-level keys: {Keys(table)})");
            inner = (Hashtable)table[key]!;
        }
        var result = new Dictionary<string, Tensor>();
        foreach (DictionaryEntry e in inner)
        {
            if (e.Key is not string k || e.Value is not Tensor t)
                throw new InvalidDataException($"{where}: entry '{e.Key}' is not a tensor");
            result[k] = t;
        }
        return result;
    }

    private static string Keys(Hashtable table) => string.Join(", ", table.Keys.Cast<object>().Select(k => $"'{k}'").Take(20));
}
