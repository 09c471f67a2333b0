using Mcir.Abstractions.Components;

namespace Mcir.Core.Data.Datasets;

/// <summary>
/// <c>gopro</c>: GoPro (GOPRO_Large) as downloaded: <c>&lt;split&gt;/&lt;sequence&gt;/blur/&lt;frame&gt;.png</c> ↔
/// <c>&lt;split&gt;/&lt;sequence&gt;/sharp/&lt;frame&gt;.png</c>, found recursively under <c>dataroot_gt</c> (the split folder,
/// e.g. <c>GOPRO_Large/train</c>). <c>blur/</c> is used, not <c>blur_gamma/</c>: the MPRNet/HINet/NAFNet copy is the
/// <c>blur</c> version. Samples are named <c>&lt;sequence&gt;-&lt;frame&gt;</c> (<c>GOPR0372_07_00-000047</c>). NAFNet's
/// flattened copy, <c>dataroot_gt</c> holding <c>input/</c> + <c>target/</c> with the same names, is read too.
/// </summary>
public sealed class GoProLayout : IDatasetLayout
{
    /// <summary>The registered descriptor.</summary>
    public static DatasetLayoutDescriptor Descriptor { get; } = DatasetLayoutDescriptor.Of<GoProLayout, NoLayoutOptions>(
        "gopro", "GoPro: <sequence>/blur/*.png ↔ <sequence>/sharp/*.png under dataroot_gt (recursive), or NAFNet's input/ ↔ target/",
        new NoLayoutOptions(), _ => new GoProLayout());

    /// <inheritdoc />
    public string Name => "gopro";

    /// <inheritdoc />
    public string Rule => "<sequence>/blur/<frame> ↔ <sequence>/sharp/<frame> (same stem), or input/<name> ↔ target/<name>";

    /// <inheritdoc />
    public IReadOnlyList<PairedFiles> Pair(DatasetRoots roots)
    {
        ArgumentNullException.ThrowIfNull(roots);
        string root = roots.DatarootGt;
        if (!Directory.Exists(root)) throw new DatasetLayoutException($"dataroot_gt {root}: folder not found");
        List<PairedFiles> result = [];
        if (roots.DatarootLq is not null || (Directory.Exists(Path.Combine(root, "input")) && Directory.Exists(Path.Combine(root, "target"))))
        {
            var (lqDir, gtDir) = ResideLayout.Folders(roots, ["input"], ["target"], "input/ and target/");
            var pairs = FilePairing.Match(FilePairing.ListImages(lqDir, "blurred folder"), "blurred", FilePairing.ListImages(gtDir, "sharp folder"), "sharp",
                b => [Path.GetFileNameWithoutExtension(b)], $"same name; blurred {lqDir}, sharp {gtDir}", targetsShared: false, everyTargetUsed: true);
            result.AddRange(pairs.Select(p => new PairedFiles(Path.GetFileNameWithoutExtension(p.Driver), p.Target, p.Driver)));
        }
        else
        {
            var blurDirs = Directory.EnumerateDirectories(root, "blur", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList();
            if (blurDirs.Count == 0)
                throw new DatasetLayoutException($"dataroot_gt {root}: no 'blur' folder below it (rule: {Rule}); point dataroot_gt at GOPRO_Large/train or GOPRO_Large/test");
            foreach (var blur in blurDirs)
            {
                string sequenceDir = Path.GetDirectoryName(blur)!;
                string sharp = Path.Combine(sequenceDir, "sharp");
                if (!Directory.Exists(sharp))
                    throw new DatasetLayoutException($"{blur}: no sibling folder 'sharp' (rule: {Rule})");
                string sequence = Path.GetRelativePath(root, sequenceDir).Replace(Path.DirectorySeparatorChar, '_');
                var pairs = FilePairing.Match(FilePairing.ListImages(blur, "blurred folder"), "blurred", FilePairing.ListImages(sharp, "sharp folder"), "sharp",
                    b => [Path.GetFileNameWithoutExtension(b)], $"{Rule}; sequence {sequenceDir}", targetsShared: false, everyTargetUsed: true);
                result.AddRange(pairs.Select(p => new PairedFiles(
                    sequence == "." ? Path.GetFileNameWithoutExtension(p.Driver) : $"{sequence}-{Path.GetFileNameWithoutExtension(p.Driver)}", p.Target, p.Driver)));
            }
        }
        result = result.OrderBy(p => p.Name, StringComparer.Ordinal).ToList();
        FilePairing.CheckUniqueNames(result, Rule);
        return result;
    }
}
