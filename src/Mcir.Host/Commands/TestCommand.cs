using System.CommandLine;
using System.Text.Json.Nodes;
using Mcir.Abstractions.Components;
using Mcir.Abstractions.Models;
using Mcir.Core;
using Mcir.Core.Config;
using Mcir.Core.Data;
using Mcir.Core.Data.Datasets;
using Mcir.Core.Inference;
using Mcir.Core.IO;
using Mcir.Core.Metrics;
using Mcir.Core.Metrics.Protocols;
using Mcir.Core.Runs;
using Microsoft.Extensions.DependencyInjection;

namespace Mcir.Host.Commands;

/// <summary>
/// <c>mcir-host test</c>: scores trained weights on a test set (PSNR/SSIM per image and mean, beside the bicubic
/// baseline for SR), BasicSR's test protocol.
/// </summary>
internal static class TestCommand
{
    public static Command Create(HostConsole console)
    {
        var model = new InferenceOptions();
        var gt = new Option<string>("--gt") { Description = "Folder of ground-truth images", Required = true };
        var lq = new Option<string?>("--lq") { Description = "Folder of input images paired with --gt by name (default: bicubic LR made from the GT with the scale)" };
        var tmpl = new Option<string>("--filename-tmpl")
        {
            Description = "BasicSR's filename_tmpl: the --lq stem with {} = the GT stem, e.g. {}x2 for DIV2K's 0801.png <-> 0801x2.png",
            DefaultValueFactory = _ => "{}",
        };
        var type = new Option<string?>("--type")
        {
            Description = "Pair --gt (and --lq) with a data set layout, as data.*.type in a run configuration: paired-folder, reside, rain200, ddn, did, spa, gopro or a plugin's (default: --lq paired by name, else bicubic LR)",
        };
        var metaInfo = new Option<string?>("--meta-info-file") { Description = "The layout's meta_info_file (with --type), e.g. SPA's pair list" };
        var crop = new Option<int?>("--crop-border") { Description = "Pixels cropped from each border before scoring (default: the scale for SR, 0 otherwise)" };
        var y = new Option<bool>("--y-channel") { Description = "Score the BT.601 Y channel instead of RGB (protocol basicsr)" };
        var protocolOption = new Option<string?>("--protocol")
        {
            Description = $"Evaluation protocol: {string.Join(", ", EvaluationProtocols.Names)} (docs/configuration.md); --crop-border and --y-channel belong to basicsr. Default: the run's metrics.protocol for a run or its checkpoint, else basicsr",
        };
        var save = new Option<string?>("--save-images") { Description = "Write the restored images (PNG, named like the GT) into this folder" };
        var json = new Option<string?>("--json") { Description = "Also write the numbers to this JSON file" };
        var plugins = new PluginOptions();
        var command = new Command("test", "Score trained weights on a test set: PSNR/SSIM per image and mean, beside the bicubic baseline for SR")
        {
            gt, lq, tmpl, type, metaInfo, crop, y, protocolOption, save, json,
        };
        model.AddTo(command);
        plugins.AddTo(command);
        command.SetAction(r =>
        {
            string gtDir = r.GetValue(gt)!, lqDir = r.GetValue(lq) ?? "";
            if (r.GetValue(crop) is < 0) throw new McirException($"--crop-border {r.GetValue(crop)}: expected 0 or more");
            string? givenProtocol = r.GetValue(protocolOption);
            string protocolName = givenProtocol ?? EvaluationProtocols.Default;
            if (!EvaluationProtocols.IsKnown(protocolName)) throw new McirException($"--protocol {protocolName}: {EvaluationProtocols.UnknownMessage(protocolName)}");
            if (protocolName != EvaluationProtocols.Default && (r.GetValue(crop) is not null || r.GetValue(y)))
                throw new McirException($"--{(r.GetValue(crop) is not null ? "crop-border" : "y-channel")}: only protocol basicsr takes it; protocol {protocolName} fixes its own crop and channels");
            if (!Directory.Exists(gtDir)) throw new McirException($"--gt {gtDir}: folder not found");
            string? saveDir = r.GetValue(save);
            if (saveDir is not null && (RestoreCommand.SameFolder(saveDir, gtDir) || (lqDir.Length > 0 && RestoreCommand.SameFolder(saveDir, lqDir))))
                throw new McirException($"--save-images {saveDir}: that is an input folder; choose another folder");
            var tiles = model.Tiles(r);
            var device = model.ResolveDevice(r);

            using var services = new ServiceCollection().AddMcirPlugins(plugins.Load(r)).BuildServiceProvider();
            using var net = ModelWeights.Open(services.GetRequiredService<IModelRegistry>(), model.Request(r));
            foreach (var note in net.Notes) console.Error.WriteLine(note);
            // A trained run is scored as it was configured to be, unless the command line says otherwise.
            if (givenProtocol is null && r.GetValue(crop) is null && !r.GetValue(y) && RunProtocol(net.Weights.RunDirectory) is { } runProtocol)
            {
                protocolName = runProtocol;
                console.Error.WriteLine($"protocol {protocolName}: the run's metrics.protocol (--protocol to choose another)");
            }
            InferenceOptions.MoveTo(net.Network, device); // the evaluator feeds images to the network's device
            if (InferenceOptions.TileWarning(net.Descriptor, tiles) is { } warning) console.Error.WriteLine(warning);

            string? layoutName = r.GetValue(type);
            if (layoutName is null && r.GetValue(metaInfo) is { } m) throw new McirException($"--meta-info-file {m}: only used with --type");
            int scale = r.GetValue(model.Scale) ?? net.Upscale
                ?? (lqDir.Length > 0 || layoutName is not null ? 1 : throw new McirException($"give --lq (input images) or --scale (bicubic LR made from the GT): model '{net.Descriptor.Name}' has no 'upscale' option to take the scale from"));
            if (lqDir.Length == 0 && layoutName is null && r.GetValue(tmpl) != "{}") throw new McirException($"--filename-tmpl {r.GetValue(tmpl)}: only used with --lq");
            int channels = RunComposition.ModelInputChannels(net.Network, net.Options, out string channelSource);
            if (channels is not (1 or 3))
                throw new McirException($"model '{net.Descriptor.Name}' takes {channels} input channels ({channelSource}); images are read with 1 (gray) or 3 (RGB)");
            var options = new PairedDatasetOptions { Scale = scale, CacheImages = true, Channels = channels };
            IPairedDataset data = layoutName is not null ? LayoutData(services, layoutName, new DatasetRoots(gtDir, lqDir.Length > 0 ? lqDir : null, r.GetValue(tmpl)!, r.GetValue(metaInfo)), options)
                : lqDir.Length > 0 ? new PairedFolderDataset(gtDir, lqDir, options, r.GetValue(tmpl)!) : new HrFolderDataset(gtDir, options);
            var protocol = EvaluationProtocols.Create(protocolName, new MetricsProtocol(r.GetValue(crop) ?? (scale > 1 ? scale : 0), r.GetValue(y)), scale, "--protocol");
            string name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(gtDir)));
             console.Error.WriteLine($"test set {name}: {data.Count} images, scale {scale}, {(channels == 1 ? "gray (1 channel), " : "")}input {(layoutName is not null ? $"paired by layout {layoutName}" : lqDir.Length > 0 ? lqDir : $"bicubic x1/{scale} of the GT")}{(tiles.TileSize > 0 ? $", tiles {tiles.TileSize} overlap {tiles.Overlap}" : "")}");

            var report = RestorationEvaluator.Evaluate(net.Network, data, protocol,
                forward: x => TiledRestorer.Restore(net.Network, x, tiles),
                onRestored: saveDir is null ? null : (n, image) =>
                {
                    Directory.CreateDirectory(saveDir); // only once there is something to write
                    ImageIO.Write(Path.Combine(saveDir, n + ".png"), image, new ImageWriteOptions { Grayscale = channels == 1 });
                });
            var baseline = RestorationEvaluator.EvaluateBaseline(data, protocol);
            var table = new TestTable(name, report, baseline);
            string baselineName = scale > 1 ? "bicubic" : "input";
            console.Out.WriteLine(TrainingRun.FormatTables([table], baselineName));
            console.Out.WriteLine($"weights: {net.Weights.Description}");
            if (saveDir is not null) console.Error.WriteLine($"wrote {data.Count} restored images into {Path.GetFullPath(saveDir)}");

            if (r.GetValue(json) is { } path)
            {
                WriteJson(path, table, baselineName, net, scale,
                    layoutName is not null ? $"paired by layout {layoutName} under {Path.GetFullPath(gtDir)}" : lqDir.Length > 0 ? Path.GetFullPath(lqDir) : null, tiles);
                console.Error.WriteLine($"wrote {path}");
            }
            return 0;
        });
        return command;
    }

    /// <summary>The test set read through the registered layout <paramref name="name"/> (<c>--type</c>), as a run's data set of that type.</summary>
    private static LayoutDataset LayoutData(IServiceProvider services, string name, DatasetRoots roots, PairedDatasetOptions options)
    {
        var layouts = services.GetRequiredService<IComponentRegistry<DatasetLayoutDescriptor>>();
        if (!layouts.TryGet(name, out var descriptor))
            throw new McirException($"--type {name}: not a data set layout (known: {string.Join(", ", layouts.All.Select(l => l.Name))})");
        var layout = descriptor!.Create(RunComposition.ComponentOptions(descriptor, null, "--type"));
        try { return new LayoutDataset(layout, roots, options); }
        catch (McirException e) { throw new McirException($"--type {name}: {e.Message}", e); }
    }

    // metrics.protocol of a run's config.resolved.json, or null (no run folder, no such key, an unknown name).
    private static string? RunProtocol(string? runDirectory)
    {
        if (runDirectory is null) return null;
        string path = Path.Combine(runDirectory, ModelWeights.ResolvedConfigName);
        if (!File.Exists(path)) return null;
        try
        {
            return JsonNode.Parse(File.ReadAllText(path))?["metrics"]?["protocol"] is JsonValue v && v.TryGetValue(out string? name) && EvaluationProtocols.IsKnown(name) ? name : null;
        }
        catch (System.Text.Json.JsonException) { return null; }
    }

    private static void WriteJson(string path, TestTable t, string baselineName, InferenceModel net, int scale, string? lqDir, TileOptions tiles)
    {
        var doc = new JsonObject
        {
            ["dataset"] = t.Dataset,
            ["weights"] = new JsonObject
            {
                ["argument"] = net.Weights.Argument,
                ["file"] = net.Weights.File,
                ["kind"] = net.Weights.Kind.ToString().ToLowerInvariant(),
                ["ema"] = net.Weights.Ema,
                ["param_key"] = net.Weights.ParamKey,
            },
            ["model"] = new JsonObject { ["name"] = net.Descriptor.Name, ["options"] = ConfigBinder.ToJson(net.Options) },
            ["scale"] = scale,
            ["lq"] = lqDir is null ? $"bicubic x1/{scale} of the GT" : lqDir,
            ["tile"] = tiles.TileSize is > 0 ? new JsonObject { ["size"] = tiles.TileSize, ["overlap"] = tiles.Overlap } : null,
            ["protocol"] = t.Model.Protocol.ToJson(),
            ["baseline_name"] = baselineName,
            ["mean"] = new JsonObject { ["psnr"] = Number(t.Model.MeanPsnr), ["ssim"] = t.Model.MeanSsim },
            ["baseline"] = new JsonObject { ["psnr"] = Number(t.Baseline.MeanPsnr), ["ssim"] = t.Baseline.MeanSsim },
            ["images"] = new JsonArray(t.Model.Images.Zip(t.Baseline.Images).Select(p => (JsonNode)new JsonObject
            {
                ["name"] = p.First.Name, ["psnr"] = Number(p.First.Psnr), ["ssim"] = p.First.Ssim,
                ["baseline_psnr"] = Number(p.Second.Psnr), ["baseline_ssim"] = p.Second.Ssim,
            }).ToArray()),
        };
        AtomicFile.WriteAllText(path, doc.ToJsonString(ConfigBinder.JsonOptions));
    }

    // JSON has no infinity: identical images (PSNR = inf) are written as the string "inf", like MetricsReport.WriteJson.
    private static JsonNode Number(double v) => double.IsPositiveInfinity(v) ? JsonValue.Create("inf") : JsonValue.Create(v);
}
