using System.Security.Cryptography;
using Mcir.Core.Data;

namespace Mcir.Host.Tests;

public class DegradeCommandTests
{
    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void ReproducesTheFixtureLrImagesAndLeavesTheInputAlone(int scale)
    {
        using var tmp = new TempDir();
        string input = tmp.Sub("hr"), output = Path.Combine(tmp.Path, "lr");
        string[] crops = ["LadyBird_tl252", "Garden_c201x255", "TwoWings_c201x255"];
        foreach (var crop in crops)
            File.Copy(Fixtures.Metrics($"hr_{crop}.png"), Path.Combine(input, crop + ".png"));
        var before = Hashes(input);

        var (code, stdout, stderr) = HostRunner.Run("degrade", "bicubic", "--scale", scale.ToString(), "--input", input, "--output", output);

        Assert.True(code == 0, stderr);
        Assert.Contains($"{crops.Length} images written", stdout);
        Assert.Equal(before, Hashes(input));
        foreach (var crop in crops)
        {
            var expected = ImageIO.Read(Fixtures.Metrics($"lr_{crop}_x{scale}.png"));
            var actual = ImageIO.Read(Path.Combine(output, crop + ".png"));
            Assert.Equal((expected.Height, expected.Width), (actual.Height, actual.Width));
            Assert.Equal(expected.Pixels, actual.Pixels);
        }
    }

    [Fact]
    public void RefusesToWriteIntoTheInputFolder()
    {
        using var tmp = new TempDir();
        string input = tmp.Sub("hr");
        File.Copy(Fixtures.Metrics("hr_Garden_tl252.png"), Path.Combine(input, "a.png"));
        var before = Hashes(input);

        foreach (var output in new[] { input, input + "/", Path.Combine(input, ".") })
        {
            var (code, _, stderr) = HostRunner.Run("degrade", "bicubic", "--scale", "2", "--input", input, "--output", output);
            Assert.Equal(HostCommands.UserError, code);
            Assert.Contains("input folder", stderr);
        }
        Assert.Equal(before, Hashes(input));
    }

    [Fact]
    public void MissingInputFolderIsNamed()
    {
        using var tmp = new TempDir();
        string missing = Path.Combine(tmp.Path, "nope");
        var (code, _, stderr) = HostRunner.Run("degrade", "bicubic", "--scale", "2", "--input", missing, "--output", tmp.Sub("out"));
        Assert.Equal(HostCommands.UserError, code);
        Assert.Contains(missing, stderr);
    }

    private static Dictionary<string, string> Hashes(string dir) =>
        Directory.GetFiles(dir).ToDictionary(f => Path.GetFileName(f), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));
}
