using Mcir.Abstractions.Components;

namespace Mcir.Core.Data.Datasets;

/// <summary>
/// <c>reside</c>: RESIDE as downloaded and as DehazeFormer re-arranges it. Each hazy image is paired with the clear image
/// of the same file name when there is one (DehazeFormer's PairLoader, RESIDE-6K's <c>hazy/</c> + <c>GT/</c>), else with
/// the clear image whose stem is the hazy stem up to its first <c>_</c>, any extension (FFA-Net's <c>RESIDE_Dataset</c>:
/// ITS <c>1_1_0.90179.png</c> → <c>1.png</c>, SOTS indoor <c>1400_3.png</c> → <c>1400.png</c>, SOTS outdoor
/// <c>0001_0.8_0.2.jpg</c> → <c>0001.png</c>). The clear image is centre-cropped to the hazy size when larger, as FFA-Net's
/// loader does (SOTS indoor: 640×480 GT, 620×460 hazy).
/// </summary>
/// <remarks>
/// Folders: <c>dataroot_lq</c> = the hazy folder and <c>dataroot_gt</c> = the clear one; or only <c>dataroot_gt</c> = the
/// set's folder holding <c>hazy/</c> and one of <c>clear/</c>, <c>gt/</c>, <c>GT/</c>. Every clear image must be used by
/// some hazy image. Samples are named by the hazy stem.
/// </remarks>
public sealed class ResideLayout : IDatasetLayout
{
    /// <summary>The registered descriptor.</summary>
    public static DatasetLayoutDescriptor Descriptor { get; } = DatasetLayoutDescriptor.Of<ResideLayout, NoLayoutOptions>(
        "reside", "RESIDE ITS/SOTS/RESIDE-6K: hazy <id>_<k>[_<beta>].ext ↔ clear <id>.ext' (or the same name); clear centre-cropped to the hazy size",
        new NoLayoutOptions(), _ => new ResideLayout());

    /// <inheritdoc />
    public string Name => "reside";

    /// <inheritdoc />
    public string Rule => "clear = the hazy file's name, else <hazy stem up to the first '_'>.<any image extension>";

    /// <inheritdoc />
    public IReadOnlyList<PairedFiles> Pair(DatasetRoots roots)
    {
        ArgumentNullException.ThrowIfNull(roots);
        var (hazyDir, clearDir) = Folders(roots, ["hazy"], ["clear", "gt", "GT"], "hazy/ and clear/ (or gt/, GT/)");
        var hazy = FilePairing.ListImages(hazyDir, "hazy folder");
        var clear = FilePairing.ListImages(clearDir, "clear folder");
        var pairs = FilePairing.Match(hazy, "hazy", clear, "clear", h =>
        {
            string stem = Path.GetFileNameWithoutExtension(h);
            int cut = stem.IndexOf('_');
            return cut > 0 ? [stem, stem[..cut]] : [stem];
        }, $"{Rule}; hazy {hazyDir}, clear {clearDir}", targetsShared: true, everyTargetUsed: true);
        var result = pairs.Select(p => new PairedFiles(Path.GetFileNameWithoutExtension(p.Driver), p.Target, p.Driver) { CenterCropGt = true })
            .OrderBy(p => p.Name, StringComparer.Ordinal).ToList();
        FilePairing.CheckUniqueNames(result, Rule);
        return result;
    }

    /// <summary>
    /// (input folder, GT folder): <c>dataroot_lq</c> and <c>dataroot_gt</c> when both are set, else the first existing
    /// sub-folders of <c>dataroot_gt</c> among <paramref name="lqNames"/> and <paramref name="gtNames"/>.
    /// </summary>
    internal static (string Lq, string Gt) Folders(DatasetRoots roots, string[] lqNames, string[] gtNames, string expected)
    {
        if (roots.DatarootLq is { } lq) return (lq, roots.DatarootGt);
        if (!Directory.Exists(roots.DatarootGt)) throw new DatasetLayoutException($"dataroot_gt {roots.DatarootGt}: folder not found");
        string? l = FilePairing.FindSubfolder(roots.DatarootGt, lqNames), g = FilePairing.FindSubfolder(roots.DatarootGt, gtNames);
        if (l is null || g is null)
            throw new DatasetLayoutException($"dataroot_gt {roots.DatarootGt}: dataroot_lq is not set and the folder does not hold {expected}; set dataroot_lq to the input folder and dataroot_gt to the ground-truth folder, or dataroot_gt to the folder that holds both");
        return (l, g);
    }
}
