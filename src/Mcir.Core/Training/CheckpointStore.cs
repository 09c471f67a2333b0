using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Mcir.Core.Training;

/// <summary>
/// Checkpoint folders of a run, written all-or-nothing.
/// <para>Layout: <c>&lt;run&gt;/checkpoints/iter_000200/</c> holding the files of the checkpoint and, written last,
/// <c>MANIFEST.json</c> = <c>{"format": "mcir.checkpoint", "version": 1, "iteration": 200, "files": {"name":
/// {"size": n, "sha256": "hex"}, ...}}</c>. A checkpoint is written into a hidden temporary folder
/// <c>checkpoints/.tmp-iter_000200-&lt;guid&gt;/</c> (every file flushed to disk, then the manifest), and only then
/// renamed to its final name, so a crash at any point leaves either no <c>iter_*</c> folder or a complete one. A
/// checkpoint counts as complete only if its manifest parses, names its own iteration and every listed file exists
/// with the recorded size — so a folder truncated later (or created by hand) is ignored by
/// <see cref="FindLatestComplete"/> and <see cref="Prune"/>, which read manifests and file sizes only. The SHA-256 of
/// every file is checked once, when a checkpoint is loaded (<see cref="Verify"/> with hashes, as
/// <c>Trainer.LoadCheckpoint</c> and <c>--weights</c> do), so a save never re-reads the kept checkpoints.</para>
/// <para>Resume resolution (<c>--resume</c>) is <see cref="ResolveResume"/>; what the files of a checkpoint hold is
/// <see cref="TrainingState"/>.</para>
/// </summary>
public static class CheckpointStore
{
    /// <summary>The manifest (completeness marker) of a checkpoint folder.</summary>
    public const string ManifestName = "MANIFEST.json";

    /// <summary>The sub-folder of a run folder that holds the checkpoints.</summary>
    public const string FolderName = "checkpoints";

    private const string Format = "mcir.checkpoint";
    private static readonly Regex IterPattern = new(@"^iter_(\d+)$", RegexOptions.CultureInvariant);

    /// <summary>The folder name of the checkpoint at <paramref name="iteration"/> (<c>iter_000200</c>).</summary>
    public static string FolderNameOf(long iteration) => "iter_" + iteration.ToString("D6", CultureInfo.InvariantCulture);

    /// <summary>
    /// Writes a checkpoint of <paramref name="iteration"/> under <paramref name="runDirectory"/>: each entry of
    /// <paramref name="files"/> (file name → writer into a stream) goes into the temporary folder; then the manifest;
    /// then the folder is renamed into place (replacing an existing checkpoint of the same iteration). On any error the
    /// temporary folder is removed and the exception propagates; existing checkpoints are untouched.
    /// <paramref name="afterFile"/> (tests) is called after each file is written.
    /// </summary>
    /// <returns>The final checkpoint folder.</returns>
    public static string Write(string runDirectory, long iteration, IReadOnlyList<(string Name, Action<Stream> Write)> files, Action<string>? afterFile = null)
    {
        ArgumentNullException.ThrowIfNull(files);
        string root = Path.Combine(Path.GetFullPath(runDirectory), FolderName);
        Directory.CreateDirectory(root);
        string name = FolderNameOf(iteration);
        string final = Path.Combine(root, name);
        string temp = Path.Combine(root, $".tmp-{name}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        try
        {
            var entries = new List<(string Name, long Size, string Sha)>();
            foreach (var (fileName, write) in files)
            {
                if (fileName == ManifestName || fileName.IndexOfAny(['/', '\\']) >= 0 || fileName.StartsWith('.'))
                    throw new ArgumentException($"checkpoint: invalid file name '{fileName}'");
                string path = Path.Combine(temp, fileName);
                using (var fs = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16))
                {
                    write(fs);
                    fs.Flush(flushToDisk: true);
                    fs.Position = 0;
                    entries.Add((fileName, fs.Length, Convert.ToHexStringLower(SHA256.HashData(fs))));
                }
                afterFile?.Invoke(fileName);
            }
            using (var fs = new FileStream(Path.Combine(temp, ManifestName), FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                using (var w = new Utf8JsonWriter(fs, new JsonWriterOptions { Indented = true }))
                {
                    w.WriteStartObject();
                    w.WriteString("format", Format);
                    w.WriteNumber("version", 1);
                    w.WriteNumber("iteration", iteration);
                    w.WriteString("written", DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture));
                    w.WriteStartObject("files");
                    foreach (var (n, size, sha) in entries)
                    {
                        w.WriteStartObject(n);
                        w.WriteNumber("size", size);
                        w.WriteString("sha256", sha);
                        w.WriteEndObject();
                    }
                    w.WriteEndObject();
                    w.WriteEndObject();
                }
                fs.Flush(flushToDisk: true);
            }
            afterFile?.Invoke(ManifestName);

            string? old = null;
            if (Directory.Exists(final))
            {
                old = Path.Combine(root, $".old-{name}-{Guid.NewGuid():N}");
                Directory.Move(final, old);
            }
            Directory.Move(temp, final);
            if (old is not null) TryDeleteDirectory(old);
            return final;
        }
        catch
        {
            TryDeleteDirectory(temp);
            throw;
        }
    }

    /// <summary>True when <paramref name="checkpointDirectory"/> is a complete checkpoint (see the class remarks).</summary>
    public static bool IsComplete(string checkpointDirectory) => Verify(checkpointDirectory) is null;

    /// <summary>
    /// Null when complete, else why not (for error messages). With <paramref name="hashes"/> (the default, for a
    /// checkpoint about to be loaded) every file is also checked against its SHA-256; without, only the manifest, the
    /// files' presence and sizes (cheap: used when pruning, so a save does not re-read every kept checkpoint).
    /// </summary>
    public static string? Verify(string checkpointDirectory, bool hashes = true)
    {
        string manifest = Path.Combine(checkpointDirectory, ManifestName);
        if (!File.Exists(manifest)) return $"no {ManifestName} (the checkpoint write did not finish)";
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(manifest));
            var rootEl = doc.RootElement;
            if (rootEl.GetProperty("format").GetString() != Format) return $"{ManifestName} is not a checkpoint manifest";
            long iteration = rootEl.GetProperty("iteration").GetInt64();
            var m = IterPattern.Match(Path.GetFileName(Path.TrimEndingDirectorySeparator(checkpointDirectory)));
            if (m.Success && long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) != iteration)
                return $"the manifest is for iteration {iteration}, the folder name says otherwise";
            foreach (var f in rootEl.GetProperty("files").EnumerateObject())
            {
                string path = Path.Combine(checkpointDirectory, f.Name);
                if (!File.Exists(path)) return $"file '{f.Name}' is missing";
                long size = f.Value.GetProperty("size").GetInt64();
                var info = new FileInfo(path);
                if (info.Length != size) return $"file '{f.Name}' has {info.Length} bytes, the manifest says {size}";
                if (!hashes) continue;
                FileHashed?.Invoke(path);
                using var fs = File.OpenRead(path);
                if (Convert.ToHexStringLower(SHA256.HashData(fs)) != f.Value.GetProperty("sha256").GetString())
                    return $"file '{f.Name}' does not match its SHA-256 in the manifest";
            }
            return null;
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or IOException or FormatException)
        {
            return $"unreadable {ManifestName}: {e.Message}";
        }
    }

    /// <summary>The iteration recorded in a checkpoint's manifest.</summary>
    public static long IterationOf(string checkpointDirectory)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(checkpointDirectory, ManifestName)));
        return doc.RootElement.GetProperty("iteration").GetInt64();
    }

    /// <summary>The checkpoint folders (<c>iter_*</c>, complete or not) of a run, newest iteration first.</summary>
    public static IReadOnlyList<(long Iteration, string Path)> List(string runDirectory)
    {
        string root = Path.Combine(Path.GetFullPath(runDirectory), FolderName);
        if (!Directory.Exists(root)) return [];
        var result = new List<(long, string)>();
        foreach (var dir in Directory.EnumerateDirectories(root))
        {
            var m = IterPattern.Match(Path.GetFileName(dir));
            if (m.Success && long.TryParse(m.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out long it))
                result.Add((it, dir));
        }
        return result.OrderByDescending(x => x.Item1).ToList();
    }

    /// <summary>
    /// The newest complete checkpoint of a run, or null: incomplete ones (no manifest, a file missing or of another
    /// size) are skipped. Manifests and sizes only; the SHA-256 of the one chosen is checked when it is loaded.
    /// </summary>
    public static string? FindLatestComplete(string runDirectory) =>
        List(runDirectory).Select(c => c.Path).FirstOrDefault(p => Verify(p, hashes: false) is null);

    /// <summary>
    /// The <c>--resume</c> semantic: null/empty → start fresh (null); <c>auto</c> → the newest complete checkpoint of
    /// the run (<see cref="FindLatestComplete"/>), or null when there is none; anything else is a checkpoint folder,
    /// which must be complete (manifest and sizes; its SHA-256 is checked when it is loaded).
    /// </summary>
    /// <exception cref="McirException">The folder does not exist or is not a complete checkpoint (one line naming it and why).</exception>
    public static string? ResolveResume(string runDirectory, string? resume)
    {
        if (string.IsNullOrEmpty(resume)) return null;
        if (resume == "auto") return FindLatestComplete(runDirectory);
        string path = Path.GetFullPath(resume);
        if (!Directory.Exists(path)) throw new McirException($"--resume {resume}: no such checkpoint folder");
        if (Verify(path, hashes: false) is { } why) throw new McirException($"--resume {resume}: not a complete checkpoint: {why}");
        return path;
    }

    /// <summary>Test hook: called with the path of each file whose SHA-256 <see cref="Verify"/> computes.</summary>
    internal static Action<string>? FileHashed { get; set; }

    /// <summary>
    /// Keeps the <paramref name="keep"/> newest complete checkpoints (manifest, files and sizes checked; not their
    /// SHA-256, which <see cref="Verify"/> checks when one is loaded) and deletes older checkpoint folders (complete or
    /// not) as well as leftover temporary folders of crashed writes. Call only after a new checkpoint is complete.
    /// </summary>
    public static void Prune(string runDirectory, int keep)
    {
        if (keep < 1) return;
        var all = List(runDirectory);
        // Manifest and sizes only: hashes are checked when a checkpoint is loaded, not on every save.
        var complete = all.Where(c => Verify(c.Path, hashes: false) is null).ToList();
        if (complete.Count <= keep) return;
        long oldestKept = complete[keep - 1].Iteration;
        foreach (var (it, path) in all)
            if (it < oldestKept) TryDeleteDirectory(path);
        string root = Path.Combine(Path.GetFullPath(runDirectory), FolderName);
        foreach (var dir in Directory.EnumerateDirectories(root, ".tmp-*").Concat(Directory.EnumerateDirectories(root, ".old-*")))
            TryDeleteDirectory(dir);
    }

    private static void TryDeleteDirectory(string path)
    {
        try { if (Directory.Exists(path)) Directory.Delete(path, recursive: true); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* best effort */ }
    }
}
