using Mcir.Abstractions.Components;

namespace Mcir.Core.Data.Datasets;

/// <summary>
/// <c>did</c>: DID-Data (DID-MDN, CVPR 2018) as downloaded: each file holds two images side by side, the <b>left half the
/// rainy input</b>, the <b>right half the clean ground truth</b> (hezhangsprinter/DID-MDN datasets/pix2pix.py: A = left
/// crop, B = right crop; derain_train_2018.py uses A as input and B as target). The split column is ⌊w/2⌋ as PIL's crop
/// in that loader: left = columns [0, ⌊w/2⌋), right = [⌊w/2⌋, w).
/// </summary>
/// <remarks>
/// <c>dataroot_gt</c> = a folder of such files, listed recursively (so <c>DID-MDN-training/</c> covers
/// <c>Rain_Heavy/</c>, <c>Rain_Medium/</c>, <c>Rain_Light/</c>); <c>dataroot_lq</c> is not used. Samples are named by the
/// path below <c>dataroot_gt</c> without extension, <c>/</c> replaced by <c>_</c> (<c>Rain_Heavy_train2018new_0</c>).
/// IDT's re-arranged DID copy (split files in <c>input/</c> + <c>groundtruth/</c>, same names) is a <c>paired-folder</c>.
/// </remarks>
public sealed class DidLayout : IDatasetLayout
{
    /// <summary>The registered descriptor.</summary>
    public static DatasetLayoutDescriptor Descriptor { get; } = DatasetLayoutDescriptor.Of<DidLayout, NoLayoutOptions>(
        "did", "DID-Data: one file per pair, left half rainy, right half clean (DID-MDN pix2pix loader)",
        new NoLayoutOptions(), _ => new DidLayout());

    /// <inheritdoc />
    public string Name => "did";

    /// <inheritdoc />
    public string Rule => "one file per pair: input = left half [0, w/2), GT = right half [w/2, w)";

    /// <inheritdoc />
    public IReadOnlyList<PairedFiles> Pair(DatasetRoots roots)
    {
        ArgumentNullException.ThrowIfNull(roots);
        if (roots.DatarootLq is not null)
            throw new DatasetLayoutException($"dataroot_lq {roots.DatarootLq}: type did reads input and GT from the same files in dataroot_gt; remove dataroot_lq");
        var files = FilePairing.ListImages(roots.DatarootGt, "dataroot_gt", recursive: true);
        var result = files.Select(f =>
        {
            string rel = Path.GetRelativePath(roots.DatarootGt, f);
            string name = Path.Combine(Path.GetDirectoryName(rel) ?? "", Path.GetFileNameWithoutExtension(rel)).Replace(Path.DirectorySeparatorChar, '_');
            return new PairedFiles(name, f, f) { LqRegion = ImageRegion.LeftHalf, GtRegion = ImageRegion.RightHalf };
        }).OrderBy(p => p.Name, StringComparer.Ordinal).ToList();
        FilePairing.CheckUniqueNames(result, Rule);
        return result;
    }
}
