namespace Mcir.Abstractions.Components;

/// <summary>
/// The pairing mechanism every <see cref="IDatasetLayout"/> shares: list image files, then match each file of one side
/// (the "driver": the GT for BasicSR's <c>PairedImageDataset</c>, the input for RESIDE/Rain/DDN) to a file of the other
/// side by stem. Every file left without a partner is named in one <see cref="DatasetLayoutException"/>, with the stem
/// that was looked for and the rule that was applied.
/// </summary>
public static class FilePairing
{
    /// <summary>Image file extensions (lower case, with the dot): the ones the engine reads.</summary>
    public static readonly IReadOnlySet<string> ImageExtensions =
        new HashSet<string>(StringComparer.OrdinalIgnoreCase) { ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp" };

    /// <summary>True when <paramref name="path"/> has an image extension.</summary>
    public static bool IsImage(string path) => ImageExtensions.Contains(Path.GetExtension(path));

    /// <summary>The image files in <paramref name="dir"/> (recursively when asked), sorted by path (ordinal).</summary>
    /// <param name="dir">The folder.</param>
    /// <param name="key">The configuration key or role that names it, for messages (e.g. <c>dataroot_gt</c>).</param>
    /// <param name="recursive">Include sub-folders.</param>
    /// <exception cref="DatasetLayoutException">The folder does not exist or holds no image file.</exception>
    public static IReadOnlyList<string> ListImages(string dir, string key, bool recursive = false)
    {
        if (!Directory.Exists(dir))
            throw new DatasetLayoutException($"{key} {dir}: folder not found");
        var files = Directory.EnumerateFiles(dir, "*", recursive ? SearchOption.AllDirectories : SearchOption.TopDirectoryOnly)
            .Where(IsImage).Order(StringComparer.Ordinal).ToList();
        if (files.Count == 0)
            throw new DatasetLayoutException($"{key} {dir}: no image files (expected {string.Join(", ", ImageExtensions.Order())})");
        return files;
    }

    /// <summary>
    /// The first existing sub-folder of <paramref name="root"/> among <paramref name="names"/> (relative paths, e.g.
    /// <c>"rain/X2"</c>), or null.
    /// </summary>
    public static string? FindSubfolder(string root, params string[] names) =>
        names.Select(n => Path.Combine(root, n)).FirstOrDefault(Directory.Exists);

    /// <summary>
    /// Matches every file of <paramref name="drivers"/> to one file of <paramref name="targets"/>: the first stem of
    /// <paramref name="targetStems"/>(driver) that a target file has wins; when several target files share that stem
    /// (<c>0001.png</c>, <c>0001.jpg</c>) the one with the driver's extension is taken, else it is ambiguous.
    /// </summary>
    /// <param name="drivers">The files that decide the pairs (each must find a partner).</param>
    /// <param name="driverRole">What they are, for messages (e.g. "hazy", "GT").</param>
    /// <param name="targets">The files to pick partners from.</param>
    /// <param name="targetRole">What they are (e.g. "clear", "LQ").</param>
    /// <param name="targetStems">The candidate stems (file names without extension) of a driver's partner, in order of
    /// preference.</param>
    /// <param name="rule">The rule in words, quoted in messages (e.g. <c>"LQ = filename_tmpl '{}x2' of the GT stem"</c>).</param>
    /// <param name="targetsShared">True when several drivers may share one target (ITS's 10 hazy images per clear one);
    /// false makes a target chosen twice an error.</param>
    /// <param name="everyTargetUsed">True makes a target no driver chose an error (both folders must hold the same set).</param>
    /// <returns>(driver, target) pairs in the drivers' order.</returns>
    /// <exception cref="DatasetLayoutException">Unmatched, ambiguous or doubly used files; the message lists them (up to
    /// 8 per kind, then a count) with the stems looked for, and the rule.</exception>
    public static IReadOnlyList<(string Driver, string Target)> Match(
        IReadOnlyList<string> drivers, string driverRole, IReadOnlyList<string> targets, string targetRole,
        Func<string, IEnumerable<string>> targetStems, string rule, bool targetsShared, bool everyTargetUsed)
    {
        ArgumentNullException.ThrowIfNull(drivers);
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(targetStems);
        var byStem = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var t in targets)
        {
            string stem = Path.GetFileNameWithoutExtension(t);
            if (!byStem.TryGetValue(stem, out var list)) byStem[stem] = list = [];
            list.Add(t);
        }

        var pairs = new List<(string, string)>(drivers.Count);
        var unmatched = new List<string>();
        var ambiguous = new List<string>();
        var usedBy = new Dictionary<string, string>(StringComparer.Ordinal);
        var twice = new List<string>();
        foreach (var d in drivers)
        {
            var stems = targetStems(d).Distinct(StringComparer.Ordinal).ToList();
            string? stem = stems.FirstOrDefault(byStem.ContainsKey);
            if (stem is null)
            {
                unmatched.Add($"{Path.GetFileName(d)} (looked for {(stems.Count == 0 ? "nothing: the name does not fit the rule" : string.Join(" or ", stems.Select(s => $"'{s}.*'")))})");
                continue;
            }
            var candidates = byStem[stem];
            string? target = candidates.Count == 1 ? candidates[0]
                : candidates.FirstOrDefault(c => string.Equals(Path.GetExtension(c), Path.GetExtension(d), StringComparison.OrdinalIgnoreCase));
            if (target is null)
            {
                ambiguous.Add($"{Path.GetFileName(d)} ↔ {string.Join(" or ", candidates.Select(Path.GetFileName))}");
                continue;
            }
            if (!targetsShared && usedBy.TryGetValue(target, out var other))
                twice.Add($"{Path.GetFileName(target)} (by {Path.GetFileName(other)} and {Path.GetFileName(d)})");
            usedBy.TryAdd(target, d);
            pairs.Add((d, target));
        }

        var unused = everyTargetUsed ? targets.Where(t => !usedBy.ContainsKey(t)).Select(Path.GetFileName).ToList() : [];
        var parts = new List<string>();
        if (unmatched.Count > 0) parts.Add($"{unmatched.Count} {driverRole} file(s) without a {targetRole} file: {Preview(unmatched)}");
        if (ambiguous.Count > 0) parts.Add($"{ambiguous.Count} {driverRole} file(s) with several {targetRole} files of the same name: {Preview(ambiguous)}");
        if (twice.Count > 0) parts.Add($"{twice.Count} {targetRole} file(s) chosen twice: {Preview(twice)}");
        if (unused.Count > 0) parts.Add($"{unused.Count} {targetRole} file(s) without a {driverRole} file: {Preview(unused!)}");
        if (parts.Count > 0)
            throw new DatasetLayoutException($"{string.Join("; ", parts)} (rule: {rule})");
        return pairs;
    }

    /// <summary>Every name at most once; a repeated name is an error naming the files that share it.</summary>
    /// <exception cref="DatasetLayoutException">Two pairs share a name.</exception>
    public static void CheckUniqueNames(IReadOnlyList<PairedFiles> pairs, string rule)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        var seen = new Dictionary<string, PairedFiles>(StringComparer.Ordinal);
        foreach (var p in pairs)
            if (!seen.TryAdd(p.Name, p))
                throw new DatasetLayoutException(
                    $"two pairs are named '{p.Name}' ({seen[p.Name].Lq} and {p.Lq}); names must be unique because results are written under them (rule: {rule})");
    }

    /// <summary>Up to 8 items, then "and N more".</summary>
    public static string Preview(IReadOnlyList<string> items)
    {
        const int max = 8;
        string shown = string.Join(", ", items.Take(max));
        return items.Count > max ? $"{shown} and {items.Count - max} more" : shown;
    }
}
