using System.CommandLine;
using Mcir.Core.Data;

namespace Mcir.Host.Commands;

/// <summary><c>mcir-host degrade bicubic</c>: makes LR images as DIV2K/Set5 LR sets are made.</summary>
internal static class DegradeCommand
{
    public static Command Create(HostConsole console)
    {
        var scale = new Option<int>("--scale") { Description = "Downscaling factor (2, 3, 4, ...)", Required = true };
        var input = new Option<string>("--input") { Description = "Folder of high-resolution images (never modified)", Required = true };
        var output = new Option<string>("--output") { Description = "Folder for the LR PNGs (must not be the input folder)", Required = true };
        var bicubic = new Command("bicubic", "Mod-crop to the scale, MATLAB bicubic downscaling with antialiasing, 8-bit PNG output")
        {
            scale, input, output,
        };
        bicubic.SetAction(r =>
        {
            var written = BicubicDegradation.DegradeFolder(r.GetValue(input)!, r.GetValue(output)!, r.GetValue(scale), console.Error.WriteLine);
            console.Out.WriteLine($"{written.Count} images written to {r.GetValue(output)}");
            return 0;
        });
        return new Command("degrade", "Make degraded (low-quality) inputs from clean images") { bicubic };
    }
}
