using System.Text;

namespace Mcir.Core.IO;

/// <summary>
/// All-or-nothing file writes: the content goes to a temporary file in the destination folder, is flushed to disk,
/// and then replaces the destination with a single rename (<see cref="File.Move(string, string, bool)"/>, atomic
/// on the same file system). Readers therefore see either the old file or the complete new one, never a partial
/// write. If anything fails (including the <c>write</c> callback throwing) the temporary file is deleted, the exception
/// propagates, and an existing file at the destination is left untouched.
/// </summary>
/// <remarks>
/// The temporary file is named <c>.&lt;file name&gt;.&lt;random&gt;.tmp</c> next to the destination, so it is on the same
/// volume (required for an atomic rename) and hidden from ordinary listings. The destination folder is created if it
/// does not exist. Use this for results, configs, checkpoints and images that other processes may be reading.
/// </remarks>
public static class AtomicFile
{
    /// <summary>Writes <paramref name="path"/> atomically with the bytes that <paramref name="write"/> puts into the stream.</summary>
    /// <param name="path">Destination file; an existing file is replaced only after the new content is complete.</param>
    /// <param name="write">Writes the whole content. It must not dispose or close the stream.</param>
    public static void Write(string path, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(write);
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full) ?? throw new ArgumentException($"{path}: has no containing folder", nameof(path));
        string name = Path.GetFileName(full);
        if (name.Length == 0) throw new ArgumentException($"{path}: is a folder, not a file path", nameof(path));
        Directory.CreateDirectory(dir);
        string temp = Path.Combine(dir, $".{name}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1 << 16))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>Writes <paramref name="bytes"/> to <paramref name="path"/> atomically.</summary>
    public static void WriteAllBytes(string path, byte[] bytes)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        Write(path, s => s.Write(bytes, 0, bytes.Length));
    }

    /// <summary>Writes <paramref name="contents"/> to <paramref name="path"/> atomically (UTF-8 without BOM by default).</summary>
    public static void WriteAllText(string path, string contents, Encoding? encoding = null)
    {
        ArgumentNullException.ThrowIfNull(contents);
        byte[] bytes = (encoding ?? new UTF8Encoding(encoderShouldEmitUTF8Identifier: false)).GetBytes(contents);
        Write(path, s => s.Write(bytes, 0, bytes.Length));
    }

    private static void TryDelete(string temp)
    {
        try { File.Delete(temp); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* best effort; the original error matters */ }
    }
}
