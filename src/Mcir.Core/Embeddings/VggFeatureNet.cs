using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mcir.Core.Embeddings;

/// <summary>
/// torchvision's VGG <c>features</c> Sequential (same indices, so state-dict keys are <c>features.0.weight</c> …),
/// truncated after index <c>lastIndex</c>. Convolutions 3×3/pad 1, ReLU (not in place), MaxPool2d(2, 2).
/// </summary>
public sealed class VggFeatureNet : nn.Module
{
    private readonly Sequential features;
    private readonly List<nn.Module<Tensor, Tensor>> _layers = [];

    /// <summary>Builds entries 0..<paramref name="lastIndex"/> of <paramref name="variant"/>'s features (all of them for int.MaxValue).</summary>
    public VggFeatureNet(VggVariant variant, int lastIndex) : base(VggLayout.VariantName(variant) + "_features")
    {
        Variant = variant;
        var entries = new List<(string, nn.Module<Tensor, Tensor>)>();
        foreach (var l in VggLayout.Layers(variant))
        {
            if (l.Index > lastIndex) break;
            nn.Module<Tensor, Tensor> m = l.Kind switch
            {
                VggLayerKind.Conv => nn.Conv2d(l.InChannels, l.OutChannels, 3, padding: 1),
                VggLayerKind.Relu => nn.ReLU(),
                _ => nn.MaxPool2d(2, 2),
            };
            entries.Add((l.Index.ToString(System.Globalization.CultureInfo.InvariantCulture), m));
            _layers.Add(m);
        }
        LastIndex = _layers.Count - 1;
        features = nn.Sequential(entries);
        register_module("features", features);
    }

    /// <summary>The variant built.</summary>
    public VggVariant Variant { get; }

    /// <summary>Index of the last entry built.</summary>
    public int LastIndex { get; }

    /// <summary>
    /// Runs entries 0..max(<paramref name="indices"/>) and returns the outputs at <paramref name="indices"/>, in that order.
    /// A convolution followed by its ReLU (the convolution's own output not requested) runs as one oneDNN kernel when
    /// no gradient is needed (<see cref="Compute.FusedConvolution"/>; the negatives' features), else as the convolution
    /// and an in-place ReLU (torchvision's <c>ReLU(inplace=True)</c>: autograd keeps the ReLU's output, not the
    /// convolution's). The values are those of running every entry in turn.
    /// </summary>
    public Tensor[] Run(Tensor x, IReadOnlyList<int> indices)
    {
        int last = indices.Max();
        if (last > LastIndex) throw new ArgumentOutOfRangeException(nameof(indices), $"feature index {last} > {LastIndex} (network truncated)");
        var outputs = new Tensor[indices.Count];
        Tensor h = x;
        for (int i = 0; i <= last; i++)
        {
            if (_layers[i] is Conv2d conv && i < last && _layers[i + 1] is ReLU && !indices.Contains(i))
            {
                h = Compute.FusedConvolution.CanFuse(h, conv.weight!, conv.bias)
                    ? Compute.FusedConvolution.Conv2dRelu(h, conv.weight!, conv.bias, padding: 1)
                    : conv.call(h).relu_();
                i++;
            }
            else h = _layers[i].call(h);
            for (int k = 0; k < indices.Count; k++)
                if (indices[k] == i) outputs[k] = h;
        }
        return outputs;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) features.Dispose();
        base.Dispose(disposing);
    }
}
