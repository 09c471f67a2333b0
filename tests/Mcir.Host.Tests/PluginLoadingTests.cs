using Mcir.Abstractions;
using Mcir.Abstractions.Models;
using Mcir.Core;
using Mcir.Host.Plugins;

namespace Mcir.Host.Tests;

public class PluginLoadingTests
{
    [Fact]
    public void MissingPluginFileIsNamed()
    {
        var (code, _, stderr) = HostRunner.Run("list", "--plugins", "/nonexistent/Foo.dll");
        Assert.Equal(HostCommands.UserError, code);
        Assert.Contains("/nonexistent/Foo.dll: plugin file not found", stderr);
    }

    [Fact]
    public void FileThatIsNotAnAssemblyIsNamed()
    {
        using var tmp = new TempDir();
        string fake = Path.Combine(tmp.Path, "Fake.dll");
        File.WriteAllText(fake, "MZ but not really");
        var (code, _, stderr) = HostRunner.Run("list", "--plugins", fake);
        Assert.Equal(HostCommands.UserError, code);
        Assert.Contains($"{fake}: not a .NET assembly", stderr);
    }

    [Fact]
    public void AssemblyWithoutThePluginMarkerIsRefused()
    {
        string notPlugin = Path.Combine(AppContext.BaseDirectory, "Mcir.Core.dll");
        var (code, _, stderr) = HostRunner.Run("list", "--plugins", notPlugin);
        Assert.Equal(HostCommands.UserError, code);
        Assert.Contains($"{notPlugin}: not an Mcir plugin", stderr);
    }

    [Fact]
    public void PluginBuiltAgainstAnotherContractIsRefused()
    {
        var marker = new McirPluginAttribute(typeof(object)) { ContractMajor = ContractVersion.Major + 1 };
        var e = Assert.Throws<McirException>(() => PluginLoader.CheckContract(marker, "Old.dll"));
        Assert.Contains("Old.dll", e.Message);
        Assert.Contains($"contract v{ContractVersion.Major + 1}", e.Message);
        Assert.Contains($"provides v{ContractVersion.Major}", e.Message);
        PluginLoader.CheckContract(new McirPluginAttribute(typeof(object)) { ContractMajor = ContractVersion.Major }, "Ok.dll");
    }

    [Fact]
    public void MissingPluginFolderIsNamed()
    {
        var (code, _, stderr) = HostRunner.Run("list", "--plugin-dir", "/nonexistent/plugins");
        Assert.Equal(HostCommands.UserError, code);
        Assert.Contains("/nonexistent/plugins: folder not found", stderr);
    }

    private static string BundledPlugin => Path.Combine(AppContext.BaseDirectory, "plugins", "Mcir.Plugins.SuperResolution", "Mcir.Plugins.SuperResolution.dll");

    [Fact]
    public void ListShowsTheModelsOfTheBundledPlugin()
    {
        var (code, stdout, stderr) = HostRunner.Run("list");
        Assert.True(code == 0, stderr);
        Assert.Contains("Mcir.Plugins.SuperResolution", stdout);
        Assert.Contains("  edsr  [sr]", stdout);
        Assert.Contains("43,089,923 parameters", stdout); // EDSR 256 features, 32 blocks, x4 (the paper's full model)
        Assert.Contains("  edsr-light  [sr]", stdout);
        Assert.Contains("1,517,571 parameters", stdout); // EDSR 64 features, 16 blocks, x4 (BasicSR's EDSR_Mx4)
        Assert.Contains("loss terms:       l1, spn, cr", stdout);
        Assert.Contains("negative sources: ema, fixed-random, fixed-pretrained", stdout);
    }

    [Fact]
    public void ExplicitPluginListIsLoaded()
    {
        var (code, stdout, stderr) = HostRunner.Run("list", "--plugins", BundledPlugin);
        Assert.True(code == 0, stderr);
        Assert.Contains("  edsr  [sr]", stdout);
    }

    [Fact]
    public void TwoPluginsRegisteringOneNameAreNamed()
    {
        using var tmp = new TempDir();
        string source = Path.GetDirectoryName(BundledPlugin)!;
        var copies = new List<string>();
        foreach (var name in new[] { "a", "b" })
        {
            string dir = tmp.Sub(name);
            foreach (var f in Directory.GetFiles(source)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
            copies.Add(Path.Combine(dir, Path.GetFileName(BundledPlugin)));
        }
        var (code, _, stderr) = HostRunner.Run("list", "--plugins", copies[0], copies[1]);
        Assert.Equal(HostCommands.UserError, code);
        Assert.Contains("model 'edsr' is registered twice: by the plugin ", stderr);
        Assert.Contains(copies[0], stderr);
        Assert.Contains(copies[1], stderr);
    }
}
