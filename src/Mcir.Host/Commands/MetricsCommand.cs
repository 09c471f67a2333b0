using System.CommandLine;
using Mcir.Core;
using Mcir.Core.Metrics;

namespace Mcir.Host.Commands;

/// <summary><c>mcir-host metrics</c>: PSNR/SSIM of restored images against ground truth, BasicSR's protocol.</summary>
internal static class MetricsCommand
{
    public static Command Create(HostConsole console)
    {
        var gt = new Option<string>("--gt") { Description = "Folder of ground-truth images", Required = true };
        var restored = new Option<string>("--restored") { Description = "Folder of restored images (paired with --gt by file name)", Required = true };
        var crop = new Option<int>("--crop-border") { Description = "Pixels cropped from each border before scoring (SR: the scale)", DefaultValueFactory = _ => 0 };
        var y = new Option<bool>("--y-channel") { Description = "Score the BT.601 Y channel (SR, deraining) instead of RGB" };
        var json = new Option<string?>("--json") { Description = "Also write the numbers to this JSON file" };
        var command = new Command("metrics", "PSNR and SSIM per image and their mean, as BasicSR's calculate_psnr/calculate_ssim")
        {
            gt, restored, crop, y, json,
        };
        command.SetAction(r =>
        {
            // Checked here, not in a validator: a validator's GetValue throws for a value that does not parse.
            if (r.GetValue(crop) < 0) throw new McirException($"--crop-border {r.GetValue(crop)}: expected 0 or more");
            var report = FolderEvaluation.Evaluate(r.GetValue(gt)!, r.GetValue(restored)!, new MetricsProtocol(r.GetValue(crop), r.GetValue(y)),
                warning: w => console.Error.WriteLine($"warning: {w}"));
            console.Out.WriteLine(report.ToTable());
            if (r.GetValue(json) is { } path)
            {
                report.WriteJson(path);
                console.Error.WriteLine($"wrote {path}");
            }
            return 0;
        });
        return command;
    }
}
