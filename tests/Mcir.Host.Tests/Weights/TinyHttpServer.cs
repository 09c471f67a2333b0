using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Mcir.Host.Tests.Weights;

/// <summary>One request the <see cref="TinyHttpServer"/> answered.</summary>
internal sealed record ServedRequest(string Method, string Path, string? Range, int Status, long BodyBytesSent);

/// <summary>
/// A minimal HTTP/1.1 file server on 127.0.0.1 (free port), one request per connection (<c>Connection: close</c>).
/// Serves <see cref="Files"/> by path, optionally honouring <c>Range: bytes=N-</c>; can cut the first body short or
/// never answer. Bounded: at most <see cref="MaxRequests"/> requests, and it stops by itself after <c>lifetime</c>.
/// </summary>
internal sealed class TinyHttpServer : IDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop;
    private readonly Task _loop;
    private int _dropsLeft;

    public TinyHttpServer(TimeSpan? lifetime = null)
    {
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _stop = new CancellationTokenSource(lifetime ?? TimeSpan.FromSeconds(60));
        _loop = Task.Run(LoopAsync);
    }

    public int Port { get; }

    public string BaseUrl => $"http://127.0.0.1:{Port}/";

    /// <summary>Path (e.g. <c>/fake-0123abcd.pth</c>) → content. Anything else is a 404.</summary>
    public ConcurrentDictionary<string, byte[]> Files { get; } = new();

    /// <summary>Answer <c>Range: bytes=N-</c> with 206/416; when false the range is ignored and the whole file sent with 200.</summary>
    public bool HonourRange { get; set; } = true;

    /// <summary>Accept and read requests but never answer them (until disposed), for timeouts.</summary>
    public bool NeverRespond { get; set; }

    public int MaxRequests { get; set; } = 16;

    public ConcurrentQueue<ServedRequest> Requests { get; } = new();

    /// <summary>The next response body is cut (connection closed) after this many bytes, though Content-Length promises all.</summary>
    public void DropNextBodyAfter(long bytes)
    {
        DropAfter = bytes;
        Interlocked.Exchange(ref _dropsLeft, 1);
    }

    private long DropAfter { get; set; }

    public long TotalBodyBytesSent => Requests.Sum(r => r.BodyBytesSent);

    private async Task LoopAsync()
    {
        try
        {
            for (int i = 0; i < MaxRequests && !_stop.IsCancellationRequested; i++)
            {
                using var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                await HandleAsync(client);
            }
        }
        catch (OperationCanceledException) { }
        catch (ObjectDisposedException) { }
        catch (SocketException) { }
        finally
        {
            _listener.Stop();
        }
    }

    private async Task HandleAsync(TcpClient client)
    {
        var stream = client.GetStream();
        string? head = await ReadHeadAsync(stream);
        if (head is null) return;
        var lines = head.Split("\r\n");
        var first = lines[0].Split(' ');
        string method = first[0], path = first.Length > 1 ? first[1] : "/";
        string? range = lines.Skip(1).Select(l => l.Split(':', 2)).Where(p => p.Length == 2 && p[0].Trim().Equals("Range", StringComparison.OrdinalIgnoreCase))
            .Select(p => p[1].Trim()).FirstOrDefault();

        if (NeverRespond)
        {
            Requests.Enqueue(new ServedRequest(method, path, range, 0, 0));
            try { await Task.Delay(Timeout.Infinite, _stop.Token); } catch (OperationCanceledException) { }
            return;
        }

        if (!Files.TryGetValue(path, out var content))
        {
            Requests.Enqueue(new ServedRequest(method, path, range, 404, 0));
            await WriteAsync(stream, 404, "Not Found", [], ReadOnlyMemory<byte>.Empty, ReadOnlyMemory<byte>.Empty);
            return;
        }

        long from = 0;
        int status = 200;
        var headers = new List<string>();
        if (range is not null && HonourRange && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-')
            && long.TryParse(range["bytes=".Length..^1], out from))
        {
            if (from >= content.Length)
            {
                Requests.Enqueue(new ServedRequest(method, path, range, 416, 0));
                await WriteAsync(stream, 416, "Range Not Satisfiable", [$"Content-Range: bytes */{content.Length}"], ReadOnlyMemory<byte>.Empty, ReadOnlyMemory<byte>.Empty);
                return;
            }
            status = 206;
            headers.Add($"Content-Range: bytes {from}-{content.Length - 1}/{content.Length}");
        }
        else
        {
            from = 0;
        }
        headers.Add("Accept-Ranges: " + (HonourRange ? "bytes" : "none"));
        long? cut = Interlocked.Exchange(ref _dropsLeft, 0) == 1 ? DropAfter : null;
        ReadOnlyMemory<byte> body = content.AsMemory((int)from);
        var part = cut is { } c && c < body.Length ? body[..(int)c] : body;
        // Recorded before answering, so a test sees it as soon as its client has the response.
        Requests.Enqueue(new ServedRequest(method, path, range, status, part.Length));
        await WriteAsync(stream, status, status == 206 ? "Partial Content" : "OK", headers, body, part);
    }

    private static async Task<string?> ReadHeadAsync(NetworkStream stream)
    {
        var buffer = new byte[16 * 1024];
        int length = 0;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (length < buffer.Length)
        {
            int n = await stream.ReadAsync(buffer.AsMemory(length), timeout.Token);
            if (n == 0) return null;
            length += n;
            string text = Encoding.ASCII.GetString(buffer, 0, length);
            int end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (end >= 0) return text[..end];
        }
        return null;
    }

    // Announces body.Length bytes but sends only part (all of it unless the body is being cut short).
    private static async Task WriteAsync(NetworkStream stream, int status, string reason, List<string> headers, ReadOnlyMemory<byte> body, ReadOnlyMemory<byte> part)
    {
        var head = new StringBuilder();
        head.Append($"HTTP/1.1 {status} {reason}\r\n");
        head.Append($"Content-Length: {body.Length}\r\n");
        head.Append("Content-Type: application/octet-stream\r\nConnection: close\r\n");
        foreach (var h in headers) head.Append(h).Append("\r\n");
        head.Append("\r\n");
        try
        {
            await stream.WriteAsync(Encoding.ASCII.GetBytes(head.ToString()));
            await stream.WriteAsync(part);
            await stream.FlushAsync();
        }
        catch (IOException) { /* the client went away */ }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
        try { _loop.Wait(TimeSpan.FromSeconds(10)); } catch (AggregateException) { }
        _stop.Dispose();
    }

    /// <summary>A port on 127.0.0.1 that nothing listens on (bound, then released).</summary>
    public static int ClosedPort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }
}
