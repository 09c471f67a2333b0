using System.CommandLine;
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
            var request = new TestRequest
            {
                GtDir = r.GetValue(gt)!,
                LqDir = r.GetValue(lq) is { Length: > 0 } l ? l : null,
                FilenameTemplate = r.GetValue(tmpl)!,
                Layout = r.GetValue(type),
                MetaInfoFile = r.GetValue(metaInfo),
                CropBorder = r.GetValue(crop),
                YChannel = r.GetValue(y),
                Protocol = r.GetValue(protocolOption),
                SaveImages = r.GetValue(save),
            };
            TestRun.Check(request); // before anything is loaded
            request = request with { Tiles = model.Tiles(r), Device = model.ResolveDevice(r) };

            using var services = new ServiceCollection().AddMcirPlugins(plugins.Load(r)).BuildServiceProvider();
            var outcome = TestRun.Execute(request, model.Request(r), services.GetRunRegistries(), console.Error);
            console.Out.WriteLine(TrainingRun.FormatTables([outcome.Table]));
            console.Out.WriteLine($"weights: {outcome.Weights.Description}");
            if (request.SaveImages is { } saveDir) console.Error.WriteLine($"wrote {outcome.Table.Model.Images.Count} restored images into {Path.GetFullPath(saveDir)}");

            if (r.GetValue(json) is { } path)
            {
                ResultsJson.Write(path, outcome.ToJson());
                console.Error.WriteLine($"wrote {path}");
            }
            return 0;
        });
        return command;
    }
}
