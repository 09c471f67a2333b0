using System.Text.RegularExpressions;
using Mcir.Core.Embeddings;

namespace Mcir.Core.Weights;

/// <summary>
/// A downloadable weights file: a short name (<c>vgg16</c>), the file name it is stored under, and its official URL.
/// The expected SHA-256 prefix is taken from the file name exactly as torchvision/torch.hub does (see
/// <see cref="KnownWeights.HashPrefixOf"/>), so an entry whose file name carries no prefix is refused.
/// </summary>
/// <param name="Name">Short name used on the command line and in messages, e.g. <c>vgg16</c>.</param>
/// <param name="FileName">File name in the cache and on the server, e.g. <c>vgg16-397923af.pth</c>.</param>
/// <param name="Url">Official download address (used when no mirror/base URL is given).</param>
public sealed record WeightsEntry(string Name, string FileName, string Url)
{
    /// <summary>Short name used on the command line and in messages.</summary>
    public string Name { get; init; } = string.IsNullOrWhiteSpace(Name) ? throw new ArgumentException("A weights entry needs a name.", nameof(Name)) : Name;

    /// <summary>File name in the cache and on the server; must be a plain file name carrying a torch.hub hash prefix.</summary>
    public string FileName { get; init; } = ValidFileName(FileName);

    /// <summary>
    /// Lower-case hex prefix of the file's SHA-256 that a download must match (torch.hub's <c>hash_prefix</c>).
    /// </summary>
    public string HashPrefix => KnownWeights.HashPrefixOf(FileName)!;

    /// <summary>
    /// Environment variable that points the consumers of these weights at a copy of the file elsewhere
    /// (<c>MCIR_VGG16_WEIGHTS</c> for <c>vgg16</c>); named in the offline error message.
    /// </summary>
    public string EnvironmentVariable => "MCIR_" + Regex.Replace(Name.ToUpperInvariant(), "[^A-Z0-9]", "_") + "_WEIGHTS";

    private static string ValidFileName(string fileName)
    {
        if (string.IsNullOrWhiteSpace(fileName) || fileName != Path.GetFileName(fileName) || fileName is "." or "..")
            throw new ArgumentException($"'{fileName}' is not a plain file name.", nameof(FileName));
        if (string.IsNullOrEmpty(KnownWeights.HashPrefixOf(fileName)))
            throw new ArgumentException(
                $"'{fileName}' carries no SHA-256 prefix (torch.hub's '<name>-<hex>.<ext>' convention), so a download could not be verified.",
                nameof(FileName));
        return fileName;
    }
}

/// <summary>
/// The weights files <c>mcir-host weights fetch</c> knows: torchvision's ImageNet VGG16 and VGG19 (no batch norm), the
/// networks behind the SPN embedding. File names and URLs come from <see cref="VggLayout"/>.
/// </summary>
/// <remarks>
/// Verification follows torch.hub's <c>load_state_dict_from_url(..., check_hash=True)</c>: the hash prefix is the first
/// match of the regular expression <c>-([a-f0-9]*)\.</c> in the file name (<c>397923af</c> for
/// <c>vgg16-397923af.pth</c>), and <c>download_url_to_file</c> accepts the file when the lower-case hex SHA-256 digest of
/// the whole file starts with that prefix (<c>digest[:len(hash_prefix)] == hash_prefix</c>). Only that 8-digit prefix
/// (32 bits) is published, so it guards against truncated, corrupted or wrong files, not against a deliberate forgery.
/// One deliberate difference: torch.hub skips the check when the name has no prefix; here such an entry is refused.
/// </remarks>
public static class KnownWeights
{
    // torch.hub: HASH_REGEX = re.compile(r'-([a-f0-9]*)\.'), used with .search() on the file name.
    private static readonly Regex HashRegex = new(@"-([a-f0-9]*)\.", RegexOptions.CultureInvariant);

    /// <summary>torchvision's <c>vgg16</c> ImageNet weights (<c>vgg16-397923af.pth</c>, about 528 MB).</summary>
    public static WeightsEntry Vgg16 { get; } = ForVgg(VggVariant.Vgg16);

    /// <summary>torchvision's <c>vgg19</c> ImageNet weights (<c>vgg19-dcbb9e9d.pth</c>, about 548 MB).</summary>
    public static WeightsEntry Vgg19 { get; } = ForVgg(VggVariant.Vgg19);

    /// <summary>All known entries, in the order they are listed to users.</summary>
    public static IReadOnlyList<WeightsEntry> All { get; } = [Vgg16, Vgg19];

    /// <summary>The entry named <paramref name="name"/> (case-insensitive), or null.</summary>
    public static WeightsEntry? Find(string name) =>
        All.FirstOrDefault(e => string.Equals(e.Name, name.Trim(), StringComparison.OrdinalIgnoreCase));

    /// <summary>The entry named <paramref name="name"/>; an <see cref="McirException"/> listing the known names otherwise.</summary>
    public static WeightsEntry Get(string name) =>
        Find(name) ?? throw new McirException($"unknown weights '{name}' (known: {string.Join(", ", All.Select(e => e.Name))})");

    /// <summary>
    /// The SHA-256 prefix torch.hub would check for a file called <paramref name="fileName"/>: the first capture of
    /// <c>-([a-f0-9]*)\.</c>, or null when there is none.
    /// </summary>
    public static string? HashPrefixOf(string fileName)
    {
        var m = HashRegex.Match(fileName);
        return m.Success ? m.Groups[1].Value : null;
    }

    /// <summary>
    /// torch.hub's acceptance test: the lower-case hex digest starts with <paramref name="hashPrefix"/>.
    /// </summary>
    public static bool MatchesPrefix(string sha256Hex, string hashPrefix) =>
        sha256Hex.ToLowerInvariant().StartsWith(hashPrefix, StringComparison.Ordinal);

    private static WeightsEntry ForVgg(VggVariant variant) =>
        new(VggLayout.VariantName(variant), VggLayout.TorchvisionFileName(variant), VggLayout.TorchvisionUrl(variant));
}

/// <summary>Where downloaded weights live, and where they are downloaded from.</summary>
public static class WeightsLocations
{
    /// <summary>Environment variable naming the cache folder (second choice after <c>--cache</c>).</summary>
    public const string CacheVariable = "MCIR_WEIGHTS_CACHE";

    /// <summary>Environment variable naming a mirror: the file name is appended to it (second choice after <c>--base-url</c>).</summary>
    public const string BaseUrlVariable = "MCIR_WEIGHTS_BASE_URL";

    /// <summary>
    /// The user's copy of a known weights file, for code that needs it without a configured path: the file named by
    /// <c>$MCIR_&lt;NAME&gt;_WEIGHTS</c> (which must exist), else the file in the cache folder that
    /// <c>mcir-host weights fetch</c> fills, else null.
    /// </summary>
    public static string? LocateInstalled(WeightsEntry entry, Func<string, string?>? environment = null, string? home = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        if (environment(entry.EnvironmentVariable) is { } named && !string.IsNullOrWhiteSpace(named))
        {
            return File.Exists(named) || Directory.Exists(named)
                ? Path.GetFullPath(named)
                : throw new McirException($"{entry.EnvironmentVariable}={named}: no such file (expected torchvision's {entry.FileName})");
        }
        string cached = Path.Combine(ResolveCacheDirectory(null, environment, home), entry.FileName);
        return File.Exists(cached) ? cached : null;
    }

    /// <summary>
    /// The cache folder: <paramref name="explicitDir"/> (<c>--cache</c>), else <c>$MCIR_WEIGHTS_CACHE</c>, else
    /// <c>$XDG_CACHE_HOME/mcir/weights</c> (only when absolute, as the XDG spec asks), else <c>~/.cache/mcir/weights</c>.
    /// Empty values count as unset. The result is a full path; the folder is not created here.
    /// </summary>
    /// <param name="explicitDir">The <c>--cache</c> value, if given.</param>
    /// <param name="environment">Environment lookup (defaults to the process environment; tests pass their own).</param>
    /// <param name="home">Home folder (defaults to <c>$HOME</c>, else the user profile folder).</param>
    public static string ResolveCacheDirectory(string? explicitDir, Func<string, string?>? environment = null, string? home = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        if (!string.IsNullOrWhiteSpace(explicitDir)) return Path.GetFullPath(explicitDir);
        if (environment(CacheVariable) is { Length: > 0 } fromEnv && !string.IsNullOrWhiteSpace(fromEnv)) return Path.GetFullPath(fromEnv);
        if (environment("XDG_CACHE_HOME") is { Length: > 0 } xdg && Path.IsPathRooted(xdg))
            return Path.GetFullPath(Path.Combine(xdg, "mcir", "weights"));
        home ??= environment("HOME") is { Length: > 0 } h ? h : Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        if (string.IsNullOrEmpty(home))
            throw new McirException($"cannot find a cache folder for weights: no home folder; pass --cache DIR or set {CacheVariable}");
        return Path.GetFullPath(Path.Combine(home, ".cache", "mcir", "weights"));
    }

    /// <summary>
    /// The URL to download <paramref name="entry"/> from: <paramref name="explicitBaseUrl"/> (<c>--base-url</c>) or
    /// <c>$MCIR_WEIGHTS_BASE_URL</c> with the file name appended, else the entry's official URL.
    /// </summary>
    public static Uri ResolveUrl(WeightsEntry entry, string? explicitBaseUrl, Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        string? baseUrl = !string.IsNullOrWhiteSpace(explicitBaseUrl) ? explicitBaseUrl
            : environment(BaseUrlVariable) is { } e && !string.IsNullOrWhiteSpace(e) ? e : null;
        if (baseUrl is null) return ParseHttpUrl(entry.Url, "official URL of " + entry.Name);
        baseUrl = baseUrl.Trim();
        var root = ParseHttpUrl(baseUrl.EndsWith('/') ? baseUrl : baseUrl + "/", "base URL");
        return new Uri(root, Uri.EscapeDataString(entry.FileName));
    }

    private static Uri ParseHttpUrl(string text, string what)
    {
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            throw new McirException($"{what} '{text}' is not an absolute http:// or https:// URL");
        if (!string.IsNullOrEmpty(uri.Query) || !string.IsNullOrEmpty(uri.Fragment))
            throw new McirException($"{what} '{text}' must not have a query or fragment (the file name is appended to it)");
        return uri;
    }
}
