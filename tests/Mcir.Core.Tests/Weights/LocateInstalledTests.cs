using Mcir.Core.Weights;

namespace Mcir.Core.Tests.Weights;

public class LocateInstalledTests
{
    [Fact]
    public void EnvironmentVariableWinsAndMustNameAnExistingFile()
    {
        string file = Path.GetTempFileName();
        try
        {
            var env = new Dictionary<string, string?> { ["MCIR_VGG16_WEIGHTS"] = file, ["MCIR_WEIGHTS_CACHE"] = "/nonexistent" };
            Assert.Equal(file, WeightsLocations.LocateInstalled(KnownWeights.Vgg16, k => env.GetValueOrDefault(k)));
        }
        finally { File.Delete(file); }

        var missing = new Dictionary<string, string?> { ["MCIR_VGG16_WEIGHTS"] = "/nonexistent/vgg16.pth" };
        var e = Assert.Throws<McirException>(() => WeightsLocations.LocateInstalled(KnownWeights.Vgg16, k => missing.GetValueOrDefault(k)));
        Assert.Contains("MCIR_VGG16_WEIGHTS=/nonexistent/vgg16.pth", e.Message);
        Assert.Contains("vgg16-397923af.pth", e.Message);
    }

    [Fact]
    public void CacheFolderCopyIsFoundAndAbsenceIsNull()
    {
        string cache = Path.Combine(Path.GetTempPath(), "mcir-cache-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(cache);
        try
        {
            var env = new Dictionary<string, string?> { ["MCIR_WEIGHTS_CACHE"] = cache };
            Assert.Null(WeightsLocations.LocateInstalled(KnownWeights.Vgg19, k => env.GetValueOrDefault(k)));
            string copy = Path.Combine(cache, "vgg19-dcbb9e9d.pth");
            File.WriteAllText(copy, "x");
            Assert.Equal(copy, WeightsLocations.LocateInstalled(KnownWeights.Vgg19, k => env.GetValueOrDefault(k)));
            Assert.Null(WeightsLocations.LocateInstalled(KnownWeights.Vgg16, k => env.GetValueOrDefault(k)));
        }
        finally { Directory.Delete(cache, true); }
    }
}
