using Mcir.Abstractions.Losses;
using Mcir.Core.IO;
using static Mcir.Tests.Shared.ArchAsserts;
using static TorchSharp.torch;

namespace Mcir.Plugins.Deraining.Tests;

public sealed class SsimLossTests
{
    [Fact]
    public void ValueAndGradientAreIdtsNegativeSsimLoss()
    {
        // expected.json: -SSIM()(out, gt) with IDT's loss/SSIM.py (train_derain.py's loss); ssim_grad_out.npy its gradient.
        using var scope = NewDisposeScope();
        var expected = IdtFixture.Expected();
        var output = Npy.Load(IdtFixture.ReferencePath("ssim_out.npy")).requires_grad_(true);
        var target = Npy.Load(IdtFixture.ReferencePath("ssim_gt.npy"));
        var loss = new SsimLoss(new SsimLossOptions());
        var result = loss.Compute(new LossContext(output, target, target, null));
        double negSsim = expected.GetProperty("neg_ssim_float32").GetDouble();
        // 1 - SSIM = 1 + (-SSIM); float32 means of 7680 map values: agreement to about 1e-7.
        Assert.True(Math.Abs(result.Value.item<float>() - (1 + negSsim)) <= 1e-6, $"{result.Value.item<float>()} vs {1 + negSsim}");
        Assert.Equal(result.Value.item<float>(), result.Parts["ssim"]);
        result.Value.backward();
        var grad = Npy.Load(IdtFixture.ReferencePath("ssim_grad_out.npy"));
        double scale = grad.abs().max().item<float>();
        double diff = MaxAbsDiff(output.grad!, grad);
        // Gradients of the mean over 7680 elements (|g| ~ 1e-4): float32 rounding of the conv sums, relative 1e-4.
        Assert.True(diff <= 1e-4 * scale, $"max |grad - reference| = {diff:E3} (max |grad| {scale:E3})");
    }

    [Fact]
    public void WeightScalesAndIdenticalImagesGiveZero()
    {
        using var scope = NewDisposeScope();
        var output = Npy.Load(IdtFixture.ReferencePath("ssim_out.npy"));
        var target = Npy.Load(IdtFixture.ReferencePath("ssim_gt.npy"));
        float one = new SsimLoss(new SsimLossOptions()).Compute(new LossContext(output, target, target, null)).Value.item<float>();
        float three = new SsimLoss(new SsimLossOptions { Weight = 3 }).Compute(new LossContext(output, target, target, null)).Value.item<float>();
        Assert.Equal(3 * one, three, 1e-6);
        float same = new SsimLoss(new SsimLossOptions()).Compute(new LossContext(target, target, target, null)).Value.item<float>();
        Assert.InRange(same, -1e-6, 1e-6);
    }

    [Fact]
    public void GaussianWindowIsIdts()
    {
        var g = SsimLoss.Gaussian(11);
        Assert.Equal(1.0, g.Sum(), 1e-6);
        Assert.Equal(g[0], g[10]);
        // exp(-(x - 5)^2 / (2 * 1.5^2)), normalised: the ratio of the edge to the centre is exp(-25 / 4.5).
        Assert.Equal(Math.Exp(-25 / 4.5), g[0] / (double)g[5], 1e-6);
        Assert.True(g[5] > g[4] && g[4] > g[3]);
    }

    [Fact]
    public void InvalidOptionsAndShapesAreClearErrors()
    {
        Assert.Contains("window_size must be a positive odd number, got 10", Assert.Throws<ArgumentException>(() => new SsimLoss(new SsimLossOptions { WindowSize = 10 })).Message);
        Assert.Contains("weight must be a finite number", Assert.Throws<ArgumentException>(() => new SsimLoss(new SsimLossOptions { Weight = double.NaN })).Message);
        using var scope = NewDisposeScope();
        var e = Assert.Throws<ArgumentException>(() => new SsimLoss(new SsimLossOptions()).Compute(new LossContext(rand(1, 3, 8, 8), rand(1, 3, 8, 9), rand(1, 3, 8, 9), null)));
        Assert.Contains("differ in shape", e.Message);
        Assert.Equal("ssim", SsimLoss.Descriptor.Name);
    }
}
