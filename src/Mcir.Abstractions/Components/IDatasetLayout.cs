namespace Mcir.Abstractions.Components;

/// <summary>
/// A file layout of a paired data set as it is downloaded (DIV2K, RESIDE, Rain200, GoPro, …): it finds the
/// (input, ground-truth) file pairs under the configured roots; the engine reads, crops and augments them. Register it
/// with <see cref="Microsoft.Extensions.DependencyInjection.McirComponentServiceCollectionExtensions.AddMcirDatasetLayout"/>;
/// a data set names it in <c>type</c>. Build the pairs with <see cref="FilePairing"/> so that unmatched files are
/// reported the same way by every layout.
/// </summary>
public interface IDatasetLayout
{
    /// <summary>The registered name (the data set's <c>type</c>).</summary>
    string Name { get; }

    /// <summary>The pairing rule in one line, for messages and <c>mcir-host list</c>.</summary>
    string Rule { get; }

    /// <summary>Lists and pairs the files.</summary>
    /// <param name="roots">The configured folders and files.</param>
    /// <returns>The pairs, in a stable order (sorted by name).</returns>
    /// <exception cref="DatasetLayoutException">A folder is missing or empty, or files do not pair; the message names the
    /// files and the rule.</exception>
    IReadOnlyList<PairedFiles> Pair(DatasetRoots roots);
}

/// <summary>The keys of a data set section a layout reads (BasicSR's names).</summary>
/// <param name="DatarootGt"><c>dataroot_gt</c>: the ground-truth folder, or the set's root folder when the layout finds
/// its sub-folders itself.</param>
/// <param name="DatarootLq"><c>dataroot_lq</c>: the input folder; null when not configured.</param>
/// <param name="FilenameTmpl"><c>filename_tmpl</c>: BasicSR's template of the input's stem made from the GT stem
/// (<c>"{}"</c>, <c>"{}x2"</c>).</param>
/// <param name="MetaInfoFile"><c>meta_info_file</c>: a list file (BasicSR meta info, SPA's pair list); null when not configured.</param>
public sealed record DatasetRoots(string DatarootGt, string? DatarootLq = null, string FilenameTmpl = "{}", string? MetaInfoFile = null);

/// <summary>Which part of an image file holds the image.</summary>
public enum ImageRegion
{
    /// <summary>The whole file.</summary>
    Whole,

    /// <summary>Columns [0, ⌊w/2⌋): DID-Data's rainy half.</summary>
    LeftHalf,

    /// <summary>Columns [⌊w/2⌋, w): DID-Data's clean half.</summary>
    RightHalf,
}

/// <summary>One (input, ground truth) pair of files.</summary>
/// <param name="Name">The sample's name (results and images are written under it); unique in a data set.</param>
/// <param name="Gt">The ground-truth file.</param>
/// <param name="Lq">The input (degraded) file.</param>
public sealed record PairedFiles(string Name, string Gt, string Lq)
{
    /// <summary>The part of <see cref="Gt"/> that holds the ground truth. Default the whole file.</summary>
    public ImageRegion GtRegion { get; init; } = ImageRegion.Whole;

    /// <summary>The part of <see cref="Lq"/> that holds the input. Default the whole file.</summary>
    public ImageRegion LqRegion { get; init; } = ImageRegion.Whole;

    /// <summary>
    /// Centre-crop the ground truth to scale × the input's size when it is larger (FFA-Net's RESIDE loader: SOTS-indoor's
    /// 640×480 GT against 620×460 hazy images). Default false.
    /// </summary>
    public bool CenterCropGt { get; init; }
}

/// <summary>A data set's files are missing or do not pair; the message names the files and the rule.</summary>
public sealed class DatasetLayoutException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">One line naming the files, the rule and what was expected.</param>
    public DatasetLayoutException(string message) : base(message)
    {
    }
}
