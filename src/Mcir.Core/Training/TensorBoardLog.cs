using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Mcir.Core.IO;

namespace Mcir.Core.Training;

/// <summary>
/// Writes the run's scalars as a TensorBoard event file, <c>&lt;run&gt;/tb/events.out.tfevents.&lt;unix seconds&gt;.&lt;host&gt;</c>
/// (view with <c>tensorboard --logdir &lt;run&gt;/tb</c>, or the parent of several runs).
/// </summary>
/// <remarks>
/// <para>The file is a TFRecord stream: each record is the data length (uint64 little-endian), the masked CRC-32C of
/// those 8 bytes, the data, and the masked CRC-32C of the data (<see cref="Crc32C.Mask"/>). Each record's data is a
/// serialized <c>tensorflow.Event</c>, encoded by hand (only the few fields used here).</para>
/// <para>Records: first <c>Event{wall_time, file_version="brain.Event:2"}</c>; on <see cref="OnStart"/>
/// <c>Event{wall_time, step=start+1, session_log{status=START}}</c> — TensorBoard's loader then discards points with a
/// step after the resumed iteration that an earlier (crashed or interrupted) session of the run logged, so a resumed
/// run shows one consistent curve; then one <c>Event{wall_time, step, summary{value{tag, simple_value}}}</c> per scalar.
/// Scalars: <c>train/&lt;part&gt;</c> for every loss part, <c>train/lr</c>, <c>train/grad_norm</c> (when present),
/// <c>train/time_per_iter</c> (seconds) at each print event, and <c>val/&lt;metric&gt;</c> at each validation.
/// Values are stored as float32 (TensorBoard's <c>simple_value</c>); non-finite values are written as they are.</para>
/// <para>The file is append-only and flushed after each event's batch of records, so a crashed run keeps everything
/// logged before the crash (at worst a torn last record, which readers detect by its length/CRC and skip). A new
/// instance always starts a new file (a numeric suffix is added if the name is taken). Thread-safe.</para>
/// </remarks>
public sealed class TensorBoardLog : ITrainingLog, IDisposable
{
    /// <summary>The <c>file_version</c> of the first record.</summary>
    public const string FileVersion = "brain.Event:2";

    private readonly object _gate = new();
    private readonly FileStream _stream;
    private readonly MemoryStream _batch = new();
    private readonly MemoryStream _scratch = new();
    private bool _disposed;

    /// <summary>Creates <c>&lt;runDirectory&gt;/tb/</c> if needed and starts a new event file in it.</summary>
    public TensorBoardLog(string runDirectory)
    {
        ArgumentException.ThrowIfNullOrEmpty(runDirectory);
        LogDirectory = System.IO.Path.GetFullPath(System.IO.Path.Combine(runDirectory, "tb"));
        Directory.CreateDirectory(LogDirectory);
        var now = DateTimeOffset.UtcNow;
        string baseName = "events.out.tfevents." + now.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture) + "." + HostName();
        (Path, _stream) = CreateNew(LogDirectory, baseName);
        lock (_gate)
        {
            BeginEvent(WallTime(now), step: null);
            Bytes(_scratch, 3, Encoding.UTF8.GetBytes(FileVersion));
            EndEvent();
            FlushBatch();
        }
    }

    /// <summary>The <c>tb</c> folder of the run (what <c>tensorboard --logdir</c> takes).</summary>
    public string LogDirectory { get; }

    /// <summary>The event file.</summary>
    public string Path { get; }

    /// <inheritdoc />
    public void OnStart(long startIteration, long totalIter, string? resumedFrom)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            BeginEvent(WallTime(DateTimeOffset.UtcNow), startIteration + 1);
            Span<byte> sessionLog = [(1 << 3) | 0, 1]; // SessionLog { status (1, varint) = START (1) }
            Bytes(_scratch, 7, sessionLog);
            EndEvent();
            FlushBatch();
        }
    }

    /// <inheritdoc />
    public void OnIteration(IterationRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            double wall = WallTime(DateTimeOffset.UtcNow);
            foreach (var (part, value) in record.Parts) Scalar(wall, record.Iteration, "train/" + part, value);
            Scalar(wall, record.Iteration, "train/lr", record.Lr);
            if (record.GradNorm is { } g) Scalar(wall, record.Iteration, "train/grad_norm", g);
            Scalar(wall, record.Iteration, "train/time_per_iter", record.SecondsPerIter);
            FlushBatch();
        }
    }

    /// <inheritdoc />
    public void OnValidation(long iteration, IReadOnlyDictionary<string, double> metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            double wall = WallTime(DateTimeOffset.UtcNow);
            foreach (var (name, value) in metrics) Scalar(wall, iteration, "val/" + name, value);
            FlushBatch();
        }
    }

    /// <summary>Flushes and closes the file. Idempotent.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _stream.Dispose();
        }
    }

    // ---- event encoding (protobuf wire format: varint = 0, 64-bit = 1, length-delimited = 2, 32-bit = 5) ----

    private void Scalar(double wallTime, long step, string tag, double value)
    {
        // Summary.Value { tag = 1 (string), simple_value = 2 (float) }
        var v = new MemoryStream();
        Bytes(v, 1, Encoding.UTF8.GetBytes(tag));
        Float(v, 2, (float)value);
        // Summary { value = 1 (repeated Value) }
        var summary = new MemoryStream();
        Bytes(summary, 1, v.GetBuffer().AsSpan(0, (int)v.Length));
        BeginEvent(wallTime, step);
        Bytes(_scratch, 5, summary.GetBuffer().AsSpan(0, (int)summary.Length));
        EndEvent();
    }

    /// <summary>Starts an Event in <see cref="_scratch"/>: wall_time = 1 (double), step = 2 (int64).</summary>
    private void BeginEvent(double wallTime, long? step)
    {
        _scratch.SetLength(0);
        Tag(_scratch, 1, 1);
        Span<byte> d = stackalloc byte[8];
        BinaryPrimitives.WriteDoubleLittleEndian(d, wallTime);
        _scratch.Write(d);
        if (step is { } s) { Tag(_scratch, 2, 0); Varint(_scratch, unchecked((ulong)s)); }
    }

    /// <summary>Frames the Event in <see cref="_scratch"/> as a TFRecord and appends it to the batch.</summary>
    private void EndEvent()
    {
        var data = _scratch.GetBuffer().AsSpan(0, (int)_scratch.Length);
        Span<byte> header = stackalloc byte[12];
        BinaryPrimitives.WriteUInt64LittleEndian(header, (ulong)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], Crc32C.Mask(Crc32C.Compute(header[..8])));
        Span<byte> footer = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(footer, Crc32C.Mask(Crc32C.Compute(data)));
        _batch.Write(header);
        _batch.Write(data);
        _batch.Write(footer);
    }

    private void FlushBatch()
    {
        _stream.Write(_batch.GetBuffer(), 0, (int)_batch.Length);
        _stream.Flush();
        _batch.SetLength(0);
    }

    private static void Tag(MemoryStream s, int field, int wireType) => Varint(s, (ulong)((field << 3) | wireType));

    private static void Varint(MemoryStream s, ulong v)
    {
        while (v >= 0x80) { s.WriteByte((byte)(v | 0x80)); v >>= 7; }
        s.WriteByte((byte)v);
    }

    private static void Float(MemoryStream s, int field, float v)
    {
        Tag(s, field, 5);
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteSingleLittleEndian(b, v);
        s.Write(b);
    }

    private static void Bytes(MemoryStream s, int field, ReadOnlySpan<byte> bytes)
    {
        Tag(s, field, 2);
        Varint(s, (ulong)bytes.Length);
        s.Write(bytes);
    }

    // ---- file ----

    private static double WallTime(DateTimeOffset t) => (t - DateTimeOffset.UnixEpoch).Ticks / (double)TimeSpan.TicksPerSecond;

    private static string HostName()
    {
        string host;
        try { host = Environment.MachineName; }
        catch (InvalidOperationException) { host = ""; }
        var invalid = System.IO.Path.GetInvalidFileNameChars();
        var sb = new StringBuilder(host.Length);
        foreach (char c in host) sb.Append(Array.IndexOf(invalid, c) >= 0 || char.IsWhiteSpace(c) ? '_' : c);
        return sb.Length == 0 ? "localhost" : sb.ToString();
    }

    private static (string Path, FileStream Stream) CreateNew(string folder, string baseName)
    {
        for (int n = 0; ; n++)
        {
            string path = System.IO.Path.Combine(folder, n == 0 ? baseName : baseName + "." + n.ToString(CultureInfo.InvariantCulture));
            try
            {
                return (path, new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read));
            }
            catch (IOException) when (File.Exists(path) && n < 1000)
            {
                // taken (another instance this second): try the next suffix
            }
        }
    }
}
