using System.Diagnostics;
using Mcir.Abstractions.Models;
using Mcir.Core.Data;
using Mcir.Core.Inference;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Runs;

/// <summary>What <see cref="RestoreRun"/> restores: the input files and where the results go (checked by <see cref="RestoreRun.Plan"/>).</summary>
/// <param name="Files">The image files, full paths.</param>
/// <param name="InputDirectory">The folder of the inputs (the input folder, or the folder of the one input file).</param>
/// <param name="OutputDirectory">The output folder, full path; created when the first image is written.</param>
public sealed record RestorePlan(IReadOnlyList<string> Files, string InputDirectory, string OutputDirectory);

/// <summary>
/// Restores image files with trained weights and writes the results as PNG (named like the inputs): the engine side of
/// <c>mcir-host restore</c>, as BasicSR's <c>inference/</c> scripts. Also the inference steps <c>test</c> shares: opening
/// the model on a device, the tile-safety warning and the image channels of a model.
/// </summary>
public static class RestoreRun
{
    /// <summary>
    /// Lists the inputs of <paramref name="input"/> (an image file or a folder of images) and checks the output folder:
    /// it must not be the input folder, and no two inputs may be written to the same <c>NAME.png</c>.
    /// </summary>
    /// <exception cref="McirException">No such input, not an image file, the output is the input folder, or two inputs share a stem.</exception>
    public static RestorePlan Plan(string input, string output)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(output);
        var files = ListInputs(input, out string inputDir);
        string outDir = Path.GetFullPath(output);
        if (SameFolder(outDir, inputDir))
            throw new McirException($"--output {output}: that is the input folder; choose another folder (inputs are never overwritten)");
        var stems = files.GroupBy(f => Path.GetFileNameWithoutExtension(f), StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (stems is not null)
            throw new McirException($"{inputDir}: {string.Join(" and ", stems.Select(Path.GetFileName))} would both be written as {stems.Key}.png");
        return new RestorePlan(files, inputDir, outDir);
    }

    /// <summary>
    /// Opens the model and weights of <paramref name="model"/>, then restores every file of <paramref name="plan"/>
    /// (whole or tile by tile) into its output folder. Progress lines (notes, warnings, one line per image) go to <paramref name="log"/>.
    /// </summary>
    /// <returns>How many images were written.</returns>
    public static int Execute(RestorePlan plan, InferenceModelRequest model, IModelRegistry models, TileOptions tiles, Device device, TextWriter log)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(tiles);
        ArgumentNullException.ThrowIfNull(log);
        using var net = Open(models, model, device, tiles, log);
        int channels = ImageChannels(net, out string channelSource);
        if (channels == 1) log.WriteLine($"model '{net.Descriptor.Name}' takes 1 channel ({channelSource}): images are read as gray (colour files by BT.601 luma) and written as gray PNGs");

        var read = new ImageReadOptions { Warning = w => log.WriteLine($"warning: {w}") };
        foreach (var file in plan.Files)
        {
            var clock = Stopwatch.StartNew();
            var image = Grayscale.Read(file, channels, read);
            RgbImage restored;
            using (NewDisposeScope())
            {
                using var x = ImageTensor.ToTensor(image, device, channels).unsqueeze(0);
                restored = ImageTensor.ToImage(TiledRestorer.Restore(net.Network, x, tiles));
            }
            Directory.CreateDirectory(plan.OutputDirectory); // only once there is something to write
            string target = Path.Combine(plan.OutputDirectory, Path.GetFileNameWithoutExtension(file) + ".png");
            ImageIO.Write(target, restored, new ImageWriteOptions { Grayscale = channels == 1 });
            log.WriteLine($"{Path.GetFileName(file)}: {image.Height}x{image.Width} -> {restored.Height}x{restored.Width} ({clock.Elapsed.TotalSeconds:F2} s)");
        }
        return plan.Files.Count;
    }

    /// <summary>
    /// <see cref="ModelWeights.Open"/>, then logs its notes, moves the network to <paramref name="device"/> and logs
    /// <see cref="TileWarning"/> when it applies. The caller disposes the model.
    /// </summary>
    internal static InferenceModel Open(IModelRegistry models, InferenceModelRequest model, Device device, TileOptions tiles, TextWriter log, Action<InferenceModel>? afterNotes = null)
    {
        var net = ModelWeights.Open(models, model);
        try
        {
            foreach (var note in net.Notes) log.WriteLine(note);
            afterNotes?.Invoke(net);
            net.MoveTo(device); // images are fed to the network's device
            if (TileWarning(net.Descriptor, tiles) is { } warning) log.WriteLine(warning);
            return net;
        }
        catch
        {
            net.Dispose();
            throw;
        }
    }

    /// <summary>The channels images are read with for <paramref name="net"/>: 1 (gray) or 3 (RGB).</summary>
    /// <exception cref="McirException">The model takes another number of channels.</exception>
    internal static int ImageChannels(InferenceModel net, out string source)
    {
        int channels = RunComposition.ModelInputChannels(net.Network, net.Options, out source);
        if (channels is not (1 or 3))
            throw new McirException($"model '{net.Descriptor.Name}' takes {channels} input channels ({source}); images are read with 1 (gray) or 3 (RGB)");
        return channels;
    }

    /// <summary>
    /// The one <c>warning:</c> line for tiled inference (<paramref name="tiles"/> with a tile size) of a model that is not
    /// tile-safe (<see cref="ModelDescriptor.TileSafe"/>), naming the model and why; null otherwise. The model is used as
    /// named: a local variant (e.g. nafnet-local) is not substituted, since it is not tile-exact either and would change
    /// the network.
    /// </summary>
    public static string? TileWarning(ModelDescriptor model, TileOptions tiles)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tiles);
        return tiles.TileSize is > 0 && !model.TileSafe
            ? $"warning: {model.Name} is not tile-safe: {TileSafetyReason(model)}, so each --tile {tiles.TileSize} tile sees other statistics than the whole image and the result differs everywhere, not only where tiles are blended; restore without --tile for the model's own output"
            : null;
    }

    /// <summary>The descriptor's <see cref="ModelDescriptor.TileSafetyNote"/>, or a generic reason when it has none.</summary>
    public static string TileSafetyReason(ModelDescriptor model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.TileSafetyNote is { Length: > 0 } note ? note : "its output depends on statistics of the whole input";
    }

    /// <summary>True when two paths name the same folder (after resolving relative parts and symbolic links).</summary>
    public static bool SameFolder(string a, string b)
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
}
