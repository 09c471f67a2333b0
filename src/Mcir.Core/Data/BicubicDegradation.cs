namespace Mcir.Core.Data;

/// <summary>
/// Makes low-resolution images the way DIV2K/Set5 LR sets are made: mod-crop to the scale, MATLAB bicubic
/// downscaling with antialiasing, rounding as BasicSR's tensor2img.
/// </summary>
public static class BicubicDegradation
{
    /// <summary>Writes the LR version of every image of <paramref name="inputDir"/> into <paramref name="outputDir"/> as PNG.</summary>
    /// <returns>The files written.</returns>
    public static IReadOnlyList<string> DegradeFolder(string inputDir, string outputDir, int scale, Action<string>? progress = null)
    {
        if (scale < 2)
            throw new McirException($"--scale {scale}: expected an integer scale of 2 or more");
        string inFull = Path.GetFullPath(inputDir).TrimEnd(Path.DirectorySeparatorChar);
        string outFull = Path.GetFullPath(outputDir).TrimEnd(Path.DirectorySeparatorChar);
        if (string.Equals(inFull, outFull, StringComparison.Ordinal) || SameDirectory(inFull, outFull))
            throw new McirException($"--output {outputDir} is the input folder: choose another folder, the input is never overwritten");
        var inputs = ImageFolder.List(inputDir);
        var clash = inputs.GroupBy(f => Path.GetFileNameWithoutExtension(f), StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (clash is not null)
            throw new McirException($"{inputDir}: {string.Join(" and ", clash.Select(Path.GetFileName))} would both be written as {clash.Key}.png");
        Directory.CreateDirectory(outputDir);
        var written = new List<string>();
        foreach (var file in inputs)
        {
            var hr = ImageIO.Read(file);
            var lr = MatlabResize.DownscaleForSr(hr, scale);
            string target = Path.Combine(outputDir, Path.GetFileNameWithoutExtension(file) + ".png");
            ImageIO.Write(target, lr);
            written.Add(target);
            progress?.Invoke($"{Path.GetFileName(file)} {hr.Height}x{hr.Width} -> {Path.GetFileName(target)} {lr.Height}x{lr.Width}");
        }
        return written;
    }

    // Catches symlinked or differently spelled paths to the same folder.
    private static bool SameDirectory(string a, string b)
    {
        if (!Directory.Exists(b)) return false;
        var ra = new DirectoryInfo(a).ResolveLinkTarget(true)?.FullName ?? a;
        var rb = new DirectoryInfo(b).ResolveLinkTarget(true)?.FullName ?? b;
        return string.Equals(ra.TrimEnd('/'), rb.TrimEnd('/'), StringComparison.Ordinal);
    }
}
