using System.Collections.Concurrent;
using System.Text.Json;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Mcir.Core.Embeddings;

/// <summary>
/// The <c>features.*</c> tensors of a VGG checkpoint file, float32 on the CPU, validated against torchvision's layout.
/// Instances are cached for the life of the process and shared: never dispose or modify these tensors.
/// </summary>
public sealed class VggWeightSet
{
    internal VggWeightSet(string path, string format, VggVariant variant, IReadOnlyDictionary<string, Tensor> tensors)
    {
        Path = path; Format = format; Variant = variant; Tensors = tensors;
    }

    /// <summary>Full path of the file read.</summary>
    public string Path { get; }
    /// <summary>"pth" or "safetensors".</summary>
    public string Format { get; }
    /// <summary>The layout the file was validated against.</summary>
    public VggVariant Variant { get; }
    /// <summary>features.N.weight / features.N.bias tensors found in the file (a prefix of the network may be all there is).</summary>
    public IReadOnlyDictionary<string, Tensor> Tensors { get; }
}

/// <summary>
/// Loads torchvision VGG weights (<c>.pth</c> zip format via TorchSharp.PyBridge, or <c>.safetensors</c>) by key name,
/// once per process (cache keyed by full path, variant, size and modification time).
/// </summary>
public static class VggWeights
{
    private static readonly ConcurrentDictionary<(string, VggVariant, long, long), Lazy<VggWeightSet>> Cache = new();
    private static int _fileReads;

    /// <summary>Number of times a weights file was actually read (for tests of the cache).</summary>
    internal static int FileReads => _fileReads;

    /// <summary>
    /// Resolves <paramref name="weightsPath"/> (a file or a directory holding the torchvision file or a safetensors
    /// conversion) and returns the validated, cached weights. Errors name the expected file and where to get it.
    /// </summary>
    public static VggWeightSet Load(string weightsPath, VggVariant variant)
    {
        string file = Resolve(weightsPath, variant);
        var info = new FileInfo(file);
        var key = (info.FullName, variant, info.Length, info.LastWriteTimeUtc.Ticks);
        var lazy = Cache.GetOrAdd(key, _ => new Lazy<VggWeightSet>(() => Read(info.FullName, variant), LazyThreadSafetyMode.ExecutionAndPublication));
        try { return lazy.Value; }
        catch { Cache.TryRemove(key, out _); throw; }
    }

    /// <summary>Where to get the weights, for error messages.</summary>
    public static string FetchHint(VggVariant variant) =>
        $"`mcir-host weights fetch {VggLayout.VariantName(variant)}` or torchvision's URL {VggLayout.TorchvisionUrl(variant)} provides it";

    private static string Resolve(string weightsPath, VggVariant variant)
    {
        string expected = VggLayout.TorchvisionFileName(variant);
        if (Directory.Exists(weightsPath))
        {
            string stem = System.IO.Path.GetFileNameWithoutExtension(expected);
            string v = VggLayout.VariantName(variant);
            foreach (var name in new[] { expected, stem + ".safetensors", v + ".safetensors", v + ".pth" })
            {
                string candidate = System.IO.Path.Combine(weightsPath, name);
                if (File.Exists(candidate)) return candidate;
            }
            throw new FileNotFoundException(
                $"No {v} weights in directory '{weightsPath}': expected '{expected}' (or '{stem}.safetensors'). {FetchHint(variant)}.",
                System.IO.Path.Combine(weightsPath, expected));
        }
        if (!File.Exists(weightsPath))
            throw new FileNotFoundException(
                $"VGG weights file '{weightsPath}' not found (expected torchvision's '{expected}' or a .safetensors conversion of it). {FetchHint(variant)}.",
                weightsPath);
        return weightsPath;
    }

    private static VggWeightSet Read(string file, VggVariant variant)
    {
        Interlocked.Increment(ref _fileReads);
        bool safetensors = file.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        Dictionary<string, Tensor> raw = safetensors ? ReadSafetensors(file, variant) : ReadPth(file);
        var kept = Select(raw, variant, file);
        foreach (var t in kept.Values) t.DetachFromDisposeScope();
        return new VggWeightSet(file, safetensors ? "safetensors" : "pth", variant, kept);
    }

    /// <summary>Keeps features.* (after stripping a DataParallel "module." prefix), validates names and shapes, converts to float32.</summary>
    private static Dictionary<string, Tensor> Select(Dictionary<string, Tensor> raw, VggVariant variant, string file)
    {
        var expected = VggLayout.ExpectedKeys(variant, int.MaxValue).ToDictionary(k => k.Key, k => k.Shape);
        bool allModule = raw.Count > 0 && raw.Keys.All(k => k.StartsWith("module.", StringComparison.Ordinal));
        var kept = new Dictionary<string, Tensor>();
        var unexpected = new List<string>();
        var badShape = new List<string>();
        foreach (var (rawKey, t) in raw)
        {
            string key = allModule ? rawKey["module.".Length..] : rawKey;
            if (!key.StartsWith("features.", StringComparison.Ordinal)) continue; // classifier.* and anything else: not ours
            if (!expected.TryGetValue(key, out var shape)) { unexpected.Add($"{key} {Shape(t.shape)}"); continue; }
            if (!t.shape.SequenceEqual(shape)) { badShape.Add($"{key}: expected {Shape(shape)}, found {Shape(t.shape)}"); continue; }
            if (!t.is_floating_point()) { badShape.Add($"{key}: expected a floating-point tensor, found {t.dtype}"); continue; }
            kept[key] = t.dtype == ScalarType.Float32 ? t.detach() : t.to(ScalarType.Float32);
        }
        if (unexpected.Count > 0 || badShape.Count > 0)
        {
            var msg = $"'{file}' does not match torchvision's {VggLayout.VariantName(variant)} layout (features.N.weight/bias).";
            if (badShape.Count > 0) msg += $" Wrong shapes: {string.Join("; ", badShape)}.";
            if (unexpected.Count > 0)
                msg += $" Unexpected keys (is this another VGG variant or a *_bn checkpoint?): {string.Join(", ", unexpected)}.";
            throw new InvalidDataException(msg);
        }
        if (kept.Count == 0)
            throw new InvalidDataException(
                $"'{file}' holds no features.* tensors of torchvision's {VggLayout.VariantName(variant)} layout. Keys found: {Sample(raw.Keys)}.");
        return kept;
    }

    internal static string Sample(IEnumerable<string> keys, int max = 12)
    {
        var list = keys.ToList();
        return list.Count == 0 ? "(none)" : string.Join(", ", list.Take(max)) + (list.Count > max ? $", … ({list.Count} in all)" : "");
    }

    internal static string Shape(IEnumerable<long> shape) => "[" + string.Join(", ", shape) + "]";

    private static Dictionary<string, Tensor> ReadPth(string file)
    {
        System.Collections.Hashtable table;
        try
        {
            using var stream = File.OpenRead(file);
            table = PyTorchUnpickler.UnpickleStateDict(stream, leaveOpen: true, skipTensorRead: false);
        }
        catch (NotImplementedException e)
        {
            if (!IsZip(file))
                throw new InvalidDataException(
                    $"'{file}' was saved in PyTorch's old (pre-1.6, non-zip) format, which TorchSharp.PyBridge cannot read. " +
                    "Re-save it in Python with torch.save(torch.load(path), new_path, _use_new_zipfile_serialization=True), " +
                    "or convert it to .safetensors (safetensors.torch.save_file).", e);
            throw new InvalidDataException($"'{file}' could not be read as a state dict: {e.Message}", e);
        }
        catch (Exception e) when (e is InvalidDataException or InvalidCastException or InvalidOperationException or IOException)
        {
            throw new InvalidDataException($"'{file}' is not a readable torch.save state dict: {e.Message}", e);
        }
        var result = new Dictionary<string, Tensor>();
        var other = new List<string>();
        foreach (System.Collections.DictionaryEntry entry in table)
        {
            string key = entry.Key?.ToString() ?? "";
            if (entry.Value is Tensor t) result[key] = t;
            else other.Add(key);
        }
        if (result.Count == 0 && other.Count > 0)
            throw new InvalidDataException(
                $"'{file}' is not a bare state dict (name → tensor): its top-level keys are {Sample(other)}. " +
                "A wrapped checkpoint such as {'params': ...} or {'state_dict': ...} must be unwrapped first.");
        return result;
    }

    private static bool IsZip(string file)
    {
        using var s = File.OpenRead(file);
        Span<byte> sig = stackalloc byte[4];
        return s.Read(sig) == 4 && sig[0] == 0x50 && sig[1] == 0x4b && sig[2] == 0x03 && sig[3] == 0x04;
    }

    private static Dictionary<string, Tensor> ReadSafetensors(string file, VggVariant variant)
    {
        // Validate names/shapes from the header first: PyBridge copies into the module's tensors, which needs equal shapes.
        var header = ReadSafetensorsHeader(file);
        var expected = VggLayout.ExpectedKeys(variant, int.MaxValue).ToDictionary(k => k.Key, k => k.Shape);
        var placeholders = new Dictionary<string, Tensor>();
        foreach (var (key, shape) in header)
            if (key.StartsWith("features.", StringComparison.Ordinal) || key.StartsWith("module.", StringComparison.Ordinal))
                placeholders[key] = torch.empty(shape.Length == 0 ? [0] : shape); // only names/shapes matter (classifier.* is skipped: large and ignored)
        if (placeholders.Count == 0)
            throw new InvalidDataException(
                $"'{file}' holds no features.* tensors of torchvision's {VggLayout.VariantName(variant)} layout. Keys found: {Sample(header.Keys)}.");
        Select(placeholders, variant, file); // throws on unexpected keys / shapes
        // Then let PyBridge read the tensors into a full-depth network holding the same names.
        using var holder = new VggFeatureNet(variant, int.MaxValue);
        bool allModule = header.Count > 0 && header.Keys.All(k => k.StartsWith("module.", StringComparison.Ordinal));
        if (allModule)
            throw new InvalidDataException($"'{file}': keys carry a DataParallel 'module.' prefix; re-save the safetensors file without it.");
        var loaded = new Dictionary<string, bool>();
        holder.load_safetensors(file, strict: false, loadedParameters: loaded);
        var sd = holder.state_dict();
        var result = new Dictionary<string, Tensor>();
        foreach (var (key, ok) in loaded)
            if (ok && sd.TryGetValue(key, out var t) && expected.ContainsKey(key))
                result[key] = t.detach().clone();
        return result;
    }

    private static Dictionary<string, long[]> ReadSafetensorsHeader(string file)
    {
        using var s = File.OpenRead(file);
        var lenBytes = new byte[8];
        if (s.Read(lenBytes, 0, 8) != 8) throw new InvalidDataException($"'{file}': truncated safetensors header.");
        ulong len = BitConverter.ToUInt64(lenBytes);
        if (len > 100_000_000 || (long)len > s.Length - 8) throw new InvalidDataException($"'{file}' is not a safetensors file (bad header length).");
        var json = new byte[len];
        s.ReadExactly(json);
        var result = new Dictionary<string, long[]>();
        try
        {
            using var doc = JsonDocument.Parse(json);
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (p.Name == "__metadata__") continue;
                result[p.Name] = p.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            }
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new InvalidDataException($"'{file}' is not a safetensors file: {e.Message}", e);
        }
        return result;
    }
}
