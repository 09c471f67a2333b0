using Mcir.Abstractions.Components;

namespace Mcir.Core.Data.Datasets;

/// <summary>
/// <c>ddn</c>: DDN-Data (Fu et al., CVPR 2017) as downloaded: <c>rainy_image/{i}_{j}.jpg</c> ↔ <c>ground_truth/{i}.jpg</c>,
/// 14 rainy images per clean one (PReNet's DerainDataset.py <c>prepare_data_Rain12600</c>); IDT's copy names the folders
/// <c>input/</c> and <c>groundtruth/</c>. The GT stem is the rainy stem up to its last <c>_</c>.
/// </summary>
/// <remarks>
/// Folders: <c>dataroot_lq</c> + <c>dataroot_gt</c>, or only <c>dataroot_gt</c> = the folder holding <c>rainy_image/</c> +
/// <c>ground_truth/</c> (or <c>input/</c> + <c>groundtruth/</c>). Every clean image must be used. Samples are named by the
/// rainy stem (<c>901_3</c>).
/// </remarks>
public sealed class DdnLayout : IDatasetLayout
{
    /// <summary>The registered descriptor.</summary>
    public static DatasetLayoutDescriptor Descriptor { get; } = DatasetLayoutDescriptor.Of<DdnLayout, NoLayoutOptions>(
        "ddn", "DDN-Data (Rain12600/Rain1400): rainy_image/{i}_{j}.jpg ↔ ground_truth/{i}.jpg",
        new NoLayoutOptions(), _ => new DdnLayout());

    /// <inheritdoc />
    public string Name => "ddn";

    /// <inheritdoc />
    public string Rule => "GT stem = the rainy stem up to its last '_' ({i}_{j} → {i})";

    /// <inheritdoc />
    public IReadOnlyList<PairedFiles> Pair(DatasetRoots roots)
    {
        ArgumentNullException.ThrowIfNull(roots);
        var (lqDir, gtDir) = ResideLayout.Folders(roots, ["rainy_image", "input"], ["ground_truth", "groundtruth"],
            "rainy_image/ and ground_truth/ (or input/ and groundtruth/)");
        var lqs = FilePairing.ListImages(lqDir, "rainy folder");
        var gts = FilePairing.ListImages(gtDir, "clean folder");
        var pairs = FilePairing.Match(lqs, "rainy", gts, "clean", r =>
        {
            string stem = Path.GetFileNameWithoutExtension(r);
            int cut = stem.LastIndexOf('_');
            return cut > 0 ? [stem[..cut]] : [];
        }, $"{Rule}; rainy {lqDir}, clean {gtDir}", targetsShared: true, everyTargetUsed: true);
        var result = pairs.Select(p => new PairedFiles(Path.GetFileNameWithoutExtension(p.Driver), p.Target, p.Driver))
            .OrderBy(p => p.Name, StringComparer.Ordinal).ToList();
        FilePairing.CheckUniqueNames(result, Rule);
        return result;
    }
}
