namespace Mcir.Core.IO;

/// <summary>
/// Creating a folder path so that a failure can take back what it created, and only that: the outermost folder of the
/// path that did not exist before.
/// </summary>
public static class CreatedFolders
{
    /// <summary>The outermost folder of <paramref name="path"/> that does not exist yet (itself when only it is
    /// missing), or null when it exists.</summary>
    public static string? TopmostMissing(string path)
    {
        string? missing = null;
        for (string? p = Path.GetFullPath(path); p is not null && !Directory.Exists(p); p = Path.GetDirectoryName(p)) missing = p;
        return missing;
    }

    /// <summary>Deletes <paramref name="created"/> (from <see cref="TopmostMissing"/>) when nothing but empty folders
    /// is in it; best effort, since the caller is already reporting the failure that matters.</summary>
    public static void DeleteIfEmpty(string? created)
    {
        if (created is null || !Directory.Exists(created)) return;
        try
        {
            if (!Directory.EnumerateFiles(created, "*", SearchOption.AllDirectories).Any()) Directory.Delete(created, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }
}
