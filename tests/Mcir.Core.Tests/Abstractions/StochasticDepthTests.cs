using Mcir.Abstractions.Models;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Abstractions;

public class StochasticDepthTests
{
    [Fact]
    public void DropPath_IsIdentityInEvalOrAtZero()
    {
        using var scope = NewDisposeScope();
        var x = rand(4, 3, 2);
        Assert.Same(x, StochasticDepth.DropPath(x, 0.5, training: false));
        Assert.Same(x, StochasticDepth.DropPath(x, 0.0, training: true));
    }

    [Fact]
    public void DropPath_ZeroesWholeSamplesAndScalesTheRest()
    {
        using var scope = NewDisposeScope();
        manual_seed(11);
        var x = ones(4000, 3, 2);
        var y = StochasticDepth.DropPath(x, 0.25, training: true);
        var perSample = y.view(4000, -1);
        var first = perSample[.., 0].unsqueeze(1);
        Assert.True((perSample == first).all().item<bool>(), "a sample is dropped or kept as a whole");
        Assert.True(((first == 0) | ((first - 1 / 0.75).abs() < 1e-6)).all().item<bool>(), "kept samples are scaled by 1/keep");
        double kept = (first != 0).to(ScalarType.Float64).mean().item<double>();
        Assert.InRange(kept, 0.75 - 0.03, 0.75 + 0.03); // binomial sd ≈ 0.007
    }
}
