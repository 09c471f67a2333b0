using Mcir.Abstractions.Losses;
using Mcir.Abstractions.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mcir.Plugins.Denoising.Tests;

public class DnCnnTests
{
    [Fact]
    public void WithZeroConvolutionsTheOutputIsTheInput()
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        using var net = new DnCnn(new DnCnnOptions { Features = 8, Depth = 4 });
        using (no_grad())
        {
            foreach (var conv in net.modules().OfType<Conv2d>())
            {
                conv.weight!.zero_();
                conv.bias?.zero_();
            }
        }
        var x = rand(2, 3, 12, 10);

        foreach (bool training in new[] { true, false })
        {
            net.train(training);
            var y = net.call(x);
            Assert.Equal(x.shape, y.shape);
            Assert.True(y.allclose(x), $"residual learning: output = input - model(input) (training {training})");
        }
    }

    [Fact]
    public void ParameterCountFollowsTheArchitecture()
    {
        // conv(3→64)+bias, 15 × (conv(64→64) without bias + BN weight and bias), conv(64→3)+bias.
        long expected = (3 * 64 * 9 + 64) + 15 * (64 * 64 * 9 + 2 * 64) + (64 * 3 * 9 + 3);
        Assert.Equal(558_403, expected);
        Assert.Equal(expected, DnCnn.Descriptor.ParameterCount);
        using var light = new DnCnn(DnCnnOptions.Light);
        Assert.Equal((3 * 32 * 9 + 32) + 6 * (32 * 32 * 9 + 2 * 32) + (32 * 3 * 9 + 3), light.parameters().Sum(p => p.numel()));
    }

    [Fact]
    public void StateDictUsesKairsNumbering()
    {
        using var net = new DnCnn(new DnCnnOptions { Depth = 3 });
        var keys = net.state_dict().Keys.ToHashSet();
        Assert.Contains("model.0.weight", keys);
        Assert.Contains("model.0.bias", keys);
        Assert.Contains("model.2.weight", keys);
        Assert.DoesNotContain("model.2.bias", keys);
        Assert.Contains("model.3.running_mean", keys);
        Assert.Contains("model.5.bias", keys);
    }

    [Fact]
    public void CloneHasTheSameArchitecture()
    {
        using var net = new DnCnn(DnCnnOptions.Light);
        using var clone = ((IArchitectureCloneable)net).CloneArchitecture();
        Assert.Equal(net.state_dict().ToDictionary(p => p.Key, p => p.Value.shape), clone.state_dict().ToDictionary(p => p.Key, p => p.Value.shape));
    }

    [Fact]
    public void InvalidDepthIsNamed()
    {
        var e = Assert.Throws<ArgumentException>(() => new DnCnn(new DnCnnOptions { Depth = 1 }));
        Assert.Contains("Depth", e.Message);
    }

    [Fact]
    public void CharbonnierIsSmoothL1WithEps()
    {
        using var scope = NewDisposeScope();
        var loss = (CharbonnierLoss)CharbonnierLoss.Descriptor.CreateDefault();
        var o = tensor(new float[] { 0.5f, 0.2f, 0.9f, 0.9f });
        var y = tensor(new float[] { 0.5f, 0.4f, 0.6f, 0.9f });
        var r = loss.Compute(new LossContext(o, y, o, null));
        double eps2 = 1e-6;
        double expected = (Math.Sqrt(eps2) + Math.Sqrt(0.04 + eps2) + Math.Sqrt(0.09 + eps2) + Math.Sqrt(eps2)) / 4;
        Assert.Equal(expected, r.Value.item<float>(), 5);
        Assert.Equal(expected, r.Parts["charbonnier"], 5);
    }

    [Fact]
    public void PoissonGaussianIsSeededByTheCallersRandom()
    {
        using var scope = NewDisposeScope();
        var degradation = PoissonGaussianDegradation.Descriptor.CreateDefault();
        var clean = full(new long[] { 3, 16, 16 }, 0.5f);
        var a = degradation.Degrade(clean, new Random(4));
        var b = degradation.Degrade(clean, new Random(4));
        var c = degradation.Degrade(clean, new Random(5));
        Assert.Equal(clean.shape, a.shape);
        Assert.Equal(a.data<float>().ToArray(), b.data<float>().ToArray());
        Assert.NotEqual(a.data<float>().ToArray(), c.data<float>().ToArray());
        Assert.InRange(a.min().item<float>(), 0f, 1f);
        Assert.InRange(a.max().item<float>(), 0f, 1f);
    }
}
