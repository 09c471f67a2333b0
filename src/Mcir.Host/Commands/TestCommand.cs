using System.CommandLine;
using System.Text.Json.Nodes;
using Mcir.Abstractions.Models;
using Mcir.Core;
using Mcir.Core.Config;
using Mcir.Core.Data;
using Mcir.Core.Data.Datasets;
using Mcir.Core.Inference;
using Mcir.Core.IO;
using Mcir.Core.Metrics;
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
        var crop = new Option<int?>("--crop-border") { Description = "Pixels cropped from each border before scoring (default: the scale for SR, 0 otherwise)" };
        var y = new Option<bool>("--y-channel") { Description = "Score the BT.601 Y channel instead of RGB" };
        var save = new Option<string?>("--save-images") { Description = "Write the restored images (PNG, named like the GT) into this folder" };
        var json = new Option<string?>("--json") { Description = "Also write the numbers to this JSON file" };
        var plugins = new PluginOptions();
        var command = new Command("test", "Score trained weights on a test set: PSNR/SSIM per image and mean, beside the bicubic baseline for SR")
        {
            gt, lq, tmpl, crop, y, save, json,
        };
        model.AddTo(command);
        plugins.AddTo(command);
        command.SetAction(r =>
        {
            string gtDir = r.GetValue(gt)!, lqDir = r.GetValue(lq) ?? "";
            if (r.GetValue(crop) is < 0) throw new McirException($"--crop-border {r.GetValue(crop)}: expected 0 or more");
            if (!Directory.Exists(gtDir)) throw new McirException($"--gt {gtDir}: folder not found");
            string? saveDir = r.GetValue(save);
            if (saveDir is not null && (RestoreCommand.SameFolder(saveDir, gtDir) || (lqDir.Length > 0 && RestoreCommand.SameFolder(saveDir, lqDir))))
                throw new McirException($"--save-images {saveDir}: that is an input folder; choose another folder");
            var tiles = model.Tiles(r);
            var device = model.ResolveDevice(r);

            using var services = new ServiceCollection().AddMcirPlugins(plugins.Load(r)).BuildServiceProvider();
            using var net = ModelWeights.Open(services.GetRequiredService<IModelRegistry>(), model.Request(r));
            foreach (var note in net.Notes) console.Error.WriteLine(note);
            InferenceOptions.MoveTo(net.Network, device); // the evaluator feeds images to the network's device
            if (InferenceOptions.TileWarning(net.Descriptor, tiles) is { } warning) console.Error.WriteLine(warning);

            int scale = r.GetValue(model.Scale) ?? net.Upscale
                ?? (lqDir.Length > 0 ? 1 : throw new McirException($"give --lq (input images) or --scale (bicubic LR made from the GT): model '{net.Descriptor.Name}' has no 'upscale' option to take the scale from"));
            if (lqDir.Length == 0 && r.GetValue(tmpl) != "{}") throw new McirException($"--filename-tmpl {r.GetValue(tmpl)}: only used with --lq");
            int channels = RunComposition.ModelInputChannels(net.Network, net.Options, out string channelSource);
            if (channels is not (1 or 3))
                throw new McirException($"model '{net.Descriptor.Name}' takes {channels} input channels ({channelSource}); images are read with 1 (gray) or 3 (RGB)");
            var options = new PairedDatasetOptions { Scale = scale, CacheImages = true, Channels = channels };
            IPairedDataset data = lqDir.Length > 0 ? new PairedFolderDataset(gtDir, lqDir, options, r.GetValue(tmpl)!) : new HrFolderDataset(gtDir, options);
            var protocol = new MetricsProtocol(r.GetValue(crop) ?? (scale > 1 ? scale : 0), r.GetValue(y));
            string name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(gtDir)));
             console.Error.WriteLine($"test set {name}: {data.Count} images, scale {scale}, {(channels == 1 ? "gray (1 channel), " : "")}input {(lqDir.Length > 0 ? lqDir : $"bicubic x1/{scale} of the GT")}{(tiles.TileSize > 0 ? $", tiles {tiles.TileSize} overlap {tiles.Overlap}" : "")}");

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
                WriteJson(path, table, baselineName, net, scale, lqDir.Length > 0 ? Path.GetFullPath(lqDir) : null, tiles);
                console.Error.WriteLine($"wrote {path}");
            }
            return 0;
        });
        return command;
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
            ["protocol"] = new JsonObject { ["crop_border"] = t.Model.Protocol.CropBorder, ["y_channel"] = t.Model.Protocol.YChannel },
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
