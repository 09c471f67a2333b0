using System.Globalization;
using System.Reflection;

namespace Mcir.Core.Embeddings.Onnx;

/// <summary>
/// The offline ImageNet ResNet18 shipped by the NuGet package Microsoft.ML.DnnImageFeaturizer.ResNet18 (a CNTK 2.6 export:
/// <c>tools/DnnImageModels/ResNet18Onnx/ResNet18.onnx</c>, input BGR 0–255 minus a mean image, see
/// <c>ResNetPrepOnnx/ResNetPreprocess.onnx</c>): where to find it, its layer aliases and its preprocessing.
/// </summary>
public static class ResNet18ImageNet
{
    /// <summary>Registered embedding name.</summary>
    public const string Name = "resnet18-imagenet";

    /// <summary>The NuGet package that ships the model.</summary>
    public const string PackageId = "Microsoft.ML.DnnImageFeaturizer.ResNet18";

    /// <summary>The package version this code was written against (fallback when no build-time path is recorded).</summary>
    public const string PackageVersion = "0.23.1";

    /// <summary>Model path relative to the package's tools/ folder and to an application's output folder.</summary>
    public static readonly string ModelRelativePath = Path.Combine("DnnImageModels", "ResNet18Onnx", "ResNet18.onnx");

    /// <summary>Preprocessing graph path relative to tools/ or the output folder.</summary>
    public static readonly string PreprocessRelativePath = Path.Combine("DnnImageModels", "ResNetPrepOnnx", "ResNetPreprocess.onnx");

    /// <summary>Environment variable that may point at ResNet18.onnx (checked after the configured path).</summary>
    public const string EnvironmentVariable = "MCIR_RESNET18_ONNX";

    /// <summary>Per-channel means of the package's 1×3×224×224 MeanImage, BGR order, 0–255 scale (used if the file is absent).</summary>
    public static readonly IReadOnlyList<double> FallbackBgrMeans = [103.06, 115.90, 123.15];

    /// <summary>
    /// Default layers (role of VGG16's relu1_2 / relu2_2 / relu3_3: shallow-to-mid features; see docs/embeddings.md):
    /// stem (64 ch, 1/2, receptive field 7 px), layer1 (64 ch, 1/4, 43 px), layer2 (128 ch, 1/8, 99 px).
    /// </summary>
    public static readonly IReadOnlyList<string> DefaultLayers = ["stem", "layer1", "layer2"];

    /// <summary>SPN layer weights for <see cref="DefaultLayers"/> (VGG16's 0.2 / 0.3 / 0.5, shallow to deep).</summary>
    public static IReadOnlyDictionary<string, double> DefaultLayerWeights =>
        new Dictionary<string, double> { ["stem"] = 0.2, ["layer1"] = 0.3, ["layer2"] = 0.5 };

    /// <summary>
    /// Aliases → node outputs of the CNTK graph (all after a ReLU). Stages as in torchvision's ResNet: stem = relu after
    /// conv1/bn1 (before the max-pool), layerN = the last block of stage N; layerN.k = block k of stage N. This export has
    /// 2, 2, 2 and 3 basic blocks in stages 1–4 (22 convolutions including the three 1×1 downsamples).
    /// </summary>
    public static readonly IReadOnlyDictionary<string, string> Aliases = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
    {
        ["stem"] = "ReLU253_Output_0",
        ["layer1.0"] = "ReLU269_Output_0",
        ["layer1.1"] = "ReLU283_Output_0",
        ["layer1"] = "ReLU283_Output_0",
        ["layer2.0"] = "ReLU301_Output_0",
        ["layer2.1"] = "ReLU315_Output_0",
        ["layer2"] = "ReLU315_Output_0",
        ["layer3.0"] = "ReLU333_Output_0",
        ["layer3.1"] = "ReLU347_Output_0",
        ["layer3"] = "ReLU347_Output_0",
        ["layer4.0"] = "ReLU365_Output_0",
        ["layer4.1"] = "ReLU379_Output_0",
        ["layer4.2"] = "ReLU393_Output_0",
        ["layer4"] = "ReLU393_Output_0",
        ["pool"] = "Pooling395_Output_0",
    };

    /// <summary>The node output for a layer name: an alias, or a node output name as is.</summary>
    public static string Resolve(string layer) => Aliases.TryGetValue(layer, out var o) ? o : layer;

    /// <summary>The package folder recorded when Mcir.Core was built (restore's path of the package), if any.</summary>
    public static string? BuildTimePackageFolder =>
        typeof(ResNet18ImageNet).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "McirResNet18PackageFolder")?.Value is { Length: > 0 } v ? v : null;

    /// <summary>Places searched for the model, in order (configured path first).</summary>
    public static IReadOnlyList<string> Candidates(string? configured, string relative)
    {
        var list = new List<string>();
        if (!string.IsNullOrWhiteSpace(configured)) list.Add(configured);
        if (relative == ModelRelativePath && Environment.GetEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } env) list.Add(env);
        list.Add(Path.Combine(AppContext.BaseDirectory, relative));
        string? asmDir = Path.GetDirectoryName(typeof(ResNet18ImageNet).Assembly.Location);
        if (!string.IsNullOrEmpty(asmDir)) list.Add(Path.Combine(asmDir, relative));
        if (BuildTimePackageFolder is { } pkg) list.Add(Path.Combine(pkg, "tools", relative));
        foreach (var root in NuGetRoots())
            list.Add(Path.Combine(root, PackageId.ToLowerInvariant(), PackageVersion, "tools", relative));
        return list.Distinct(StringComparer.Ordinal).ToList();
    }

    private static IEnumerable<string> NuGetRoots()
    {
        if (Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p) yield return p;
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (home.Length > 0) yield return Path.Combine(home, ".nuget", "packages");
    }

    /// <summary>
    /// Finds ResNet18.onnx: <paramref name="configured"/> (a file, or a directory holding ResNet18.onnx or the package
    /// layout), then $MCIR_RESNET18_ONNX, the application folder (the package's build props copy DnnImageModels/ there),
    /// the package folder recorded at build time, and the NuGet global packages folder. Throws naming every place tried.
    /// </summary>
    public static string LocateModel(string? configured = null)
    {
        if (!string.IsNullOrWhiteSpace(configured))
        {
            string full = Path.GetFullPath(configured);
            if (File.Exists(full)) return full;
            if (Directory.Exists(full))
            {
                foreach (var c in new[] { Path.Combine(full, "ResNet18.onnx"), Path.Combine(full, ModelRelativePath), Path.Combine(full, "tools", ModelRelativePath) })
                    if (File.Exists(c)) return c;
            }
            throw new McirException($"{Name}: model_path '{full}' is neither ResNet18.onnx nor a folder containing it.");
        }
        var tried = Candidates(null, ModelRelativePath);
        foreach (var c in tried)
            if (File.Exists(c)) return Path.GetFullPath(c);
        throw new McirException(
            $"{Name}: ResNet18.onnx not found. It ships in the NuGet package {PackageId} {PackageVersion} (referenced by Mcir.Core; " +
            $"'dotnet restore' fetches it). Tried: {string.Join("; ", tried)}. Set model_path (or ${EnvironmentVariable}) to the file.");
    }

    /// <summary>ResNetPreprocess.onnx next to <paramref name="modelPath"/> (package layout), or null.</summary>
    public static string? LocatePreprocess(string modelPath, string? configured = null)
    {
        if (!string.IsNullOrWhiteSpace(configured))
            return File.Exists(configured) ? Path.GetFullPath(configured)
                : throw new McirException($"{Name}: preprocess_path '{Path.GetFullPath(configured)}' does not exist.");
        string? dir = Path.GetDirectoryName(Path.GetDirectoryName(Path.GetFullPath(modelPath)));   // …/DnnImageModels
        if (dir is null) return null;
        string candidate = Path.Combine(dir, "ResNetPrepOnnx", "ResNetPreprocess.onnx");
        return File.Exists(candidate) ? candidate : null;
    }

    /// <summary>
    /// The per-channel means (BGR, 0–255) of the MeanImage subtracted by ResNetPreprocess.onnx (Split RGB → Concat BGR →
    /// Sub MeanImage [1, 3, H, W]). Throws if the graph does not have that form.
    /// </summary>
    public static double[] ReadPreprocessMeans(string preprocessPath)
    {
        var model = OnnxReader.Load(preprocessPath);
        var sub = model.Graph.Nodes.FirstOrDefault(n => n.OpType == "Sub")
            ?? throw new OnnxFormatException($"'{preprocessPath}': no Sub node (expected Split → Concat(BGR) → Sub MeanImage).");
        var mean = sub.Inputs.Skip(1).Select(i => model.Graph.Initializers.GetValueOrDefault(i)).FirstOrDefault(t => t is not null)
            ?? throw new OnnxFormatException($"'{preprocessPath}': {sub.Display} subtracts no initializer.");
        if (mean.Floats is null || mean.Dims.Length != 4 || mean.Dims[1] != 3)
            throw new OnnxFormatException($"'{preprocessPath}': mean '{mean.Name}' is {mean}, expected float [1, 3, H, W].");
        long plane = mean.Dims[2] * mean.Dims[3];
        var result = new double[3];
        for (int c = 0; c < 3; c++)
        {
            double s = 0;
            for (long k = 0; k < plane; k++) s += mean.Floats[c * plane + k];
            result[c] = s / plane;
        }
        return result;
    }

    /// <summary>The package's preprocessing as an <see cref="OnnxInputNormalization"/>: RGB[0,1] → BGR × 255 − means.</summary>
    public static OnnxInputNormalization PackageNormalization(IReadOnlyList<double> bgrMeans) =>
        new() { Bgr = true, Scale = 255.0, Mean = bgrMeans.ToArray(), Std = [1.0, 1.0, 1.0] };

    /// <summary>Builds the embedding (see <see cref="OnnxEmbeddings.Create"/>).</summary>
    public static OnnxEmbedding Create(OnnxEmbeddingOptions? options = null)
    {
        options ??= new OnnxEmbeddingOptions();
        string path = LocateModel(options.ModelPath);
        var model = OnnxReader.Load(path);
        foreach (var (alias, output) in Aliases)
            if (!model.Graph.Nodes.Any(n => n.Outputs.Contains(output)))
                throw new McirException($"{Name}: '{path}' is not the package's ResNet18 export (no node output '{output}' for alias '{alias}'); " +
                                        "use the 'onnx' embedding with node output names for other files.");
        var layers = (options.Layers is { Count: > 0 } l ? l : DefaultLayers).ToArray();
        var outputs = layers.Select(Resolve).ToArray();
        var known = model.Graph.Nodes.SelectMany(n => n.Outputs).ToHashSet(StringComparer.Ordinal);
        foreach (var (layer, output) in layers.Zip(outputs))
            if (!known.Contains(output))
                throw new McirException($"{Name}: unknown layer '{layer}'. Use stem, layer1, layer2, layer3, layer4 (blocks layer1.0 … layer4.2, pool) " +
                                        "or a node output name of the graph (e.g. ReLU283_Output_0).");

        OnnxInputNormalization norm;
        string normSource;
        if (options.Normalization is { } n) { norm = n; normSource = "configured"; }
        else
        {
            string? prep = LocatePreprocess(path, options.PreprocessPath);
            var means = prep is null ? FallbackBgrMeans.ToArray() : ReadPreprocessMeans(prep);
            norm = PackageNormalization(means);
            normSource = prep is null ? "built-in package means" : $"means of {Path.GetFileName(prep)}";
        }
        string layerText = string.Join(", ", layers.Select((x, i) => x == outputs[i] ? x : $"{x} ({outputs[i]})"));
        string description = $"{options.Name ?? Name}: ImageNet ResNet18 ({model.ProducerName} {model.ProducerVersion} export, NuGet {PackageId}) from {path}; " +
                             $"layers {layerText}; input {norm.Describe()} ({normSource})";
        return new OnnxEmbedding(options.Name ?? Name, model, layers, outputs, norm, options.FoldBatchNorm, description);
    }

    internal static string Format(double v) => v.ToString("0.###", CultureInfo.InvariantCulture);
}
