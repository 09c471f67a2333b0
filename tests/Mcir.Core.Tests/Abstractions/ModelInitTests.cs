using Mcir.Abstractions.Models;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Abstractions;

public class ModelInitTests
{
    [Fact]
    public void TruncNormal_SamplesTheNormalInsideWideBounds()
    {
        using var scope = NewDisposeScope();
        manual_seed(3);
        var t = empty(200_000);
        ModelInit.TruncNormal_(t, std: 0.02); // bounds ±2 (absolute) are 100 σ: no truncation in effect
        double mean = t.mean().item<float>(), std = t.std().item<float>();
        Assert.True(Math.Abs(mean) < 5 * 0.02 / Math.Sqrt(t.numel()), $"mean {mean:E3}");
        Assert.InRange(std, 0.02 * 0.99, 0.02 * 1.01); // sampling error of the std ≈ 0.16 % here
        Assert.True(t.unique().output.numel() > 100_000, "values are drawn, not filled"); // TorchSharp 0.107's own fills std
    }

    [Fact]
    public void TruncNormal_RespectsAbsoluteBoundsWithTheTruncatedStd()
    {
        using var scope = NewDisposeScope();
        manual_seed(4);
        var t = empty(200_000);
        ModelInit.TruncNormal_(t, mean: 0, std: 0.02, a: -0.01, b: 0.01); // ±0.5 σ
        Assert.True(t.min().item<float>() >= -0.01f && t.max().item<float>() <= 0.01f);
        // Var of N(0, σ²) truncated to ±kσ: σ²·(1 − 2kφ(k)/(2Φ(k) − 1)); k = 0.5 → std = 0.28385 σ.
        double expected = 0.02 * Math.Sqrt(1 - 2 * 0.5 * 0.3520653 / (2 * 0.6914625 - 1));
        Assert.InRange(t.std().item<float>(), expected * 0.98, expected * 1.02);
    }
}
