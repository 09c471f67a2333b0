using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Security.Cryptography;

namespace Mcir.Core.Weights;

/// <summary>Timeouts and buffering of a <see cref="WeightsDownloader"/>.</summary>
public sealed record WeightsDownloaderOptions
{
    /// <summary>Time allowed to open the TCP (and TLS) connection.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Time allowed from sending the request to receiving the response headers.</summary>
    public TimeSpan ResponseTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Longest wait for the next chunk of the body; a stalled transfer fails (and can be resumed) after this.</summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Size of the copy buffer, in bytes.</summary>
    public int BufferSize { get; init; } = 1 << 20;
}

/// <summary>How <see cref="WeightsDownloader.FetchAsync"/> obtained the file.</summary>
public enum WeightsFetchOutcome
{
    /// <summary>The file was already in the cache with the right hash; nothing was requested.</summary>
    AlreadyPresent,
    /// <summary>Downloaded from the first byte.</summary>
    Downloaded,
    /// <summary>A partial download was continued with an HTTP Range request (206 Partial Content).</summary>
    Resumed,
    /// <summary>The server answered 416 to the Range request and the partial file turned out to be complete and valid.</summary>
    CompletedFromPartial,
}

/// <summary>What <see cref="WeightsDownloader.FetchAsync"/> did.</summary>
/// <param name="Path">Full path of the verified file in the cache.</param>
/// <param name="Outcome">Whether the file was already there, downloaded, resumed or completed from the partial.</param>
/// <param name="Url">Where it was requested from (null when <see cref="WeightsFetchOutcome.AlreadyPresent"/>).</param>
/// <param name="Length">Size of the file in bytes.</param>
/// <param name="BytesTransferred">Body bytes received over the network by this call (0 when already present).</param>
/// <param name="Sha256">Full lower-case hex SHA-256 of the file.</param>
public sealed record WeightsFetchResult(string Path, WeightsFetchOutcome Outcome, Uri? Url, long Length, long BytesTransferred, string Sha256);

/// <summary>
/// Downloads a <see cref="WeightsEntry"/> into a cache folder, resumably and verified:
/// <list type="bullet">
/// <item>the body goes to <c>&lt;cache&gt;/&lt;file&gt;.partial</c> (held open exclusively, so two processes cannot write
/// it at once); an existing partial is continued with <c>Range: bytes=N-</c>. A <c>206</c> reply is appended (its
/// <c>Content-Range</c> must start at N), a <c>200</c> reply means the server ignored the range and the file starts over,
/// and a <c>416</c> reply means the partial is already complete or invalid: it is verified, and restarted from scratch
/// if it does not match;</item>
/// <item>the SHA-256 is computed while streaming and checked against the entry's torch.hub hash prefix (see
/// <see cref="KnownWeights"/>); only a matching file is renamed (atomically, same folder) to its final name, so the
/// final name never holds a partial or unverified file. A mismatch deletes the partial and throws;</item>
/// <item>network failures before any data arrives (DNS, refused connection, TLS, timeout) throw an
/// <see cref="McirException"/> that says how to install the file by hand; a transfer interrupted midway keeps the
/// partial for the next attempt to resume;</item>
/// <item>a file already present under the final name with the right hash is returned without any request.</item>
/// </list>
/// </summary>
public sealed class WeightsDownloader : IDisposable
{
    private readonly HttpClient _http;
    private readonly WeightsDownloaderOptions _options;

    /// <summary>A downloader with its own <see cref="HttpClient"/> (system proxy settings, no automatic decompression).</summary>
    public WeightsDownloader(WeightsDownloaderOptions? options = null)
        : this(new SocketsHttpHandler
        {
            ConnectTimeout = (options ?? new WeightsDownloaderOptions()).ConnectTimeout,
            AutomaticDecompression = DecompressionMethods.None,
        }, options)
    {
    }

    /// <summary>A downloader sending through <paramref name="handler"/> (disposed with the downloader).</summary>
    public WeightsDownloader(HttpMessageHandler handler, WeightsDownloaderOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(handler);
        _options = options ?? new WeightsDownloaderOptions();
        if (_options.BufferSize < 4096) throw new ArgumentOutOfRangeException(nameof(options), "BufferSize must be at least 4096 bytes.");
        // Timeouts are applied per phase below; HttpClient's single overall timeout would cap the whole transfer.
        _http = new HttpClient(handler, disposeHandler: true) { Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.UserAgent.ParseAdd("mcir-host-weights/1.0");
    }

    /// <summary>
    /// Makes sure <c>&lt;cacheDirectory&gt;/&lt;entry.FileName&gt;</c> exists with the right hash, downloading (or resuming)
    /// it from <paramref name="url"/> (default: the entry's official URL) when needed.
    /// </summary>
    /// <param name="entry">What to fetch; its file name gives the expected SHA-256 prefix.</param>
    /// <param name="cacheDirectory">Folder of the cache (created if missing).</param>
    /// <param name="url">Where to download from; null for <see cref="WeightsEntry.Url"/>.</param>
    /// <param name="progress">Called with (bytes of the file so far, total size or null when unknown) as data arrives.</param>
    /// <param name="log">Called with one-line notes: resuming, starting over, replacing an invalid cached file.</param>
    /// <param name="cancellationToken">Cancels the transfer; the partial file is kept for a later resume.</param>
    /// <exception cref="McirException">Unreachable server, HTTP error, interrupted transfer or hash mismatch.</exception>
    public async Task<WeightsFetchResult> FetchAsync(
        WeightsEntry entry,
        string cacheDirectory,
        Uri? url = null,
        Action<long, long?>? progress = null,
        Action<string>? log = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(entry);
        ArgumentException.ThrowIfNullOrEmpty(cacheDirectory);
        url ??= WeightsLocations.ResolveUrl(entry, explicitBaseUrl: null, environment: _ => null);
        string cache = Path.GetFullPath(cacheDirectory);
        string final = Path.Combine(cache, entry.FileName);
        string partial = final + ".partial";

        if (File.Exists(final))
        {
            var (digest, length) = await HashFileAsync(final, cancellationToken).ConfigureAwait(false);
            if (KnownWeights.MatchesPrefix(digest, entry.HashPrefix))
                return new WeightsFetchResult(final, WeightsFetchOutcome.AlreadyPresent, null, length, 0, digest);
            log?.Invoke($"{final} is there but its SHA-256 {digest} does not start with {entry.HashPrefix}; " +
                        "downloading a fresh copy (the file is replaced only once the new one verifies)");
        }

        string? createdCache = IO.CreatedFolders.TopmostMissing(cache);
        Directory.CreateDirectory(cache);
        var file = OpenPartial(partial);
        bool done = false;
        long partialLength = 0;
        try
        {
            bool mayResume = true;
            for (int attempt = 0; attempt < 3; attempt++)
            {
                var result = await AttemptAsync(entry, cache, url, final, partial, file, mayResume, progress, log, cancellationToken)
                    .ConfigureAwait(false);
                if (result is not null)
                {
                    done = true;
                    return result;
                }
                mayResume = false; // start over once, from the first byte
            }
            throw new McirException($"download of {url} did not settle after restarting; the server's Range handling looks broken");
        }
        finally
        {
            if (!done && file.CanSeek) partialLength = file.Length; // CanSeek is false once disposed
            await file.DisposeAsync().ConfigureAwait(false);
            // A failure before any byte arrived (server unreachable, HTTP error) leaves no empty partial file behind.
            if (!done && partialLength == 0)
            {
                TryDelete(partial);
                IO.CreatedFolders.DeleteIfEmpty(createdCache); // nor a cache folder this call created for nothing
            }
        }
    }

    /// <summary>One request; null means "start over from the first byte".</summary>
    private async Task<WeightsFetchResult?> AttemptAsync(
        WeightsEntry entry, string cache, Uri url, string final, string partial, FileStream file, bool mayResume,
        Action<long, long?>? progress, Action<string>? log, CancellationToken ct)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long have = 0;
        if (mayResume && file.Length > 0)
        {
            have = await HashPrefixOfStreamAsync(file, sha, ct).ConfigureAwait(false);
            log?.Invoke($"resuming {entry.FileName} from byte {have} ({partial})");
        }
        else
        {
            file.SetLength(0);
        }
        file.Position = have;

        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        if (have > 0) request.Headers.Range = new RangeHeaderValue(have, null);
        using var response = await SendAsync(request, entry, cache, url, ct).ConfigureAwait(false);

        long? total;
        var outcome = have > 0 ? WeightsFetchOutcome.Resumed : WeightsFetchOutcome.Downloaded;
        switch (response.StatusCode)
        {
            case HttpStatusCode.OK:
                if (have > 0)
                {
                    log?.Invoke($"the server ignored the Range request (200 instead of 206); downloading {entry.FileName} from the start");
                    sha.GetHashAndReset();
                    file.SetLength(0);
                    file.Position = have = 0;
                    outcome = WeightsFetchOutcome.Downloaded;
                }
                total = response.Content.Headers.ContentLength;
                break;

            case HttpStatusCode.PartialContent:
                var range = response.Content.Headers.ContentRange;
                if (range is { HasRange: true } && range.From != have)
                {
                    log?.Invoke($"the server sent bytes from {range.From} instead of {have}; downloading {entry.FileName} from the start");
                    return null;
                }
                total = range?.Length ?? (response.Content.Headers.ContentLength is { } n ? have + n : null);
                break;

            case HttpStatusCode.RequestedRangeNotSatisfiable when have > 0:
                // The partial already holds the whole file (or is longer than it): keep it only if it verifies.
                string digest = HexOf(sha.GetHashAndReset());
                if (KnownWeights.MatchesPrefix(digest, entry.HashPrefix))
                {
                    await CommitAsync(file, partial, final).ConfigureAwait(false);
                    progress?.Invoke(have, have);
                    return new WeightsFetchResult(final, WeightsFetchOutcome.CompletedFromPartial, url, have, 0, digest);
                }
                log?.Invoke($"the server has no bytes after {have} (416) and the partial file does not verify; downloading {entry.FileName} from the start");
                return null;

            default:
                throw new McirException(
                    $"download of {url} failed: HTTP {(int)response.StatusCode} {response.ReasonPhrase}" +
                    (have > 0 ? $" (the partial download {partial} is kept)" : ""));
        }

        progress?.Invoke(have, total);
        long received = await CopyBodyAsync(response, file, sha, have, total, url, partial, progress, ct).ConfigureAwait(false);
        have += received;
        if (total is { } expected && have != expected)
            throw new McirException(
                $"download of {url} ended after {have} of {expected} bytes; the partial download {partial} is kept, run the command again to resume");

        string sum = HexOf(sha.GetHashAndReset());
        if (!KnownWeights.MatchesPrefix(sum, entry.HashPrefix))
        {
            await file.DisposeAsync().ConfigureAwait(false);
            TryDelete(partial);
            throw new McirException(
                $"{entry.FileName} from {url} failed verification: its SHA-256 must start with {entry.HashPrefix} " +
                $"(torch.hub's check), but it is {sum}; the download was deleted. Is the URL or mirror right?");
        }
        await CommitAsync(file, partial, final).ConfigureAwait(false);
        return new WeightsFetchResult(final, outcome, url, have, received, sum);
    }

    private async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, WeightsEntry entry, string cache, Uri url, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(_options.ResponseTimeout);
        try
        {
            return await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
        {
            throw Unreachable(entry, cache, url, e.InnerException is TimeoutException t ? t.Message
                : $"no response within {Seconds(_options.ResponseTimeout)}", e);
        }
        catch (HttpRequestException e) when (e.HttpRequestError is HttpRequestError.InvalidResponse or HttpRequestError.ResponseEnded or HttpRequestError.VersionNegotiationError)
        {
            throw new McirException($"download of {url} failed: {Describe(e)}", e);
        }
        catch (HttpRequestException e)
        {
            throw Unreachable(entry, cache, url, Describe(e), e);
        }
    }

    private async Task<long> CopyBodyAsync(
        HttpResponseMessage response, FileStream file, IncrementalHash sha, long have, long? total, Uri url, string partial,
        Action<long, long?>? progress, CancellationToken ct)
    {
        byte[] buffer = new byte[_options.BufferSize];
        long received = 0;
        using var stall = CancellationTokenSource.CreateLinkedTokenSource(ct);
        Stream body;
        try
        {
            body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        }
        catch (Exception e) when (IsTransferFailure(e, ct))
        {
            throw Interrupted(e);
        }
        await using (body.ConfigureAwait(false))
        {
            while (true)
            {
                int n;
                try
                {
                    stall.CancelAfter(_options.StallTimeout);
                    n = await body.ReadAsync(buffer, stall.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (IsTransferFailure(e, ct))
                {
                    await file.FlushAsync(CancellationToken.None).ConfigureAwait(false);
                    throw Interrupted(e);
                }
                if (n == 0) return received;
                sha.AppendData(buffer, 0, n);
                await file.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false); // disk errors propagate as they are
                received += n;
                progress?.Invoke(have + received, total);
            }
        }

        McirException Interrupted(Exception e) => new(
            $"download of {url} was interrupted after {have + received}" + (total is { } t ? $" of {t}" : "") +
            $" bytes: {(e is OperationCanceledException ? $"no data for {Seconds(_options.StallTimeout)}" : Describe(e))}; " +
            $"the partial download {partial} is kept, run the command again to resume", e);
    }

    // Network-side failures while reading the body (the caller's own cancellation is not one).
    private static bool IsTransferFailure(Exception e, CancellationToken ct) =>
        !ct.IsCancellationRequested && e is IOException or HttpRequestException or OperationCanceledException;

    private static async Task CommitAsync(FileStream file, string partial, string final)
    {
        await file.FlushAsync(CancellationToken.None).ConfigureAwait(false);
        file.Flush(flushToDisk: true);
        await file.DisposeAsync().ConfigureAwait(false);
        File.Move(partial, final, overwrite: true);
    }

    private static FileStream OpenPartial(string partial)
    {
        try
        {
            // FileShare.None also takes an advisory lock on Unix, so a second process fetching the same file fails here.
            return new FileStream(partial, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, bufferSize: 1 << 16, useAsync: true);
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException and not PathTooLongException)
        {
            throw new McirException($"cannot open {partial}: {e.Message} (is another download of this file running?)", e);
        }
    }

    private static McirException Unreachable(WeightsEntry entry, string cache, Uri url, string reason, Exception inner) =>
        new($"cannot reach {url.Authority}: {reason}; on a machine without internet copy {entry.FileName} into {cache} " +
            $"or set {entry.EnvironmentVariable}", inner);

    private static async Task<long> HashPrefixOfStreamAsync(FileStream file, IncrementalHash sha, CancellationToken ct)
    {
        file.Position = 0;
        byte[] buffer = new byte[1 << 20];
        long total = 0;
        int n;
        while ((n = await file.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
        {
            sha.AppendData(buffer, 0, n);
            total += n;
        }
        return total;
    }

    private static async Task<(string Digest, long Length)> HashFileAsync(string path, CancellationToken ct)
    {
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1 << 16, useAsync: true);
        byte[] hash = await SHA256.HashDataAsync(stream, ct).ConfigureAwait(false);
        return (HexOf(hash), stream.Length);
    }

    private static string HexOf(byte[] hash) => Convert.ToHexStringLower(hash);

    private static string Seconds(TimeSpan t) => $"{t.TotalSeconds:0.###} s";

    // "Connection refused (127.0.0.1:5000)", "Name or service not known (download.pytorch.org:443)", ...; inner messages
    // are added when they say more than the outer one.
    private static string Describe(Exception e)
    {
        var parts = new List<string>();
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            string m = x.Message.Trim();
            if (m.Length == 0 || m.Contains("see inner exception", StringComparison.OrdinalIgnoreCase)) continue;
            if (parts.Any(p => p.Contains(m, StringComparison.Ordinal))) continue;
            parts.Add(m);
        }
        return parts.Count > 0 ? string.Join(": ", parts) : e.GetType().Name;
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* best effort: the verification error matters */ }
    }

    /// <inheritdoc />
    public void Dispose() => _http.Dispose();
}
