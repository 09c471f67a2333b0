using System.Security.Cryptography;
using Mcir.Core;
using Mcir.Core.Weights;

namespace Mcir.Host.Tests.Weights;

/// <summary>
/// The downloader against a local server, with a registry entry made for fake content: its file name carries the
/// SHA-256 prefix of the bytes served, just as torchvision's names carry the prefix of the real weights.
/// </summary>
public class WeightsDownloaderTests
{
    private const int Size = 300_000;

    private static byte[] Content(int seed = 1, int size = Size)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static string Hex(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    /// <summary>An entry "fake-&lt;first 8 hex digits of SHA-256(content)&gt;.pth" served by <paramref name="server"/>.</summary>
    private static (WeightsEntry Entry, Uri Url) Serve(TinyHttpServer server, byte[] content)
    {
        var entry = new WeightsEntry("fake", $"fake-{Hex(content)[..8]}.pth", server.BaseUrl + "official-unused");
        server.Files["/" + entry.FileName] = content;
        return (entry, WeightsLocations.ResolveUrl(entry, server.BaseUrl, _ => null));
    }

    private static WeightsDownloader Downloader() =>
        new(new WeightsDownloaderOptions { BufferSize = 8192, ResponseTimeout = TimeSpan.FromSeconds(20), StallTimeout = TimeSpan.FromSeconds(20) });

    [Fact]
    public async Task DownloadsVerifiesAndRenames()
    {
        using var tmp = new TempDir();
        using var server = new TinyHttpServer();
        var content = Content();
        var (entry, url) = Serve(server, content);
        var reports = new List<(long Bytes, long? Total)>();
        using var downloader = Downloader();

        var result = await downloader.FetchAsync(entry, tmp.Path, url, (b, t) => reports.Add((b, t)));

        string final = Path.Combine(tmp.Path, entry.FileName);
        Assert.Equal(WeightsFetchOutcome.Downloaded, result.Outcome);
        Assert.Equal(final, result.Path);
        Assert.Equal(content, File.ReadAllBytes(final));
        Assert.Equal(Hex(content), result.Sha256);
        Assert.Equal((Size, Size), (result.Length, result.BytesTransferred));
        Assert.False(File.Exists(final + ".partial"));
        var request = Assert.Single(server.Requests);
        Assert.Equal(("GET", "/" + entry.FileName, (string?)null, 200), (request.Method, request.Path, request.Range, request.Status));
        Assert.Equal((0L, (long?)Size), reports[0]);
        Assert.Equal((Size, (long?)Size), reports[^1]);
        Assert.True(reports.Count > 2, "progress is reported while streaming");
        Assert.True(reports.Zip(reports.Skip(1)).All(p => p.First.Bytes <= p.Second.Bytes));
    }

    [Fact]
    public async Task ResumesAPartialDownloadWithARangeRequest()
    {
        using var tmp = new TempDir();
        using var server = new TinyHttpServer();
        var content = Content(2);
        var (entry, url) = Serve(server, content);
        const int have = 123_457;
        File.WriteAllBytes(Path.Combine(tmp.Path, entry.FileName + ".partial"), content[..have]);
        var notes = new List<string>();
        using var downloader = Downloader();

        var result = await downloader.FetchAsync(entry, tmp.Path, url, log: notes.Add);

        Assert.Equal(WeightsFetchOutcome.Resumed, result.Outcome);
        Assert.Equal(content, File.ReadAllBytes(result.Path));
        var request = Assert.Single(server.Requests);
        Assert.Equal($"bytes={have}-", request.Range);
        Assert.Equal(206, request.Status);
        Assert.Equal(Size - have, request.BodyBytesSent);
        Assert.Equal(Size - have, result.BytesTransferred);
        Assert.Contains(notes, n => n.Contains($"from byte {have}"));
        Assert.False(File.Exists(result.Path + ".partial"));
    }

    [Fact]
    public async Task AnInterruptedTransferKeepsThePartialAndTheNextRunResumesIt()
    {
        using var tmp = new TempDir();
        using var server = new TinyHttpServer();
        var content = Content(3);
        var (entry, url) = Serve(server, content);
        const int cut = 100_000;
        server.DropNextBodyAfter(cut);
        string final = Path.Combine(tmp.Path, entry.FileName);
        using var downloader = Downloader();

        var e = await Assert.ThrowsAsync<McirException>(() => downloader.FetchAsync(entry, tmp.Path, url));
        Assert.Contains("interrupted", e.Message);
        Assert.Contains("run the command again to resume", e.Message);
        Assert.False(File.Exists(final));
        Assert.Equal(content[..cut], File.ReadAllBytes(final + ".partial"));

        var result = await downloader.FetchAsync(entry, tmp.Path, url);

        Assert.Equal(WeightsFetchOutcome.Resumed, result.Outcome);
        Assert.Equal(content, File.ReadAllBytes(final));
        var requests = server.Requests.ToArray();
        Assert.Equal(2, requests.Length);
        Assert.Null(requests[0].Range);
        Assert.Equal($"bytes={cut}-", requests[1].Range);
        Assert.Equal(Size - cut, requests[1].BodyBytesSent);
        Assert.Equal((long)Size, server.TotalBodyBytesSent);
    }

    [Fact]
    public async Task AServerIgnoringRangeMeansStartingOver()
    {
        using var tmp = new TempDir();
        using var server = new TinyHttpServer { HonourRange = false };
        var content = Content(4);
        var (entry, url) = Serve(server, content);
        // Wrong bytes in the partial: appending to them would fail verification, so this also checks the truncation.
        File.WriteAllBytes(Path.Combine(tmp.Path, entry.FileName + ".partial"), Content(99, 50_000));
        var notes = new List<string>();
        using var downloader = Downloader();

        var result = await downloader.FetchAsync(entry, tmp.Path, url, log: notes.Add);

        Assert.Equal(WeightsFetchOutcome.Downloaded, result.Outcome);
        Assert.Equal(content, File.ReadAllBytes(result.Path));
        var request = Assert.Single(server.Requests);
        Assert.Equal(("bytes=50000-", 200), (request.Range, request.Status));
        Assert.Contains(notes, n => n.Contains("ignored the Range request"));
    }

    [Fact]
    public async Task A416WithACompletePartialJustVerifiesIt()
    {
        using var tmp = new TempDir();
        using var server = new TinyHttpServer();
        var content = Content(5);
        var (entry, url) = Serve(server, content);
        File.WriteAllBytes(Path.Combine(tmp.Path, entry.FileName + ".partial"), content);
        using var downloader = Downloader();

        var result = await downloader.FetchAsync(entry, tmp.Path, url);

        Assert.Equal(WeightsFetchOutcome.CompletedFromPartial, result.Outcome);
        Assert.Equal(content, File.ReadAllBytes(result.Path));
        var request = Assert.Single(server.Requests);
        Assert.Equal(($"bytes={Size}-", 416), (request.Range, request.Status));
        Assert.False(File.Exists(result.Path + ".partial"));
    }

    [Fact]
    public async Task A416WithAnInvalidPartialRestartsFromScratch()
    {
        using var tmp = new TempDir();
        using var server = new TinyHttpServer();
        var content = Content(6);
        var (entry, url) = Serve(server, content);
        File.WriteAllBytes(Path.Combine(tmp.Path, entry.FileName + ".partial"), Content(98, Size + 10));
        using var downloader = Downloader();

        var result = await downloader.FetchAsync(entry, tmp.Path, url);

        Assert.Equal(WeightsFetchOutcome.Downloaded, result.Outcome);
        Assert.Equal(content, File.ReadAllBytes(result.Path));
        var requests = server.Requests.ToArray();
        Assert.Equal(2, requests.Length);
        Assert.Equal(($"bytes={Size + 10}-", 416), (requests[0].Range, requests[0].Status));
        Assert.Equal(((string?)null, 200), (requests[1].Range, requests[1].Status));
    }

    [Fact]
    public async Task AHashMismatchDeletesThePartialAndSaysWhatWasExpected()
    {
        using var tmp = new TempDir();
        using var server = new TinyHttpServer();
        var served = Content(7);
        var (entry, url) = Serve(server, Content(8)); // the name carries the prefix of other bytes
        server.Files["/" + entry.FileName] = served;
        using var downloader = Downloader();

        var e = await Assert.ThrowsAsync<McirException>(() => downloader.FetchAsync(entry, tmp.Path, url));

        Assert.Contains(entry.HashPrefix, e.Message);
        Assert.Contains(Hex(served), e.Message);
        Assert.Contains(url.ToString(), e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(tmp.Path));
    }

    [Fact]
    public async Task AnInvalidCachedFileIsReplacedOnlyByAVerifiedDownload()
    {
        using var tmp = new TempDir();
        using var server = new TinyHttpServer();
        var content = Content(9);
        var (entry, url) = Serve(server, content);
        string final = Path.Combine(tmp.Path, entry.FileName);
        File.WriteAllBytes(final, Content(97, 1000));
        var notes = new List<string>();
        using var downloader = Downloader();

        var result = await downloader.FetchAsync(entry, tmp.Path, url, log: notes.Add);

        Assert.Equal(WeightsFetchOutcome.Downloaded, result.Outcome);
        Assert.Equal(content, File.ReadAllBytes(final));
        Assert.Contains(notes, n => n.Contains("does not start with " + entry.HashPrefix));
    }

    [Fact]
    public async Task AlreadyCachedMeansNoRequest()
    {
        using var tmp = new TempDir();
        using var server = new TinyHttpServer();
        var content = Content(10);
        var (entry, url) = Serve(server, content);
        File.WriteAllBytes(Path.Combine(tmp.Path, entry.FileName), content);
        using var downloader = Downloader();

        var result = await downloader.FetchAsync(entry, tmp.Path, url);

        Assert.Equal(WeightsFetchOutcome.AlreadyPresent, result.Outcome);
        Assert.Equal((Size, 0L, Hex(content)), (result.Length, result.BytesTransferred, result.Sha256));
        Assert.Null(result.Url);
        Assert.Empty(server.Requests);
    }

    [Fact]
    public async Task ConnectionRefusedIsAClearOfflineError()
    {
        using var tmp = new TempDir();
        string cache = Path.Combine(tmp.Path, "cache");
        int port = TinyHttpServer.ClosedPort();
        var entry = new WeightsEntry("fake", "fake-0123abcd.pth", $"http://127.0.0.1:{port}/fake-0123abcd.pth");
        using var downloader = Downloader();

        var e = await Assert.ThrowsAsync<McirException>(() => downloader.FetchAsync(entry, cache));

        Assert.StartsWith($"cannot reach 127.0.0.1:{port}: ", e.Message);
        Assert.Contains("refused", e.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Contains($"copy fake-0123abcd.pth into {cache} or set MCIR_FAKE_WEIGHTS", e.Message);
        Assert.False(Directory.Exists(cache)); // the cache folder this call created is taken back with the failure
    }

    [Fact]
    public async Task NoResponseInTimeIsAClearOfflineError()
    {
        using var tmp = new TempDir();
        using var server = new TinyHttpServer { NeverRespond = true };
        var (entry, url) = Serve(server, Content(11));
        using var downloader = new WeightsDownloader(new WeightsDownloaderOptions { ResponseTimeout = TimeSpan.FromSeconds(1) });

        var e = await Assert.ThrowsAsync<McirException>(() => downloader.FetchAsync(entry, tmp.Path, url));

        Assert.StartsWith($"cannot reach 127.0.0.1:{server.Port}: no response within 1 s", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(tmp.Path));
    }

    [Fact]
    public async Task AnHttpErrorNamesTheStatus()
    {
        using var tmp = new TempDir();
        using var server = new TinyHttpServer();
        var entry = new WeightsEntry("fake", "fake-0123abcd.pth", server.BaseUrl + "fake-0123abcd.pth");
        using var downloader = Downloader();

        var e = await Assert.ThrowsAsync<McirException>(() => downloader.FetchAsync(entry, tmp.Path));

        Assert.Contains($"download of {server.BaseUrl}fake-0123abcd.pth failed: HTTP 404", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(tmp.Path)); // a cache folder that existed before stays
    }
}
