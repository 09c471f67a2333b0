namespace Mcir.Core.Data;

/// <summary>Lists the image files of a folder and pairs two folders by file name.</summary>
public static class ImageFolder
{
    /// <summary>Extensions read by <see cref="ImageIO"/>, lower case with the dot.</summary>
    public static readonly IReadOnlySet<string> Extensions =
        new HashSet<string>(StringComparer.OrdinalIgnoreCase) { ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp" };

    /// <summary>Image files directly in <paramref name="dir"/>, sorted by name (ordinal).</summary>
    public static IReadOnlyList<string> List(string dir)
    {
        if (!Directory.Exists(dir))
            throw new McirException($"{dir}: folder not found");
        var files = Directory.EnumerateFiles(dir)
            .Where(f => Extensions.Contains(Path.GetExtension(f)))
            .OrderBy(f => Path.GetFileName(f), StringComparer.Ordinal)
            .ToList();
        if (files.Count == 0)
            throw new McirException($"{dir}: no image files (expected {string.Join(", ", Extensions.Order())})");
        return files;
    }

    /// <summary>
    /// Pairs the images of two folders by file name without extension ("baby.png" ↔ "baby.bmp").
    /// Different name sets are an error listing what is missing on each side.
    /// </summary>
    public static IReadOnlyList<(string Name, string First, string Second)> Pair(string firstDir, string secondDir)
    {
        var first = ByStem(firstDir);
        var second = ByStem(secondDir);
        var onlyFirst = first.Keys.Except(second.Keys).Order(StringComparer.Ordinal).ToList();
        var onlySecond = second.Keys.Except(first.Keys).Order(StringComparer.Ordinal).ToList();
        if (onlyFirst.Count > 0 || onlySecond.Count > 0)
        {
            var parts = new List<string>();
            if (onlyFirst.Count > 0) parts.Add($"only in {firstDir}: {Preview(onlyFirst, first)}");
            if (onlySecond.Count > 0) parts.Add($"only in {secondDir}: {Preview(onlySecond, second)}");
            throw new McirException($"the folders hold different image sets ({string.Join("; ", parts)}); files are paired by name without extension");
        }
        return first.Keys.Order(StringComparer.Ordinal).Select(k => (k, first[k], second[k])).ToList();
    }

    private static Dictionary<string, string> ByStem(string dir)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var f in List(dir))
        {
            var stem = Path.GetFileNameWithoutExtension(f);
            if (!map.TryAdd(stem, f))
                throw new McirException($"{dir}: two images share the name '{stem}' ({Path.GetFileName(map[stem])}, {Path.GetFileName(f)})");
        }
        return map;
    }

    private static string Preview(List<string> stems, Dictionary<string, string> files)
    {
        const int Max = 8;
        var shown = string.Join(", ", stems.Take(Max).Select(s => Path.GetFileName(files[s])));
        return stems.Count > Max ? $"{shown} and {stems.Count - Max} more" : shown;
    }
}
