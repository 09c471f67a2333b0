using System.CommandLine;
using Mcir.Core.Metrics;
using Mcir.Core.Metrics.Protocols;
using Mcir.Core.Runs;

namespace Mcir.Host.Commands;

/// <summary><c>mcir-host metrics</c>: PSNR/SSIM of restored images against ground truth, BasicSR's protocol.</summary>
internal static class MetricsCommand
{
    public static Command Create(HostConsole console)
    {
        var gt = new Option<string>("--gt") { Description = "Folder of ground-truth images", Required = true };
        var restored = new Option<string>("--restored") { Description = "Folder of restored images (paired with --gt by file name)", Required = true };
        var crop = new Option<int?>("--crop-border") { Description = "Pixels cropped from each border before scoring (SR: the scale; default 0)" };
        var y = new Option<bool>("--y-channel") { Description = "Score the BT.601 Y channel (SR, deraining) instead of RGB (protocol basicsr)" };
        var protocolOption = new Option<string>("--protocol")
        {
            Description = $"Evaluation protocol: {string.Join(", ", EvaluationProtocols.Names)} (docs/configuration.md); --crop-border and --y-channel belong to basicsr, --scale to sr",
            DefaultValueFactory = _ => EvaluationProtocols.Default,
        };
        var scale = new Option<int?>("--scale") { Description = "The SR scale (protocol sr: crop border = scale)" };
        var json = new Option<string?>("--json") { Description = "Also write the numbers to this JSON file" };
        var command = new Command("metrics", "PSNR and SSIM per image and their mean, by an evaluation protocol (default basicsr: BasicSR's calculate_psnr/calculate_ssim)")
        {
            gt, restored, crop, y, protocolOption, scale, json,
        };
        command.SetAction(r =>
        {
            // Checked here, not in a validator: a validator's GetValue throws for a value that does not parse.
            var protocol = MetricsRun.Protocol(r.GetValue(protocolOption)!, r.GetValue(crop), r.GetValue(y), r.GetValue(scale));
            string gtDir = r.GetValue(gt)!;
            var report = MetricsRun.Execute(gtDir, r.GetValue(restored)!, protocol, console.Error);
            console.Out.WriteLine(report.ToTable());
            if (r.GetValue(json) is { } path)
            {
                ResultsJson.Write(path, report.ToJson(MetricsRun.DatasetName(gtDir)));
                console.Error.WriteLine($"wrote {path}");
            }
            return 0;
        });
        return command;
    }
}
