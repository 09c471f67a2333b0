using System.Buffers.Binary;
using System.Text;
using Google.Protobuf;
using Mcir.Core.IO;
using Mcir.Core.Training;

namespace Mcir.Core.Tests.Training.TensorBoard;

public class Crc32CTests
{
    [Fact]
    public void CheckValue()
        => Assert.Equal(0xE3069283u, Crc32C.Compute("123456789"u8));

    [Fact]
    public void Rfc3720Vectors()
    {
        Assert.Equal(0x8A9136AAu, Crc32C.Compute(new byte[32]));
        Assert.Equal(0x62A8AB43u, Crc32C.Compute(Enumerable.Repeat((byte)0xFF, 32).ToArray()));
        Assert.Equal(0x46DD794Eu, Crc32C.Compute(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray()));
        Assert.Equal(0x113FDB5Cu, Crc32C.Compute(Enumerable.Range(0, 32).Select(i => (byte)(31 - i)).ToArray()));
    }

    [Fact]
    public void Empty_IsZero() => Assert.Equal(0u, Crc32C.Compute([]));

    [Fact]
    public void Append_EqualsWhole()
    {
        byte[] data = Encoding.ASCII.GetBytes("The quick brown fox jumps over the lazy dog");
        for (int cut = 0; cut <= data.Length; cut += 7)
            Assert.Equal(Crc32C.Compute(data), Crc32C.Append(Crc32C.Compute(data.AsSpan(0, cut)), data.AsSpan(cut)));
    }

    [Fact]
    public void Mask_MatchesDefinition_AndUnmaskInverts()
    {
        foreach (uint crc in new[] { 0u, 1u, 0xE3069283u, 0xFFFFFFFFu, 0x80000000u, 0x12345678u })
        {
            uint expected = unchecked(((crc >> 15) | (crc << 17)) + 0xA282EAD8u);
            Assert.Equal(expected, Crc32C.Mask(crc));
            Assert.Equal(crc, Crc32C.Unmask(Crc32C.Mask(crc)));
        }
        Assert.Equal(0xA282EAD8u, Crc32C.Mask(0));
    }
}

public sealed class TensorBoardLogTests : IDisposable
{
    private readonly string _run = Path.Combine(Path.GetTempPath(), "mcir-tb-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        try { Directory.Delete(_run, recursive: true); } catch (DirectoryNotFoundException) { }
    }

    private static IterationRecord Iter(long it, double lr, Dictionary<string, double> parts, double spi, double? grad)
        => new(it, 100, lr, parts, spi, 12.5, grad);

    [Fact]
    public void File_IsNamedLikeTensorFlowsAndStartsWithFileVersion()
    {
        long before = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        string path;
        using (var log = new TensorBoardLog(_run))
        {
            path = log.Path;
            Assert.Equal(Path.Combine(Path.GetFullPath(_run), "tb"), log.LogDirectory);
        }
        long after = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

        Assert.Equal(Path.Combine(Path.GetFullPath(_run), "tb"), Path.GetDirectoryName(path));
        string name = Path.GetFileName(path);
        Assert.StartsWith("events.out.tfevents.", name);
        string[] rest = name["events.out.tfevents.".Length..].Split('.', 2);
        long secs = long.Parse(rest[0], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(secs, before, after);
        Assert.False(string.IsNullOrEmpty(rest[1]));

        var records = TfRecordReader.Read(File.ReadAllBytes(path), out bool torn);
        Assert.False(torn);
        var ev = Assert.Single(records.Select(EventView.Decode));
        Assert.Equal(TensorBoardLog.FileVersion, ev.FileVersion);
        Assert.Equal("brain.Event:2", ev.FileVersion);
        Assert.Equal(0, ev.Step); // and not written at all: Decode checks that re-serializing gives the same bytes
        Assert.InRange(ev.WallTime, before - 1, after + 1);
    }

    [Fact]
    public void Events_RoundTrip_TagsStepsValues()
    {
        string path;
        using (var log = new TensorBoardLog(_run))
        {
            path = log.Path;
            ITrainingLog sink = log;
            sink.OnStart(0, 100, null);
            sink.OnIteration(Iter(1, 2e-4, new() { ["l1"] = 0.5, ["spn/neg0"] = -0.25, ["total"] = 0.25 }, 0.125, 1.5));
            sink.OnIteration(Iter(10, 1e-4, new() { ["l1"] = double.NaN, ["total"] = double.PositiveInfinity }, 0.0625, null));
            sink.OnValidation(10, new Dictionary<string, double> { ["psnr"] = 30.5, ["ssim"] = 0.875 });
            sink.OnCheckpoint(10, "ckpt/10");
            sink.OnMessage(10, "hello");
            sink.OnEnd(new TrainingResult(TrainingStatus.Completed, 10, "done", null, null, null));
        }

        var events = TfRecordReader.Read(File.ReadAllBytes(path), out bool torn).Select(EventView.Decode).ToList();
        Assert.False(torn);
        Assert.Equal(TensorBoardLog.FileVersion, events[0].FileVersion);
        Assert.Equal(1, events[1].SessionStatus); // START
        Assert.Equal(1, events[1].Step);

        var scalars = events.Skip(2).Select(e => (e.Tag, e.Step, e.Value)).ToList();
        (string?, long?, float?)[] expected =
        [
            ("train/l1", 1, 0.5f), ("train/spn/neg0", 1, -0.25f), ("train/total", 1, 0.25f),
            ("train/lr", 1, 2e-4f), ("train/grad_norm", 1, 1.5f), ("train/time_per_iter", 1, 0.125f),
            ("train/l1", 10, float.NaN), ("train/total", 10, float.PositiveInfinity),
            ("train/lr", 10, 1e-4f), ("train/time_per_iter", 10, 0.0625f),
            ("val/psnr", 10, 30.5f), ("val/ssim", 10, 0.875f),
        ];
        Assert.Equal(expected.Length, scalars.Count);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.Equal(expected[i].Item1, scalars[i].Tag);
            Assert.Equal(expected[i].Item2, scalars[i].Step);
            Assert.NotNull(scalars[i].Value);
            if (float.IsNaN(expected[i].Item3!.Value)) Assert.True(float.IsNaN(scalars[i].Value!.Value), scalars[i].Tag);
            else Assert.Equal(expected[i].Item3, scalars[i].Value);
        }
        Assert.All(events, e => Assert.True(e.WallTime > 1.5e9));
        Assert.All(events.Skip(1), e => Assert.True(e.WallTime >= events[0].WallTime));
    }

    [Fact]
    public void Resume_WritesSessionStartAfterTheResumedIteration()
    {
        string path;
        using (var log = new TensorBoardLog(_run))
        {
            path = log.Path;
            log.OnStart(500, 1000, "ckpt/500");
        }
        var events = TfRecordReader.Read(File.ReadAllBytes(path), out _).Select(EventView.Decode).ToList();
        Assert.Equal(2, events.Count);
        Assert.Equal(1, events[1].SessionStatus);
        Assert.Equal(501, events[1].Step); // TensorBoard purges older points with step >= 501
    }

    [Fact]
    public void Events_AreOnDiskBeforeDispose()
    {
        using var log = new TensorBoardLog(_run);
        log.OnIteration(Iter(7, 0.1, new() { ["total"] = 3.0 }, 0.5, null));
        var events = TfRecordReader.Read(ReadShared(log.Path), out bool torn).Select(EventView.Decode).ToList();
        Assert.False(torn);
        Assert.Equal(["train/total", "train/lr", "train/time_per_iter"], events.Skip(1).Select(e => e.Tag!));
        Assert.All(events.Skip(1), e => Assert.Equal(7, e.Step));

        log.OnValidation(7, new Dictionary<string, double> { ["psnr"] = 20 });
        events = TfRecordReader.Read(ReadShared(log.Path), out _).Select(EventView.Decode).ToList();
        Assert.Equal("val/psnr", events[^1].Tag);
        Assert.Equal(20f, events[^1].Value);
    }

    [Fact]
    public void TwoLogsInOneRun_WriteSeparateFiles()
    {
        using var a = new TensorBoardLog(_run);
        using var b = new TensorBoardLog(_run);
        Assert.NotEqual(a.Path, b.Path);
        a.OnValidation(1, new Dictionary<string, double> { ["a"] = 1 });
        b.OnValidation(1, new Dictionary<string, double> { ["b"] = 2 });
        Assert.Equal("val/a", TfRecordReader.Read(ReadShared(a.Path), out _).Select(EventView.Decode).Last().Tag);
        Assert.Equal("val/b", TfRecordReader.Read(ReadShared(b.Path), out _).Select(EventView.Decode).Last().Tag);
        Assert.Equal(2, Directory.GetFiles(a.LogDirectory, "*tfevents*").Length);
    }

    [Fact]
    public void UseAfterDispose_Throws_DisposeIsIdempotent()
    {
        var log = new TensorBoardLog(_run);
        log.Dispose();
        log.Dispose();
        Assert.Throws<ObjectDisposedException>(() => log.OnValidation(1, new Dictionary<string, double> { ["x"] = 1 }));
    }

    [Fact]
    public void Reader_DetectsTruncatedAndCorruptRecords()
    {
        string path;
        using (var log = new TensorBoardLog(_run))
        {
            path = log.Path;
            log.OnIteration(Iter(1, 0.1, new() { ["total"] = 1.0 }, 0.5, 2.0));
        }
        byte[] whole = File.ReadAllBytes(path);
        var all = TfRecordReader.Read(whole, out bool torn);
        Assert.False(torn);
        Assert.Equal(5, all.Count); // file_version + total, lr, grad_norm, time_per_iter
        int lastStart = whole.Length - (12 + all[^1].Length + 4);

        // A crash mid-write: any cut inside the last record leaves the earlier records and flags the torn tail.
        foreach (int cut in new[] { 1, 4, 5, all[^1].Length, all[^1].Length + 4 + 12 - 1 })
        {
            var kept = TfRecordReader.Read(whole.AsSpan(0, whole.Length - cut).ToArray(), out bool t);
            Assert.True(t, $"cut {cut}");
            Assert.Equal(4, kept.Count);
            Assert.Equal("train/grad_norm", EventView.Decode(kept[^1]).Tag);
        }

        // A flipped bit in the data, in the data CRC, or in the length is a CRC mismatch, not silently accepted.
        foreach (int offset in new[] { lastStart + 12 + 3, whole.Length - 2, lastStart + 1, lastStart + 9 })
        {
            byte[] bad = (byte[])whole.Clone();
            bad[offset] ^= 0x10;
            Assert.Throws<InvalidDataException>(() => TfRecordReader.Read(bad, out _));
        }
    }

    private static byte[] ReadShared(string path)
    {
        using var s = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var ms = new MemoryStream();
        s.CopyTo(ms);
        return ms.ToArray();
    }
}

/// <summary>Test-side TFRecord reader: length (u64 LE), masked CRC32C of the length, data, masked CRC32C of the data.</summary>
internal static class TfRecordReader
{
    /// <summary>
    /// The records of <paramref name="file"/>. A CRC mismatch throws <see cref="InvalidDataException"/>; an incomplete
    /// last record (a crash mid-write) stops reading and sets <paramref name="tornTail"/>.
    /// </summary>
    public static List<byte[]> Read(byte[] file, out bool tornTail)
    {
        var records = new List<byte[]>();
        int pos = 0;
        tornTail = false;
        while (pos < file.Length)
        {
            if (file.Length - pos < 12) { tornTail = true; break; }
            var header = file.AsSpan(pos, 8);
            ulong length = BinaryPrimitives.ReadUInt64LittleEndian(header);
            uint lengthCrc = BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(pos + 8, 4));
            if (lengthCrc != Crc32C.Mask(Crc32C.Compute(header)))
                throw new InvalidDataException($"record at {pos}: length CRC mismatch");
            if ((ulong)(file.Length - pos - 12) < length + 4) { tornTail = true; break; }
            var data = file.AsSpan(pos + 12, (int)length);
            uint dataCrc = BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(pos + 12 + (int)length, 4));
            if (dataCrc != Crc32C.Mask(Crc32C.Compute(data)))
                throw new InvalidDataException($"record at {pos}: data CRC mismatch");
            records.Add(data.ToArray());
            pos += 12 + (int)length + 4;
        }
        return records;
    }
}

/// <summary>
/// The Event fields the sink writes, parsed with TorchSharp's generated <c>Tensorboard.Event</c> parser (Google.Protobuf);
/// any other field set (known or unknown to the schema) fails the test.
/// </summary>
internal sealed record EventView(double WallTime, long Step, string? FileVersion, string? Tag, float? Value, int? SessionStatus)
{
    public static EventView Decode(byte[] eventBytes)
    {
        var ev = Tensorboard.Event.Parser.ParseFrom(eventBytes);
        // Re-serializing gives the same bytes only when nothing beyond the parsed fields (no unknown field) was there.
        Assert.Equal(eventBytes, ev.ToByteArray());
        string? fileVersion = null, tag = null;
        float? value = null;
        int? status = null;
        switch (ev.WhatCase)
        {
            case Tensorboard.Event.WhatOneofCase.FileVersion:
                fileVersion = ev.FileVersion;
                break;
            case Tensorboard.Event.WhatOneofCase.Summary:
                var v = Assert.Single(ev.Summary.Value);
                Assert.Equal(Tensorboard.Summary.Types.Value.ValueOneofCase.SimpleValue, v.ValueCase);
                Assert.Null(v.Metadata);
                Assert.Equal("", v.NodeName);
                (tag, value) = (v.Tag, v.SimpleValue);
                break;
            case Tensorboard.Event.WhatOneofCase.SessionLog:
                Assert.Equal("", ev.SessionLog.CheckpointPath);
                Assert.Equal("", ev.SessionLog.Msg);
                status = (int)ev.SessionLog.Status;
                break;
            default:
                Assert.Fail($"unexpected Event payload {ev.WhatCase}");
                break;
        }
        return new EventView(ev.WallTime, ev.Step, fileVersion, tag, value, status);
    }
}
