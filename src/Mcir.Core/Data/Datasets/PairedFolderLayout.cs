using Mcir.Abstractions.Components;

namespace Mcir.Core.Data.Datasets;

/// <summary>
/// <c>paired-folder</c>: BasicSR's <c>PairedImageDataset</c> (basicsr/data/paired_image_dataset.py, folder and
/// meta_info_file modes). For every GT image the input is <c>dataroot_lq/{filename_tmpl.format(gt_stem)}.*</c>:
/// <c>filename_tmpl</c> <c>"{}"</c> pairs same-name files (the <c>_sub</c> crops, Set5's <c>GTmod12</c> ↔ <c>LRbicx4</c>),
/// <c>"{}x2"</c> the raw DIV2K / EDSR-benchmark names (<c>0001.png</c> ↔ <c>X2/0001x2.png</c>, <c>HR/baby.png</c> ↔
/// <c>LR_bicubic/X4/babyx4.png</c>). BasicSR requires the GT's extension; any image extension is accepted here, the GT's
/// preferred when several exist.
/// </summary>
/// <remarks>
/// Folder mode (no <c>meta_info_file</c>): both folders are listed (not recursively) and must hold the same set (BasicSR
/// asserts equal counts). Meta-info mode: the GT files are the first token of each non-empty line of
/// <c>meta_info_file</c> (BasicSR's format, e.g. <c>0001_s001.png (480,480,3)</c>), joined to <c>dataroot_gt</c> (sub-folders
/// allowed); the input is looked up directly in <c>dataroot_lq</c> by the template of the GT file's stem; the folders may
/// hold more files than listed. Samples are named by the GT stem.
/// </remarks>
public sealed class PairedFolderLayout : IDatasetLayout
{
    /// <summary>The registered descriptor (no options of its own: <c>filename_tmpl</c> and <c>meta_info_file</c> are data set keys).</summary>
    public static DatasetLayoutDescriptor Descriptor { get; } = DatasetLayoutDescriptor.Of<PairedFolderLayout, NoLayoutOptions>(
        "paired-folder", "BasicSR PairedImageDataset: dataroot_gt + dataroot_lq, LQ stem = filename_tmpl of the GT stem, optional meta_info_file",
        new NoLayoutOptions(), _ => new PairedFolderLayout());

    /// <inheritdoc />
    public string Name => "paired-folder";

    /// <inheritdoc />
    public string Rule => "LQ = dataroot_lq/<filename_tmpl with {} = GT stem>.<any image extension>";

    /// <inheritdoc />
    public IReadOnlyList<PairedFiles> Pair(DatasetRoots roots)
    {
        ArgumentNullException.ThrowIfNull(roots);
        string lqDir = roots.DatarootLq ?? throw new DatasetLayoutException("dataroot_lq is missing (type paired-folder needs the input folder)");
        string tmpl = roots.FilenameTmpl;
        int at = tmpl.IndexOf("{}", StringComparison.Ordinal);
        if (at < 0 || tmpl.IndexOf("{}", at + 2, StringComparison.Ordinal) >= 0 || tmpl.Replace("{}", "").IndexOfAny(['{', '}', '/', '\\']) >= 0)
            throw new DatasetLayoutException($"filename_tmpl '{tmpl}': expected a file-name template with exactly one '{{}}' for the GT stem, e.g. '{{}}' or '{{}}x2'");
        string rule = $"LQ = {lqDir}/{tmpl.Replace("{}", "<GT stem>")}.<ext> for each GT file (filename_tmpl '{tmpl}')";

        IReadOnlyList<string> gts;
        bool meta = roots.MetaInfoFile is not null;
        if (meta) gts = MetaInfo(roots.MetaInfoFile!, roots.DatarootGt);
        else gts = FilePairing.ListImages(roots.DatarootGt, "dataroot_gt");
        var lqs = FilePairing.ListImages(lqDir, "dataroot_lq");
        if (!meta) CheckStemsUnique(gts, "dataroot_gt");
        var pairs = FilePairing.Match(gts, "GT", lqs, "LQ",
            gt => [tmpl.Replace("{}", Path.GetFileNameWithoutExtension(gt))], rule, targetsShared: false, everyTargetUsed: !meta);
        var result = pairs.Select(p => new PairedFiles(Path.GetFileNameWithoutExtension(p.Driver), p.Driver, p.Target))
            .OrderBy(p => p.Name, StringComparer.Ordinal).ToList();
        FilePairing.CheckUniqueNames(result, rule);
        return result;
    }

    /// <summary>BasicSR's meta info file: the GT path is the first whitespace-separated token of each non-empty line.</summary>
    private static List<string> MetaInfo(string file, string gtRoot)
    {
        if (!File.Exists(file)) throw new DatasetLayoutException($"meta_info_file {file}: file not found");
        var gts = new List<string>();
        var missing = new List<string>();
        int lineNo = 0;
        foreach (var line in File.ReadLines(file))
        {
            lineNo++;
            var first = line.Split((char[]?)null, 2, StringSplitOptions.RemoveEmptyEntries).FirstOrDefault();
            if (first is null) continue;
            string path = Path.Combine(gtRoot, first);
            if (File.Exists(path)) gts.Add(path);
            else missing.Add($"line {lineNo}: {first}");
        }
        if (missing.Count > 0)
            throw new DatasetLayoutException($"meta_info_file {file}: {missing.Count} listed GT file(s) not found under dataroot_gt {gtRoot}: {FilePairing.Preview(missing)}");
        if (gts.Count == 0) throw new DatasetLayoutException($"meta_info_file {file}: no file listed (expected one GT path per line)");
        return gts;
    }

    private static void CheckStemsUnique(IReadOnlyList<string> files, string key)
    {
        var dup = files.GroupBy(f => Path.GetFileNameWithoutExtension(f), StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null)
            throw new DatasetLayoutException($"{key} {Path.GetDirectoryName(dup.First())}: two images share the name '{dup.Key}' ({string.Join(", ", dup.Select(Path.GetFileName))})");
    }
}
