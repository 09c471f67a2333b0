using Mcir.Abstractions.Losses;
using static TorchSharp.torch;

namespace Mcir.Plugins.Deblurring.Tests;

public sealed class PsnrLossTests
{
    [Fact]
    public void ValueIsMinusTheMeanPsnrByHand()
    {
        using var scope = NewDisposeScope();
        var loss = (PsnrLoss)PsnrLoss.Descriptor.CreateDefault();
        // Two 1x1x2 images: image 0 errors 0.1, 0.3 (mse 0.05); image 1 errors 0, 0.2 (mse 0.02).
        var o = tensor(new float[] { 0.5f, 0.2f, 0.9f, 0.6f }).view(2, 1, 1, 2);
        var y = tensor(new float[] { 0.4f, 0.5f, 0.9f, 0.4f }).view(2, 1, 1, 2);
        var r = loss.Compute(new LossContext(o, y, o, null));
        double scale = 10 / Math.Log(10);
        double expected = scale * (Math.Log(0.05 + 1e-8) + Math.Log(0.02 + 1e-8)) / 2;   // ≈ -14.9485
        Assert.Equal(expected, r.Value.item<float>(), 4);
        Assert.Equal(expected, r.Parts["psnr-loss"], 4);
        Assert.Equal("psnr-loss", loss.Name);
        Assert.False(loss.NeedsNegatives);
    }

    [Fact]
    public void WeightAndLumaFollowNafnet()
    {
        using var scope = NewDisposeScope();
        // One 3x1x1 image, target 0: Y difference = (65.481·0.1 + 128.553·0.2 + 24.966·0.3)/255.
        var o = tensor(new float[] { 0.1f, 0.2f, 0.3f }).view(1, 3, 1, 1);
        var y = zeros(1, 3, 1, 1);
        var loss = (PsnrLoss)PsnrLoss.Descriptor.Create(new PsnrLossOptions { LossWeight = 0.5, ToY = true });
        double dy = (65.481 * 0.1 + 128.553 * 0.2 + 24.966 * 0.3) / 255;
        double expected = 0.5 * 10 / Math.Log(10) * Math.Log(dy * dy + 1e-8);
        Assert.Equal(expected, loss.Compute(new LossContext(o, y, o, null)).Value.item<float>(), 4);
    }

    [Fact]
    public void GradientFlowsToTheOutputOnly()
    {
        using var scope = NewDisposeScope();
        var o = rand(2, 3, 4, 4).requires_grad_(true);
        var y = rand(2, 3, 4, 4).requires_grad_(true);
        var r = new PsnrLoss(new PsnrLossOptions()).Compute(new LossContext(o, y, o, null));
        r.Value.backward();
        Assert.NotNull(o.grad);
        Assert.Null(y.grad);
    }

    [Fact]
    public void BadInputsAreClearErrors()
    {
        Assert.Contains("loss_weight", Assert.Throws<ArgumentException>(() => new PsnrLoss(new PsnrLossOptions { LossWeight = double.NaN })).Message);
        using var scope = NewDisposeScope();
        var loss = new PsnrLoss(new PsnrLossOptions());
        Assert.Contains("differ in shape", Assert.Throws<ArgumentException>(() => loss.Compute(new LossContext(rand(1, 3, 4, 4), rand(1, 3, 4, 5), rand(1, 3, 4, 4), null))).Message);
        var luma = new PsnrLoss(new PsnrLossOptions { ToY = true });
        Assert.Contains("3-channel", Assert.Throws<ArgumentException>(() => luma.Compute(new LossContext(rand(1, 1, 4, 4), rand(1, 1, 4, 4), rand(1, 1, 4, 4), null))).Message);
    }
}
