using System.Text.RegularExpressions;
using Mcir.Abstractions.Components;

namespace Mcir.Core.Data.Datasets;

/// <summary>
/// <c>rain200</c>: Rain200L/H as downloaded (JORDER release: <c>rain/X2/norain-{i}x2.png</c> ↔ <c>norain/norain-{i}.png</c>)
/// and IDT's re-arranged copy (<c>input/rain-{i}.png</c> ↔ <c>groundtruth/norain-{i}.png</c>, jiexiaou/IDT
/// dataset/imgdata.py). The input stem loses a trailing <c>x{scale}</c>; a leading <c>rain-</c> becomes <c>norain-</c>; a
/// same-name GT is also accepted.
/// </summary>
/// <remarks>
/// Folders: <c>dataroot_lq</c> + <c>dataroot_gt</c>, or only <c>dataroot_gt</c> = the set's folder holding <c>rain/X2</c>
/// (or <c>rain/</c>) + <c>norain/</c>, or <c>input/</c> + <c>groundtruth/</c>. One input per GT, both folders the same set.
/// Samples are named by the GT stem (<c>norain-12</c>).
/// </remarks>
public sealed partial class Rain200Layout : IDatasetLayout
{
    /// <summary>The registered descriptor.</summary>
    public static DatasetLayoutDescriptor Descriptor { get; } = DatasetLayoutDescriptor.Of<Rain200Layout, NoLayoutOptions>(
        "rain200", "Rain200L/H: rain/X2/norain-{i}x2.png ↔ norain/norain-{i}.png, or IDT's input/rain-{i}.png ↔ groundtruth/norain-{i}.png",
        new NoLayoutOptions(), _ => new Rain200Layout());

    /// <inheritdoc />
    public string Name => "rain200";

    /// <inheritdoc />
    public string Rule => "GT stem = the input stem without a trailing 'x<scale>', 'rain-' → 'norain-'";

    [GeneratedRegex(@"x\d+$")]
    private static partial Regex ScaleSuffix();

    /// <inheritdoc />
    public IReadOnlyList<PairedFiles> Pair(DatasetRoots roots)
    {
        ArgumentNullException.ThrowIfNull(roots);
        string? lqDir = roots.DatarootLq, gtDir = roots.DatarootGt;
        if (lqDir is null)
        {
            if (FilePairing.FindSubfolder(gtDir, "input") is { } input && FilePairing.FindSubfolder(gtDir, "groundtruth") is { } truth)
                (lqDir, gtDir) = (input, truth);
            else
                (lqDir, gtDir) = ResideLayout.Folders(roots, ["rain/X2", "rain"], ["norain"], "rain/X2/ (or rain/) and norain/, or input/ and groundtruth/");
        }
        var lqs = FilePairing.ListImages(lqDir, "rainy folder");
        var gts = FilePairing.ListImages(gtDir, "clean folder");
        var pairs = FilePairing.Match(lqs, "rainy", gts, "clean", GtStems, $"{Rule}; rainy {lqDir}, clean {gtDir}", targetsShared: false, everyTargetUsed: true);
        var result = pairs.Select(p => new PairedFiles(Path.GetFileNameWithoutExtension(p.Target), p.Target, p.Driver))
            .OrderBy(p => p.Name, StringComparer.Ordinal).ToList();
        FilePairing.CheckUniqueNames(result, Rule);
        return result;
    }

    private static IEnumerable<string> GtStems(string rainy)
    {
        string stem = Path.GetFileNameWithoutExtension(rainy);
        string bare = ScaleSuffix().Replace(stem, "");
        yield return bare;
        if (bare.StartsWith("rain-", StringComparison.Ordinal)) yield return "no" + bare;
        yield return stem;
    }
}
