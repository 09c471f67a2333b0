using System.Security.Cryptography;

namespace Mcir.Host.Tests.Weights;

/// <summary><c>mcir-host weights fetch</c> end to end, against a local server (the real prefixes cannot be forged, so
/// the served bytes never verify: these tests cover the failure paths the user sees).</summary>
public class WeightsCommandTests
{
    [Fact]
    public void BytesThatDoNotMatchTorchvisionsPrefixAreRejected()
    {
        using var tmp = new TempDir();
        string cache = Path.Combine(tmp.Path, "cache");
        using var server = new TinyHttpServer();
        var fake = new byte[200_000];
        new Random(42).NextBytes(fake);
        server.Files["/vgg16-397923af.pth"] = fake;

        var (code, stdout, stderr) = HostRunner.Run("weights", "fetch", "vgg16", "--cache", cache, "--base-url", server.BaseUrl);

        Assert.Equal(HostCommands.UserError, code);
        Assert.Equal("", stdout);
        Assert.Contains("error: vgg16-397923af.pth from " + server.BaseUrl + "vgg16-397923af.pth failed verification", stderr);
        Assert.Contains("must start with 397923af", stderr);
        Assert.Contains(Convert.ToHexStringLower(SHA256.HashData(fake)), stderr);
        Assert.False(File.Exists(Path.Combine(cache, "vgg16-397923af.pth")));
        Assert.False(File.Exists(Path.Combine(cache, "vgg16-397923af.pth.partial")));
        var request = Assert.Single(server.Requests);
        Assert.Equal("/vgg16-397923af.pth", request.Path);
        Assert.Contains("vgg16: 0 bytes of", stderr); // progress goes to standard error
    }

    [Fact]
    public void AnUnreachableServerGivesTheOfflineAdvice()
    {
        using var tmp = new TempDir();
        string cache = Path.Combine(tmp.Path, "cache");
        int port = TinyHttpServer.ClosedPort();

        var (code, stdout, stderr) = HostRunner.Run("weights", "fetch", "vgg19", "--cache", cache, "--base-url", $"http://127.0.0.1:{port}/mirror");

        Assert.Equal(HostCommands.UserError, code);
        Assert.Equal("", stdout);
        Assert.Contains($"error: cannot reach 127.0.0.1:{port}: ", stderr);
        Assert.Contains($"copy vgg19-dcbb9e9d.pth into {cache} or set MCIR_VGG19_WEIGHTS", stderr);
        Assert.False(File.Exists(Path.Combine(cache, "vgg19-dcbb9e9d.pth")));
        Assert.False(File.Exists(Path.Combine(cache, "vgg19-dcbb9e9d.pth.partial")));
    }

    [Fact]
    public void AnUnknownNameListsTheKnownOnes()
    {
        using var tmp = new TempDir();
        var (code, stdout, stderr) = HostRunner.Run("weights", "fetch", "vgg11", "--cache", tmp.Path, "--base-url", "http://127.0.0.1:9/");

        Assert.Equal(1, code);
        Assert.Contains("unknown weights 'vgg11' (known: vgg16, vgg19)", stdout + stderr);
        Assert.Empty(Directory.GetFileSystemEntries(tmp.Path));
    }

    [Fact]
    public void ABadBaseUrlIsAUserError()
    {
        using var tmp = new TempDir();
        var (code, _, stderr) = HostRunner.Run("weights", "fetch", "vgg16", "--cache", tmp.Path, "--base-url", "ftp://mirror/");

        Assert.Equal(HostCommands.UserError, code);
        Assert.Contains("error: base URL 'ftp://mirror/' is not an absolute http:// or https:// URL", stderr);
    }
}
