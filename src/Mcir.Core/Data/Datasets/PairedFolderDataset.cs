using Mcir.Abstractions.Components;

namespace Mcir.Core.Data.Datasets;

/// <summary>
/// BasicSR's paired folder layout (<c>PairedImageDataset</c> with <c>dataroot_gt</c>, <c>dataroot_lq</c>,
/// <c>filename_tmpl</c> and <c>meta_info_file</c>), i.e. a <see cref="LayoutDataset"/> over <see cref="PairedFolderLayout"/>:
/// DIV2K's <c>DIV2K_train_HR/0001.png</c> ↔ <c>DIV2K_train_LR_bicubic/X2/0001x2.png</c> with <c>filename_tmpl</c>
/// <c>"{}x2"</c>, same-name folders with <c>"{}"</c>.
/// </summary>
public sealed class PairedFolderDataset : LayoutDataset
{
    /// <summary>Lists and pairs the two folders (the images are read on demand).</summary>
    /// <param name="gtDir">Ground-truth folder (<c>dataroot_gt</c>).</param>
    /// <param name="lqDir">Low-quality folder (<c>dataroot_lq</c>).</param>
    /// <param name="options">Scale, crop, augmentation, caching and channels.</param>
    /// <param name="filenameTmpl">BasicSR's <c>filename_tmpl</c>: the LQ stem with <c>{}</c> = the GT stem. Default <c>"{}"</c>.</param>
    /// <param name="metaInfoFile">BasicSR's <c>meta_info_file</c> (one GT path per line), or null to list the GT folder.</param>
    /// <exception cref="McirException">A folder is missing or empty, or files do not pair; the message names them and the rule.</exception>
    public PairedFolderDataset(string gtDir, string lqDir, PairedDatasetOptions options, string filenameTmpl = "{}", string? metaInfoFile = null)
        : base(new PairedFolderLayout(), new DatasetRoots(gtDir, lqDir, filenameTmpl, metaInfoFile), options)
    {
        ArgumentException.ThrowIfNullOrEmpty(gtDir);
        ArgumentException.ThrowIfNullOrEmpty(lqDir);
    }

    /// <summary>The ground-truth folder.</summary>
    public string GtDir => Roots.DatarootGt;

    /// <summary>The low-quality folder.</summary>
    public string LqDir => Roots.DatarootLq!;
}
