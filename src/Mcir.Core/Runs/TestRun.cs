using System.Text.Json.Nodes;
using Mcir.Abstractions.Components;
using Mcir.Core.Config;
using Mcir.Core.Data;
using Mcir.Core.Data.Datasets;
using Mcir.Core.Inference;
using Mcir.Core.Metrics;
using Mcir.Core.Metrics.Protocols;
using static TorchSharp.torch;

namespace Mcir.Core.Runs;

/// <summary>What <see cref="TestRun"/> scores: the test set, the protocol and how images are restored.</summary>
public sealed record TestRequest
{
    /// <summary>Folder of ground-truth images (<c>--gt</c>).</summary>
    public required string GtDir { get; init; }

    /// <summary>Folder of input images paired with the GT by name (<c>--lq</c>); null = bicubic LR made from the GT with the scale.</summary>
    public string? LqDir { get; init; }

    /// <summary>BasicSR's <c>filename_tmpl</c>: the LQ stem with <c>{}</c> = the GT stem (<c>--filename-tmpl</c>).</summary>
    public string FilenameTemplate { get; init; } = "{}";

    /// <summary>A registered data set layout pairing GT and LQ, as <c>data.*.type</c> (<c>--type</c>); null = by name or bicubic.</summary>
    public string? Layout { get; init; }

    /// <summary>The layout's <c>meta_info_file</c> (<c>--meta-info-file</c>, with <see cref="Layout"/> only).</summary>
    public string? MetaInfoFile { get; init; }

    /// <summary><c>basicsr</c>'s crop border (<c>--crop-border</c>); null = the scale for SR, 0 otherwise.</summary>
    public int? CropBorder { get; init; }

    /// <summary><c>basicsr</c>'s BT.601 Y channel (<c>--y-channel</c>).</summary>
    public bool YChannel { get; init; }

    /// <summary>The protocol (<c>--protocol</c>); null = the run's <c>metrics.protocol</c> for a run or its checkpoint, else <c>basicsr</c>.</summary>
    public string? Protocol { get; init; }

    /// <summary>Folder for the restored images (<c>--save-images</c>), or null.</summary>
    public string? SaveImages { get; init; }

    /// <summary>Whole images or tiles.</summary>
    public TileOptions Tiles { get; init; } = new();

    /// <summary>Where the model computes (default the CPU).</summary>
    public Device? Device { get; init; }
}

/// <summary>What <see cref="TestRun"/> scored: the table, and the context <c>test --json</c> records.</summary>
/// <param name="Table">The model beside the baseline on the test set.</param>
/// <param name="Weights">The weights used.</param>
/// <param name="ModelName">The registered model scored.</param>
/// <param name="ModelOptions">Its full options.</param>
/// <param name="Scale">The scale of the test set.</param>
/// <param name="Input">Where the inputs came from: the LQ folder, "paired by layout …", or null for bicubic LR of the GT.</param>
/// <param name="Tiles">How images were restored.</param>
public sealed record TestOutcome(TestTable Table, WeightsSource Weights, string ModelName, object ModelOptions, int Scale, string? Input, TileOptions Tiles)
{
    /// <summary>
    /// The table in the shared schema (<see cref="ResultsJson"/>) with the context of <c>test --json</c> in the same
    /// object: <c>weights</c>, <c>model.name</c> / <c>model.options</c> (beside the model's mean scores), <c>scale</c>,
    /// <c>lq</c> and <c>tile</c>.
    /// </summary>
    public JsonObject ToJson()
    {
        var doc = Table.ToJson();
        var model = (JsonObject)doc["model"]!;
        model["name"] = ModelName;
        model["options"] = ConfigBinder.ToJson(ModelOptions);
        doc["weights"] = new JsonObject
        {
            ["argument"] = Weights.Argument,
            ["file"] = Weights.File,
            ["kind"] = Weights.Kind.ToString().ToLowerInvariant(),
            ["ema"] = Weights.Ema,
            ["param_key"] = Weights.ParamKey,
        };
        doc["scale"] = Scale;
        doc["lq"] = Input ?? $"bicubic x1/{Scale} of the GT";
        doc["tile"] = Tiles.TileSize is > 0 ? new JsonObject { ["size"] = Tiles.TileSize, ["overlap"] = Tiles.Overlap } : null;
        return doc;
    }
}

/// <summary>
/// Scores trained weights on a test set, beside the baseline (bicubic for SR, the input otherwise): the engine side of
/// <c>mcir-host test</c>, as BasicSR's <c>test.py</c> beside <c>train.py</c> (<see cref="TrainingRun"/>). The test set
/// is the GT folder with an LQ folder paired by name, a registered layout, or bicubic LR made from the GT; the
/// protocol is the request's, else the run's <c>metrics.protocol</c>, else <c>basicsr</c> (crop border = the scale).
/// </summary>
public static class TestRun
{
    /// <summary>The baseline's name for a test set of <paramref name="scale"/>: bicubic upscaling for SR, the input itself otherwise.</summary>
    public static string BaselineName(int scale) => scale > 1 ? "bicubic" : "input";

    /// <summary>Checks what can be checked before anything is loaded: the protocol options, the GT folder and the image folder.</summary>
    /// <exception cref="McirException">The first problem, naming the option.</exception>
    public static void Check(TestRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        MetricsRun.CheckProtocolOptions(request.Protocol ?? EvaluationProtocols.Default, request.CropBorder, request.YChannel);
        if (!Directory.Exists(request.GtDir)) throw new McirException($"--gt {request.GtDir}: folder not found");
        if (request.SaveImages is { } saveDir && (RestoreRun.SameFolder(saveDir, request.GtDir) || (request.LqDir is { Length: > 0 } lq && RestoreRun.SameFolder(saveDir, lq))))
            throw new McirException($"--save-images {saveDir}: that is an input folder; choose another folder");
    }

    /// <summary>
    /// Opens the model and weights of <paramref name="model"/>, builds the test set and the protocol, and scores the
    /// model and the baseline (<see cref="Check"/> first). Notes, warnings and the test set line go to <paramref name="log"/>.
    /// </summary>
    /// <exception cref="McirException">A user error: weights, options, the test set's files, the protocol.</exception>
    public static TestOutcome Execute(TestRequest request, InferenceModelRequest model, RunRegistries registries, TextWriter log)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(registries);
        ArgumentNullException.ThrowIfNull(log);
        Check(request);
        string gtDir = request.GtDir, lqDir = request.LqDir ?? "";
        string protocolName = request.Protocol ?? EvaluationProtocols.Default;
        var tiles = request.Tiles;
        using var net = RestoreRun.Open(registries.Models, model, request.Device ?? CPU, tiles, log, afterNotes: n =>
        {
            // A trained run is scored as it was configured to be, unless the command line says otherwise.
            if (request.Protocol is null && request.CropBorder is null && !request.YChannel && RunProtocol(n.Weights) is { } runProtocol)
            {
                protocolName = runProtocol;
                log.WriteLine($"protocol {protocolName}: the run's metrics.protocol (--protocol to choose another)");
            }
        });

        string? layoutName = request.Layout;
        if (layoutName is null && request.MetaInfoFile is { } m) throw new McirException($"--meta-info-file {m}: only used with --type");
        int scale = model.Scale ?? net.Upscale
            ?? (lqDir.Length > 0 || layoutName is not null ? 1 : throw new McirException($"give --lq (input images) or --scale (bicubic LR made from the GT): model '{net.Descriptor.Name}' has no '{RunComposition.UpscaleKey}' option to take the scale from"));
        if (lqDir.Length == 0 && layoutName is null && request.FilenameTemplate != "{}") throw new McirException($"--filename-tmpl {request.FilenameTemplate}: only used with --lq");
        int channels = RestoreRun.ImageChannels(net, out _);
        var options = new PairedDatasetOptions { Scale = scale, CacheImages = true, Channels = channels };
        IPairedDataset data = layoutName is not null
            ? LayoutData(registries.Layouts ?? RunComposition.BuiltInLayouts, layoutName, new DatasetRoots(gtDir, lqDir.Length > 0 ? lqDir : null, request.FilenameTemplate, request.MetaInfoFile), options)
            : lqDir.Length > 0 ? new PairedFolderDataset(gtDir, lqDir, options, request.FilenameTemplate) : new HrFolderDataset(gtDir, options);
        var protocol = EvaluationProtocols.Create(protocolName, new MetricsProtocol(request.CropBorder ?? (scale > 1 ? scale : 0), request.YChannel), scale, "--protocol");
        string name = MetricsRun.DatasetName(gtDir);
        log.WriteLine($"test set {name}: {data.Count} images, scale {scale}, {(channels == 1 ? "gray (1 channel), " : "")}input {(layoutName is not null ? $"paired by layout {layoutName}" : lqDir.Length > 0 ? lqDir : $"bicubic x1/{scale} of the GT")}{(tiles.TileSize > 0 ? $", tiles {tiles.TileSize} overlap {tiles.Overlap}" : "")}");

        string? saveDir = request.SaveImages;
        var report = RestorationEvaluator.Evaluate(net.Network, data, protocol,
            forward: x => TiledRestorer.Restore(net.Network, x, tiles),
            onRestored: saveDir is null ? null : (n, image) =>
            {
                Directory.CreateDirectory(saveDir); // only once there is something to write
                ImageIO.Write(Path.Combine(saveDir, n + ".png"), image, new ImageWriteOptions { Grayscale = channels == 1 });
            });
        var baseline = RestorationEvaluator.EvaluateBaseline(data, protocol);
        var table = new TestTable(name, report, baseline, BaselineName(scale));
        string? input = layoutName is not null ? $"paired by layout {layoutName} under {Path.GetFullPath(gtDir)}" : lqDir.Length > 0 ? Path.GetFullPath(lqDir) : null;
        return new TestOutcome(table, net.Weights, net.Descriptor.Name, net.Options, scale, input, tiles);
    }

    /// <summary>The test set read through the registered layout <paramref name="name"/> (<c>--type</c>), as a run's data set of that type.</summary>
    private static LayoutDataset LayoutData(IComponentRegistry<DatasetLayoutDescriptor> layouts, string name, DatasetRoots roots, PairedDatasetOptions options)
    {
        if (!layouts.TryGet(name, out var descriptor))
            throw new McirException($"--type {name}: not a data set layout (known: {string.Join(", ", layouts.All.Select(l => l.Name))})");
        var layout = descriptor!.Create(RunComposition.ComponentOptions(descriptor, null, "--type"));
        try { return new LayoutDataset(layout, roots, options); }
        catch (McirException e) { throw new McirException($"--type {name}: {e.Message}", e); }
    }

    // metrics.protocol of the weights' run (its config.resolved.json, read once when the weights were resolved), or
    // null (no run folder, no such key, an unknown name).
    private static string? RunProtocol(WeightsSource weights) =>
        weights.ResolvedConfig?["metrics"]?["protocol"] is JsonValue v && v.TryGetValue(out string? name) && EvaluationProtocols.IsKnown(name) ? name : null;
}
