using Mcir.Abstractions.Components;

namespace Mcir.Core.Data.Datasets;

/// <summary>
/// <c>spa</c>: SPA-Data (SPANet, CVPR 2019) as downloaded. With <c>meta_info_file</c> = SPA's list
/// (<c>real_world.txt</c>, <c>real_test_1000.txt</c>): each non-empty line holds the rainy path and the clean path
/// separated by a space (stevewongv/SPANet dataset.py), relative to <c>dataroot_gt</c> (the folder the archive was
/// extracted in, normally the list's folder); a leading <c>./</c> or <c>/</c> is dropped, as SPANet's loader prepends
/// <c>.</c>. Without a list: <c>dataroot_gt</c> holds <c>rain/</c> + <c>gt/</c> as the extracted test set,
/// <c>rain/{n}.png</c> ↔ <c>gt/{n}gt.png</c> (a same-name GT is also accepted).
/// </summary>
/// <remarks>Samples are named by the rainy stem. IDT's renumbered copy (<c>input/</c> + <c>groundtruth/</c>, same names) is a <c>paired-folder</c>.</remarks>
public sealed class SpaLayout : IDatasetLayout
{
    /// <summary>The registered descriptor.</summary>
    public static DatasetLayoutDescriptor Descriptor { get; } = DatasetLayoutDescriptor.Of<SpaLayout, NoLayoutOptions>(
        "spa", "SPA-Data: meta_info_file lists 'rainy clean' path pairs; or rain/{n}.png ↔ gt/{n}gt.png",
        new NoLayoutOptions(), _ => new SpaLayout());

    /// <inheritdoc />
    public string Name => "spa";

    /// <inheritdoc />
    public string Rule => "each line of meta_info_file: '<rainy path> <clean path>' relative to dataroot_gt; or rain/{n}.* ↔ gt/{n}gt.*";

    /// <inheritdoc />
    public IReadOnlyList<PairedFiles> Pair(DatasetRoots roots)
    {
        ArgumentNullException.ThrowIfNull(roots);
        List<PairedFiles> result;
        if (roots.MetaInfoFile is { } list)
        {
            if (!File.Exists(list)) throw new DatasetLayoutException($"meta_info_file {list}: file not found");
            result = [];
            var missing = new List<string>();
            int lineNo = 0;
            foreach (var line in File.ReadLines(list))
            {
                lineNo++;
                var parts = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length == 0) continue;
                if (parts.Length != 2)
                    throw new DatasetLayoutException($"meta_info_file {list} line {lineNo}: '{line.Trim()}' has {parts.Length} field(s), expected '<rainy path> <clean path>'");
                string rainy = Resolve(roots.DatarootGt, parts[0]), clean = Resolve(roots.DatarootGt, parts[1]);
                foreach (var f in new[] { rainy, clean })
                    if (!File.Exists(f)) missing.Add($"line {lineNo}: {f}");
                result.Add(new PairedFiles(Path.GetFileNameWithoutExtension(rainy), clean, rainy));
            }
            if (missing.Count > 0)
                throw new DatasetLayoutException($"meta_info_file {list}: {missing.Count} listed file(s) not found: {FilePairing.Preview(missing)} (rule: {Rule})");
            if (result.Count == 0) throw new DatasetLayoutException($"meta_info_file {list}: no pair listed (rule: {Rule})");
        }
        else
        {
            var (lqDir, gtDir) = ResideLayout.Folders(roots, ["rain"], ["gt"], "rain/ and gt/ (or give meta_info_file: SPA's pair list)");
            var lqs = FilePairing.ListImages(lqDir, "rainy folder");
            var gts = FilePairing.ListImages(gtDir, "clean folder");
            var pairs = FilePairing.Match(lqs, "rainy", gts, "clean", r => [Path.GetFileNameWithoutExtension(r) + "gt", Path.GetFileNameWithoutExtension(r)],
                $"{Rule}; rainy {lqDir}, clean {gtDir}", targetsShared: false, everyTargetUsed: true);
            result = pairs.Select(p => new PairedFiles(Path.GetFileNameWithoutExtension(p.Driver), p.Target, p.Driver)).ToList();
        }
        result = result.OrderBy(p => p.Name, StringComparer.Ordinal).ToList();
        FilePairing.CheckUniqueNames(result, Rule);
        return result;
    }

    private static string Resolve(string root, string listed)
    {
        string rel = listed.StartsWith("./", StringComparison.Ordinal) ? listed[2..] : listed.TrimStart('/');
        return Path.Combine(root, rel);
    }
}
