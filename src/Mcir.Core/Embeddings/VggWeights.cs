using System.Collections.Concurrent;
using System.Text.Json;
using TorchSharp;
using Mcir.Core.Weights;
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
/// Loads torchvision VGG weights (<c>.pth</c> zip format or <c>.safetensors</c>, read by <see cref="StateDictFile"/> / <see cref="SafetensorsFile"/>) by key name,
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

    // The shared reader (Weights/StateDictFile): bare or wrapped state dicts, "module." removed; legacy files get the re-save hint.
    private static Dictionary<string, Tensor> ReadPth(string file) => StateDictFile.Read(file, what: "VGG weights");

    private static Dictionary<string, Tensor> ReadSafetensors(string file, VggVariant variant)
    {
        // Validate names/shapes from the header first, then read only the features.* tensors (classifier.* is large and unused).
        var header = SafetensorsFile.ReadHeader(file, "VGG weights");
        static bool Features(string key) => key.StartsWith("features.", StringComparison.Ordinal) || key.StartsWith("module.features.", StringComparison.Ordinal);
        var placeholders = new Dictionary<string, Tensor>();
        foreach (var (key, _, shape) in header)
            if (Features(key))
                placeholders[key] = torch.empty(shape.Length == 0 ? [0] : shape); // only names/shapes matter
        if (placeholders.Count == 0)
            throw new InvalidDataException(
                $"'{file}' holds no features.* tensors of torchvision's {VggLayout.VariantName(variant)} layout. Keys found: {Sample(header.Select(h => h.Name))}.");
        Select(placeholders, variant, file); // throws on unexpected keys / shapes
        using var content = SafetensorsFile.Read(file, "VGG weights", Features);
        return content.Tensors.ToDictionary(kv => kv.Key, kv => kv.Value.alias());
    }
}
