using Mcir.Abstractions.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.ModelContrast.TestNetworks;

/// <summary>
/// Test-only EDSR with BasicSR's module tree and parameter names (conv_first, body.N.conv1/conv2,
/// conv_after_body, upsample.0, conv_last) and BasicSR's forward: (x − mean)·img_range → conv_first →
/// body + conv_after_body (+ skip) → upsample (conv + PixelShuffle) → conv_last → /img_range + mean.
/// <see cref="OnClone"/> lets a test replace the fresh random initialisation of a clone (for example with the
/// reference PyTorch <c>theta_rand</c>).
/// </summary>
public sealed class NegativeBankTestEdsr : nn.Module<Tensor, Tensor>, IArchitectureCloneable
{
    private static readonly float[] RgbMean = [0.4488f, 0.4371f, 0.4040f];
    private const float ImgRange = 255f;

    private readonly Conv2d conv_first;
    private readonly Sequential body;
    private readonly Conv2d conv_after_body;
    private readonly Sequential upsample;
    private readonly Conv2d conv_last;

    public NegativeBankTestEdsr(int numFeat = 8, int numBlock = 1, int upscale = 2) : base("EDSR")
    {
        NumFeat = numFeat;
        NumBlock = numBlock;
        Upscale = upscale;
        conv_first = nn.Conv2d(3, numFeat, 3, padding: 1);
        body = nn.Sequential(Enumerable.Range(0, numBlock).Select(_ => (nn.Module<Tensor, Tensor>)new ResidualBlockNoBN(numFeat)).ToArray());
        conv_after_body = nn.Conv2d(numFeat, numFeat, 3, padding: 1);
        var up = new List<nn.Module<Tensor, Tensor>>();
        if ((upscale & (upscale - 1)) == 0)
        {
            for (int s = upscale; s > 1; s /= 2)
            {
                up.Add(nn.Conv2d(numFeat, 4 * numFeat, 3, padding: 1));
                up.Add(nn.PixelShuffle(2));
            }
        }
        else if (upscale == 3)
        {
            up.Add(nn.Conv2d(numFeat, 9 * numFeat, 3, padding: 1));
            up.Add(nn.PixelShuffle(3));
        }
        else throw new ArgumentException($"upscale {upscale} is not supported");
        upsample = nn.Sequential(up.ToArray());
        conv_last = nn.Conv2d(numFeat, 3, 3, padding: 1);
        RegisterComponents();
    }

    public int NumFeat { get; }
    public int NumBlock { get; }
    public int Upscale { get; }

    /// <summary>Test hook applied to every clone after its random initialisation.</summary>
    public Action<NegativeBankTestEdsr>? OnClone { get; set; }

    public nn.Module<Tensor, Tensor> CloneArchitecture()
    {
        var clone = new NegativeBankTestEdsr(NumFeat, NumBlock, Upscale) { OnClone = OnClone };
        OnClone?.Invoke(clone);
        return clone;
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var mean = tensor(RgbMean, dtype: x.dtype, device: x.device).view(1, 3, 1, 1);
        var h = conv_first.call((x - mean) * ImgRange);
        var res = conv_after_body.call(body.call(h)) + h;
        var y = conv_last.call(upsample.call(res)) / ImgRange + mean;
        return y.MoveToOuterDisposeScope();
    }

    private sealed class ResidualBlockNoBN : nn.Module<Tensor, Tensor>
    {
        private readonly Conv2d conv1;
        private readonly Conv2d conv2;

        public ResidualBlockNoBN(int numFeat) : base("ResidualBlockNoBN")
        {
            conv1 = nn.Conv2d(numFeat, numFeat, 3, padding: 1);
            conv2 = nn.Conv2d(numFeat, numFeat, 3, padding: 1);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            return (x + conv2.call(nn.functional.relu(conv1.call(x)))).MoveToOuterDisposeScope();
        }
    }
}
