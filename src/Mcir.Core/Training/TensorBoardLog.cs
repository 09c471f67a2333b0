using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Google.Protobuf;
using Mcir.Core.IO;
using Tensorboard;

namespace Mcir.Core.Training;

/// <summary>
/// Writes the run's scalars as a TensorBoard event file, <c>&lt;run&gt;/tb/events.out.tfevents.&lt;unix seconds&gt;.&lt;host&gt;</c>
/// (view with <c>tensorboard --logdir &lt;run&gt;/tb</c>, or the parent of several runs).
/// </summary>
/// <remarks>
/// <para>The file is a TFRecord stream: each record is the data length (uint64 little-endian), the masked CRC-32C of
/// those 8 bytes, the data, and the masked CRC-32C of the data (<see cref="Crc32C.Mask"/>). Each record's data is a
/// serialized <c>tensorflow.Event</c>, built with the protobuf classes TorchSharp generated from TensorFlow's
/// event.proto/summary.proto (<see cref="Event"/>, <see cref="Summary"/>, <see cref="SessionLog"/> in namespace
/// <c>Tensorboard</c>) and serialized by Google.Protobuf; only the TFRecord framing is written here.</para>
/// <para>Why not TorchSharp's <c>torch.utils.tensorboard.SummaryWriter</c> (0.107): it has no way to write a
/// <c>session_log</c> event, so a resumed run could not make TensorBoard drop the stale points of the interrupted
/// session; its steps are <c>int</c> (ours are <c>long</c> iterations); it reopens the file for every single event
/// (no batch of records per training event) and takes no lock. This class keeps those guarantees and only delegates
/// the message encoding.</para>
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
            Append(new Event { WallTime = WallTime(now), FileVersion = FileVersion });
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
            Append(new Event
            {
                WallTime = WallTime(DateTimeOffset.UtcNow),
                Step = startIteration + 1,
                SessionLog = new SessionLog { Status = SessionLog.Types.SessionStatus.Start },
            });
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

    // ---- events ----

    private void Scalar(double wallTime, long step, string tag, double value) =>
        Append(new Event
        {
            WallTime = wallTime,
            Step = step,
            Summary = new Summary { Value = { new Summary.Types.Value { Tag = tag, SimpleValue = (float)value } } },
        });

    /// <summary>Serializes <paramref name="ev"/>, frames it as a TFRecord and appends it to the batch.</summary>
    private void Append(Event ev)
    {
        byte[] data = ev.ToByteArray();
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
