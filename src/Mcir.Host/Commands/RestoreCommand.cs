using System.CommandLine;
using Mcir.Abstractions.Models;
using Mcir.Core;
using Mcir.Core.Inference;
using Mcir.Core.Runs;
using Microsoft.Extensions.DependencyInjection;

namespace Mcir.Host.Commands;

/// <summary><c>mcir-host restore</c>: runs a trained network over images and writes the results as PNG.</summary>
internal static class RestoreCommand
{
    public static Command Create(HostConsole console)
    {
        var model = new InferenceOptions();
        var input = new Option<string>("--input") { Description = "Image file or folder of images to restore", Required = true };
        var output = new Option<string>("--output") { Description = "Folder for the restored images (PNG, named like the inputs); must not be the input folder", Required = true };
        var plugins = new PluginOptions();
        var command = new Command("restore", "Restore images with a trained network (whole or tile by tile)") { input, output };
        model.AddTo(command);
        plugins.AddTo(command);
        command.SetAction(r =>
        {
            var plan = RestoreRun.Plan(r.GetValue(input)!, r.GetValue(output)!); // before anything is loaded
            var tiles = model.Tiles(r);
            var device = model.ResolveDevice(r);

            using var services = new ServiceCollection().AddMcirPlugins(plugins.Load(r)).BuildServiceProvider();
            int count = RestoreRun.Execute(plan, model.Request(r), services.GetRequiredService<IModelRegistry>(), tiles, device, console.Error);
            console.Out.WriteLine($"restored {count} image{(count == 1 ? "" : "s")} into {plan.OutputDirectory}");
            return 0;
        });
        return command;
    }
}

/// <summary>The options <c>restore</c> and <c>test</c> share: model, weights and tiling.</summary>
internal sealed class InferenceOptions
{
    public Option<string> Weights { get; } = new("--weights")
    {
        Description = "Run folder (newest complete checkpoint), checkpoint folder, or state-dict file (BasicSR .pth / .safetensors)",
        Required = true,
    };

    public Option<string?> Model { get; } = new("--model") { Description = "Registered model name (default: the model of the weights' run)" };

    public Option<int?> Scale { get; } = new("--scale") { Description = "Upscaling factor: sets the model option 'upscale'" };

    public Option<string[]> Set { get; } = new("--set")
    {
        Description = "Set a model option: key=value (repeatable), e.g. num_feat=64",
        AllowMultipleArgumentsPerToken = true,
    };

    public Option<EmaChoice> Ema { get; } = new("--ema")
    {
        Description = "auto: EMA weights when the checkpoint has them (ema.safetensors / params_ema); on: require them; off: the plain weights",
        DefaultValueFactory = _ => EmaChoice.Auto,
    };

    public Option<string?> ParamKey { get; } = new("--param-key") { Description = "Wrapper key of a .pth file (e.g. params, params_ema); default params_ema if present, else params" };

    public Option<bool> Strict { get; } = new("--strict")
    {
        Description = "true (default): the weights must fit the model exactly; false: load the keys with the same name and shape and list every ignored and missing key",
        DefaultValueFactory = _ => true,
    };

    public Option<int> Tile { get; } = new("--tile") { Description = "Tile size in input pixels (0 = whole image)", DefaultValueFactory = _ => 0 };

    public Option<int> TileOverlap { get; } = new("--tile-overlap") { Description = "Input pixels shared by neighbouring tiles", DefaultValueFactory = _ => 16 };

    public Option<int> PadMultiple { get; } = new("--pad-multiple") { Description = "Also reflect-pad each network input to a multiple of this, then crop (models that need a multiple, e.g. SwinIR's window size, are padded without it)", DefaultValueFactory = _ => 1 };

    public Option<string> Device { get; } = new("--device")
    {
        Description = "Where the model computes: auto (the first CUDA device when the CUDA backend is present, else the CPU), cpu, cuda or cuda:N",
        DefaultValueFactory = _ => "auto",
    };

    /// <summary>Resolves <c>--device</c> (before anything is loaded) .</summary>
    public TorchSharp.torch.Device ResolveDevice(ParseResult r) => Mcir.Core.Compute.TorchDevice.Resolve(r.GetValue(Device), "--device");

    public void AddTo(Command command)
    {
        foreach (var o in new Option[] { Weights, Model, Scale, Set, Ema, ParamKey, Strict, Tile, TileOverlap, PadMultiple, Device })
            command.Options.Add(o);
    }

    // Checked here rather than in a command validator, where option defaults are not applied.
    public InferenceModelRequest Request(ParseResult r)
    {
        if (r.GetValue(Scale) is { } s && s < 1) throw new McirException($"--scale {s}: expected 1 or more");
        return new()
        {
            Weights = r.GetValue(Weights)!,
            Model = r.GetValue(Model),
            Set = r.GetValue(Set) ?? [],
            Scale = r.GetValue(Scale),
            Ema = r.GetValue(Ema),
            ParamKey = r.GetValue(ParamKey),
            Strict = r.GetValue(Strict),
        };
    }

    public TileOptions Tiles(ParseResult r)
    {
        int tile = r.GetValue(Tile), overlap = r.GetValue(TileOverlap), multiple = r.GetValue(PadMultiple);
        if (tile < 0) throw new McirException($"--tile {tile}: expected 0 (whole image) or a positive size");
        if (overlap < 0) throw new McirException($"--tile-overlap {overlap}: expected 0 or more");
        if (tile > 0 && overlap >= tile) throw new McirException($"--tile-overlap {overlap} must be smaller than --tile {tile}");
        if (multiple < 1) throw new McirException($"--pad-multiple {multiple}: expected 1 or more");
        return new TileOptions { TileSize = tile, Overlap = overlap, PadMultiple = multiple };
    }
}
