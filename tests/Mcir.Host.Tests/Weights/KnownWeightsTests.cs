using Mcir.Core;
using Mcir.Core.Embeddings;
using Mcir.Core.Weights;

namespace Mcir.Host.Tests.Weights;

public class KnownWeightsTests
{
    [Fact]
    public void TheRegistryHasTorchvisionsVggFilesAndTheirPrefixes()
    {
        Assert.Equal(["vgg16", "vgg19"], KnownWeights.All.Select(e => e.Name));
        Assert.Equal("https://download.pytorch.org/models/vgg16-397923af.pth", KnownWeights.Vgg16.Url);
        Assert.Equal("https://download.pytorch.org/models/vgg19-dcbb9e9d.pth", KnownWeights.Vgg19.Url);
        Assert.Equal(VggLayout.TorchvisionFileName(VggVariant.Vgg16), KnownWeights.Vgg16.FileName);
        Assert.Equal(VggLayout.TorchvisionUrl(VggVariant.Vgg19), KnownWeights.Vgg19.Url);
        Assert.Equal("397923af", KnownWeights.Vgg16.HashPrefix);
        Assert.Equal("dcbb9e9d", KnownWeights.Vgg19.HashPrefix);
        Assert.Equal("MCIR_VGG16_WEIGHTS", KnownWeights.Vgg16.EnvironmentVariable);
        Assert.Same(KnownWeights.Vgg19, KnownWeights.Get(" VGG19"));
        Assert.Null(KnownWeights.Find("vgg11"));
        Assert.Contains("known: vgg16, vgg19", Assert.Throws<McirException>(() => KnownWeights.Get("vgg11")).Message);
    }

    [Theory]
    [InlineData("vgg16-397923af.pth", "397923af")]
    [InlineData("resnet18-f37072fd.pth", "f37072fd")]
    [InlineData("vgg16_bn-6c64b313.pth", "6c64b313")]
    [InlineData("model-ABCDEF12.pth", null)]     // upper case is not a torch.hub prefix
    [InlineData("weights.pth", null)]
    [InlineData("a-12.b-34ff.pth", "12")]       // first match, as re.search
    public void TheHashPrefixIsTorchHubs(string fileName, string? prefix) =>
        Assert.Equal(prefix, KnownWeights.HashPrefixOf(fileName) is { Length: > 0 } p ? p : null);

    [Fact]
    public void VerificationComparesTheDigestsLeadingDigits()
    {
        Assert.True(KnownWeights.MatchesPrefix("397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0", "397923af"));
        Assert.True(KnownWeights.MatchesPrefix("397923AF00", "397923af"));
        Assert.False(KnownWeights.MatchesPrefix("0397923af0", "397923af"));
        Assert.False(KnownWeights.MatchesPrefix("397923a", "397923af"));
    }

    [Fact]
    public void AnEntryMustCarryAPrefixAndBeAPlainFileName()
    {
        Assert.Throws<ArgumentException>(() => new WeightsEntry("x", "weights.pth", "http://127.0.0.1/weights.pth"));
        Assert.Throws<ArgumentException>(() => new WeightsEntry("x", "x-.pth", "http://127.0.0.1/x-.pth"));
        Assert.Throws<ArgumentException>(() => new WeightsEntry("x", "../x-0123abcd.pth", "http://127.0.0.1/x.pth"));
        Assert.Equal("0123abcd", new WeightsEntry("x", "x-0123abcd.pth", "http://127.0.0.1/x.pth").HashPrefix);
    }

    [Fact]
    public void TheCacheFolderIsOptionThenEnvironmentThenXdgThenHome()
    {
        string root = Path.Combine(Path.GetTempPath(), "mcir-cache-order");
        var env = new Dictionary<string, string?>
        {
            ["MCIR_WEIGHTS_CACHE"] = Path.Combine(root, "env"),
            ["XDG_CACHE_HOME"] = Path.Combine(root, "xdg"),
            ["HOME"] = Path.Combine(root, "home"),
        };
        string? Lookup(string name) => env.GetValueOrDefault(name);

        Assert.Equal(Path.Combine(root, "opt"), WeightsLocations.ResolveCacheDirectory(Path.Combine(root, "opt"), Lookup));
        Assert.Equal(Path.Combine(root, "env"), WeightsLocations.ResolveCacheDirectory(null, Lookup));
        env["MCIR_WEIGHTS_CACHE"] = "";
        Assert.Equal(Path.Combine(root, "xdg", "mcir", "weights"), WeightsLocations.ResolveCacheDirectory("", Lookup));
        env["XDG_CACHE_HOME"] = "relative/cache"; // the XDG spec says to ignore relative paths
        Assert.Equal(Path.Combine(root, "home", ".cache", "mcir", "weights"), WeightsLocations.ResolveCacheDirectory(null, Lookup));
        env.Remove("XDG_CACHE_HOME");
        Assert.Equal(Path.Combine(root, "home", ".cache", "mcir", "weights"), WeightsLocations.ResolveCacheDirectory(null, Lookup));
        Assert.Equal(Path.Combine(root, "h2", ".cache", "mcir", "weights"), WeightsLocations.ResolveCacheDirectory(null, Lookup, Path.Combine(root, "h2")));
    }

    [Fact]
    public void TheUrlIsBaseUrlOptionThenEnvironmentThenOfficial()
    {
        var env = new Dictionary<string, string?>();
        string? Lookup(string name) => env.GetValueOrDefault(name);
        var vgg16 = KnownWeights.Vgg16;

        Assert.Equal(new Uri(vgg16.Url), WeightsLocations.ResolveUrl(vgg16, null, Lookup));
        env["MCIR_WEIGHTS_BASE_URL"] = "http://mirror.example/models";
        Assert.Equal(new Uri("http://mirror.example/models/vgg16-397923af.pth"), WeightsLocations.ResolveUrl(vgg16, null, Lookup));
        Assert.Equal(new Uri("http://127.0.0.1:8080/m/vgg16-397923af.pth"), WeightsLocations.ResolveUrl(vgg16, "http://127.0.0.1:8080/m/", Lookup));
        Assert.Equal(new Uri("http://127.0.0.1:8080/vgg16-397923af.pth"), WeightsLocations.ResolveUrl(vgg16, "http://127.0.0.1:8080", Lookup));
        Assert.Contains("not an absolute http", Assert.Throws<McirException>(() => WeightsLocations.ResolveUrl(vgg16, "ftp://x/", Lookup)).Message);
        Assert.Throws<McirException>(() => WeightsLocations.ResolveUrl(vgg16, "mirror/models", Lookup));
    }
}
