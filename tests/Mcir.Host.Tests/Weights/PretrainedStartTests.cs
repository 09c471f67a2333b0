namespace Mcir.Host.Tests.Weights;

/// <summary>BasicSR's path.pretrain_network_g / param_key_g / strict_load_g: a run starting from other weights.</summary>
public class PretrainedStartTests
{
    [Fact]
    public void EdsrX3StartsFromTheX2Model_OnlyNonStrictly_WithTheUpsamplerReported()
    {
        using var tmp = new TempDir();
        string x2Config = TinyRun.Write(tmp, "x2");
        var (code, _, stderr) = HostRunner.Run(["run", "--config", x2Config, "--set", "loss.spn=null", "train.total_iter=2"]);
        Assert.True(code == 0, stderr);
        string x2 = Path.Combine(tmp.Path, "x2.pth");
        (code, _, stderr) = HostRunner.Run(["export", "--weights", Path.Combine(tmp.Path, "runs", "x2"), "--output", x2]);
        Assert.True(code == 0, stderr);

        // The same tiny run at x3 (EDSR's upsampler has another shape at x3; every other key matches).
        string x3Config = Path.Combine(tmp.Path, "x3.json");
        File.WriteAllText(x3Config, File.ReadAllText(x2Config).Replace("\"upscale\": 2", "\"upscale\": 3").Replace("\"scale\": 2", "\"scale\": 3")
            .Replace("\"gt_size\": 32", "\"gt_size\": 30").Replace("\"name\": \"x2\"", "\"name\": \"x3\""));
        string[] common = ["run", "--config", x3Config, "--set", "loss.spn=null", "train.total_iter=1", $"path.pretrain_network_g={x2}"];

        (code, _, stderr) = HostRunner.Run(common);
        Assert.Equal(1, code);
        Assert.Contains("shape mismatches (2)", stderr);
        Assert.Contains("upsample.0.weight: file [32, 8, 3, 3], model [72, 8, 3, 3]", stderr);
        Assert.Contains("path.strict_load_g: false", stderr);

        var (code2, stdout2, stderr2) = HostRunner.Run([.. common, "path.strict_load_g=false", "path.param_key_g=params"]);
        string log = stdout2 + stderr2;
        Assert.True(code2 == 0, log);
        Assert.Contains($"pretrained weights {x2} ('params', non-strict): 10 keys loaded", log); // 12 keys, all but the upsampler
        Assert.Contains("shape mismatches (2, not loaded): upsample.0.weight: file [32, 8, 3, 3], model [72, 8, 3, 3], upsample.0.bias: file [32], model [72]", log);
        Assert.Contains("\"pretrain_network_g\"", File.ReadAllText(Path.Combine(tmp.Path, "runs", "x3", "config.resolved.json")));
    }
}
