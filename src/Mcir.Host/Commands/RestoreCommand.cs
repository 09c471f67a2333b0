using System.CommandLine;
using System.Diagnostics;
using Mcir.Abstractions.Models;
using Mcir.Core;
using Mcir.Core.Data;
using Mcir.Core.Inference;
using Mcir.Core.Runs;
using Microsoft.Extensions.DependencyInjection;
using TorchSharp;
using static TorchSharp.torch;

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
            var files = ListInputs(r.GetValue(input)!, out string inputDir);
            string outDir = Path.GetFullPath(r.GetValue(output)!);
            if (SameFolder(outDir, inputDir))
                throw new McirException($"--output {r.GetValue(output)}: that is the input folder; choose another folder (inputs are never overwritten)");
            var stems = files.GroupBy(f => Path.GetFileNameWithoutExtension(f), StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
            if (stems is not null)
                throw new McirException($"{inputDir}: {string.Join(" and ", stems.Select(Path.GetFileName))} would both be written as {stems.Key}.png");
            var tiles = model.Tiles(r);
            var device = model.ResolveDevice(r);

            using var services = new ServiceCollection().AddMcirPlugins(plugins.Load(r)).BuildServiceProvider();
            using var net = ModelWeights.Open(services.GetRequiredService<IModelRegistry>(), model.Request(r));
            foreach (var note in net.Notes) console.Error.WriteLine(note);
            InferenceOptions.MoveTo(net.Network, device);
            if (InferenceOptions.TileWarning(net.Descriptor, tiles) is { } warning) console.Error.WriteLine(warning);
            int channels = RunComposition.ModelInputChannels(net.Network, net.Options, out string channelSource);
            if (channels is not (1 or 3))
                throw new McirException($"model '{net.Descriptor.Name}' takes {channels} input channels ({channelSource}); images are read with 1 (gray) or 3 (RGB)");
            if (channels == 1) console.Error.WriteLine($"model '{net.Descriptor.Name}' takes 1 channel ({channelSource}): images are read as gray (colour files by BT.601 luma) and written as gray PNGs");

            var read = new ImageReadOptions { Warning = w => console.Error.WriteLine($"warning: {w}") };
            foreach (var file in files)
            {
                var clock = Stopwatch.StartNew();
                var image = Grayscale.Read(file, channels, read);
                RgbImage restored;
                using (NewDisposeScope())
                {
                    using var x = ImageTensor.ToTensor(image, device, channels).unsqueeze(0);
                    restored = ImageTensor.ToImage(TiledRestorer.Restore(net.Network, x, tiles));
                }
                Directory.CreateDirectory(outDir); // only once there is something to write
                string target = Path.Combine(outDir, Path.GetFileNameWithoutExtension(file) + ".png");
                ImageIO.Write(target, restored, new ImageWriteOptions { Grayscale = channels == 1 });
                console.Error.WriteLine($"{Path.GetFileName(file)}: {image.Height}x{image.Width} -> {restored.Height}x{restored.Width} ({clock.Elapsed.TotalSeconds:F2} s)");
            }
            console.Out.WriteLine($"restored {files.Count} image{(files.Count == 1 ? "" : "s")} into {outDir}");
            return 0;
        });
        return command;
    }

    private static IReadOnlyList<string> ListInputs(string input, out string inputDir)
    {
        string full = Path.GetFullPath(input);
        if (File.Exists(full))
        {
            if (!ImageFolder.Extensions.Contains(Path.GetExtension(full)))
                throw new McirException($"--input {input}: not an image file (expected {string.Join(", ", ImageFolder.Extensions.Order())})");
            inputDir = Path.GetDirectoryName(full)!;
            return [full];
        }
        if (!Directory.Exists(full)) throw new McirException($"--input {input}: no such file or folder");
        inputDir = full;
        return ImageFolder.List(full);
    }

    /// <summary>True when two paths name the same folder (after resolving relative parts and symbolic links).</summary>
    internal static bool SameFolder(string a, string b)
    {
        static string Canon(string p)
        {
            string full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(p));
            try
            {
                if (Directory.Exists(full) && new DirectoryInfo(full).ResolveLinkTarget(returnFinalTarget: true) is { } target)
                    full = Path.TrimEndingDirectorySeparator(target.FullName);
            }
            catch (IOException) { }
            return full;
        }
        var comparison = OperatingSystem.IsWindows() || OperatingSystem.IsMacOS() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
        return string.Equals(Canon(a), Canon(b), comparison);
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

    /// <summary>Moves a loaded network to <paramref name="device"/> (no-op on the CPU, where it was loaded).</summary>
    public static void MoveTo(TorchSharp.torch.nn.Module network, TorchSharp.torch.Device device)
    {
        if (device.type != TorchSharp.DeviceType.CPU) network.to(device);
    }

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

    /// <summary>
    /// The one <c>warning:</c> line for tiled inference (<paramref name="tiles"/> with a tile size) of a model that is not
    /// tile-safe (<see cref="ModelDescriptor.TileSafe"/>), naming the model and why; null otherwise. The model is used as
    /// named: a local variant (e.g. nafnet-local) is not substituted, since it is not tile-exact either and would change
    /// the network.
    /// </summary>
    public static string? TileWarning(ModelDescriptor model, TileOptions tiles) =>
        tiles.TileSize is > 0 && !model.TileSafe
            ? $"warning: {model.Name} is not tile-safe: {TileSafetyReason(model)}, so each --tile {tiles.TileSize} tile sees other statistics than the whole image and the result differs everywhere, not only where tiles are blended; restore without --tile for the model's own output"
            : null;

    /// <summary>The descriptor's <see cref="ModelDescriptor.TileSafetyNote"/>, or a generic reason when it has none.</summary>
    public static string TileSafetyReason(ModelDescriptor model) =>
        model.TileSafetyNote is { Length: > 0 } note ? note : "its output depends on statistics of the whole input";

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
