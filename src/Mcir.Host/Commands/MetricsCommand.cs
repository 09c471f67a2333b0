using System.CommandLine;
using Mcir.Core;
using Mcir.Core.Metrics;
using Mcir.Core.Metrics.Protocols;

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
            if (r.GetValue(crop) < 0) throw new McirException($"--crop-border {r.GetValue(crop)}: expected 0 or more");
            string name = r.GetValue(protocolOption)!;
            if (!EvaluationProtocols.IsKnown(name)) throw new McirException($"--protocol {name}: {EvaluationProtocols.UnknownMessage(name)}");
            if (name != EvaluationProtocols.Default && (r.GetValue(crop) is not null || r.GetValue(y)))
                throw new McirException($"--{(r.GetValue(crop) is not null ? "crop-border" : "y-channel")}: only protocol basicsr takes it; protocol {name} fixes its own crop and channels");
            int? s = r.GetValue(scale);
            if (s is < 1) throw new McirException($"--scale {s}: expected 1 or more");
            if (name == BasicSrProtocol.SrName && s is null) throw new McirException("--protocol sr: give --scale (the crop border is the scale)");
            if (name != BasicSrProtocol.SrName && s is not null) throw new McirException($"--scale: only protocol sr takes it (crop border = scale); protocol {name} does not");
            var protocol = EvaluationProtocols.Create(name, new MetricsProtocol(r.GetValue(crop) ?? 0, r.GetValue(y)), s ?? 1, "--protocol");
            if (protocol.UsesFloatOutput)
                console.Error.WriteLine($"note: protocol {name} scores a network's float output; here it scores the 8-bit files (value / 255), which can differ from the published numbers by the quantisation");
            var report = FolderEvaluation.Evaluate(r.GetValue(gt)!, r.GetValue(restored)!, protocol,
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
