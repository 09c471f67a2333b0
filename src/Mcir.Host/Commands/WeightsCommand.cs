using System.CommandLine;
using Mcir.Core.Weights;

namespace Mcir.Host.Commands;

/// <summary><c>mcir-host weights fetch vgg16|vgg19</c>: downloads torchvision's ImageNet VGG weights into the cache.</summary>
internal static class WeightsCommand
{
    public static Command Create(HostConsole console) =>
        new("weights", "Pretrained weights used by the framework (the SPN embedding's VGG)") { CreateFetch(console) };

    private static Command CreateFetch(HostConsole console)
    {
        string known = string.Join(", ", KnownWeights.All.Select(e => e.Name));
        var name = new Argument<string>("name") { Description = $"Which weights: {known}" };
        name.CompletionSources.Add(KnownWeights.All.Select(e => e.Name).ToArray());
        name.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<string>() is { } n && KnownWeights.Find(n) is null)
                r.AddError($"unknown weights '{n}' (known: {known})");
        });
        var cache = new Option<string?>("--cache")
        {
            Description = $"Cache folder (default: ${WeightsLocations.CacheVariable}, else $XDG_CACHE_HOME/mcir/weights, else ~/.cache/mcir/weights)",
        };
        var baseUrl = new Option<string?>("--base-url")
        {
            Description = $"Download from this mirror instead (the file name is appended; default: ${WeightsLocations.BaseUrlVariable}, else the official URL)",
        };
        var command = new Command("fetch", "Download the weights (resuming a partial download) and verify their SHA-256 prefix; prints the file's path")
        {
            name, cache, baseUrl,
        };
        command.SetAction(r =>
        {
            var entry = KnownWeights.Get(r.GetValue(name)!);
            string dir = WeightsLocations.ResolveCacheDirectory(r.GetValue(cache));
            var url = WeightsLocations.ResolveUrl(entry, r.GetValue(baseUrl));
            var progress = new ProgressPrinter(console.Error, entry.Name);
            using var downloader = new WeightsDownloader();
            var result = downloader
                .FetchAsync(entry, dir, url, progress.Report, note => console.Error.WriteLine($"{entry.Name}: {note}"))
                .GetAwaiter().GetResult();
            console.Error.WriteLine(result.Outcome switch
            {
                WeightsFetchOutcome.AlreadyPresent => $"{entry.Name}: already in the cache and valid (SHA-256 {result.Sha256}); nothing downloaded",
                WeightsFetchOutcome.CompletedFromPartial => $"{entry.Name}: the partial download was complete; verified (SHA-256 {result.Sha256})",
                WeightsFetchOutcome.Resumed => $"{entry.Name}: resumed download finished, {Size(result.BytesTransferred)} transferred, {Size(result.Length)} in all; verified (SHA-256 {result.Sha256})",
                _ => $"{entry.Name}: downloaded {Size(result.Length)} from {result.Url}; verified (SHA-256 {result.Sha256})",
            });
            console.Out.WriteLine(result.Path);
            return 0;
        });
        return command;
    }

    private static string Size(long bytes) => bytes >= 1 << 20 ? $"{bytes / 1048576.0:0.0} MiB" : $"{bytes} bytes";

    /// <summary>Prints a progress line every 10 % (every 50 MiB when the size is unknown), not per chunk.</summary>
    private sealed class ProgressPrinter(TextWriter error, string name)
    {
        private long _next = -1;

        public void Report(long bytes, long? total)
        {
            if (_next < 0) // first call: where the transfer starts
            {
                error.WriteLine(total is { } t ? $"{name}: {Size(bytes)} of {Size(t)}" : $"{name}: {Size(bytes)} (size unknown)");
                _next = NextMark(bytes, total);
                return;
            }
            if (bytes < _next) return;
            error.WriteLine(total is { } all and > 0
                ? $"{name}: {Size(bytes)} of {Size(all)} ({100.0 * bytes / all:0}%)"
                : $"{name}: {Size(bytes)}");
            _next = NextMark(bytes, total);
        }

        private static long NextMark(long bytes, long? total)
        {
            long step = total is { } t and > 0 ? Math.Max(1, t / 10) : 50L << 20;
            return (bytes / step + 1) * step;
        }
    }
}
