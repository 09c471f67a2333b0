using System.CommandLine;
using Mcir.Core;
using Mcir.Core.Runs;

namespace Mcir.Host.Commands;

/// <summary><c>mcir-host plot</c>: loss parts and validation PSNR/SSIM over iterations of one or more runs, as a PNG.</summary>
internal static class PlotCommand
{
    public static Command Create(HostConsole console)
    {
        var runs = new Argument<string[]>("RUN") { Description = "Run folders (or their metrics.jsonl files); several are overlaid", Arity = ArgumentArity.OneOrMore };
        var output = new Option<string>("--output") { Description = "PNG file to write", DefaultValueFactory = _ => RunCurves.FileName };
        var width = new Option<int>("--width") { Description = "Image width in pixels", DefaultValueFactory = _ => 1200 };
        var command = new Command("plot", "Draw loss parts and validation PSNR/SSIM over iterations from runs' metrics.jsonl, overlaid with a legend")
        {
            runs, output, width,
        };
        command.SetAction(r =>
        {
            if (r.GetValue(width) < 200) throw new McirException($"--width {r.GetValue(width)}: expected 200 or more");
            var series = r.GetValue(runs)!.Select(RunCurves.Read).ToList();
            RunCurves.Write(series, r.GetValue(output)!, r.GetValue(width));
            console.Error.WriteLine($"wrote {r.GetValue(output)}");
            return 0;
        });
        return command;
    }
}
