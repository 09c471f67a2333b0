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
    /// A convolution followed by its ReLU (the convolution's own output not requested) runs as one kernel when no
    /// gradient is needed (the negatives' features): Winograd F(4×4, 3×3) where it applies and <c>MCIR_WINOGRAD</c>'s rule
    /// takes it (<see cref="Compute.WinogradConvolution"/>; values equal up to float32 rounding), else oneDNN's direct
    /// kernel with the ReLU fused (<see cref="Compute.FusedConvolution"/>); with a gradient, as the convolution and an
    /// in-place ReLU (torchvision's <c>ReLU(inplace=True)</c>: autograd keeps the ReLU's output, not the
    /// convolution's), or — when only the input needs a gradient (the network frozen: the restored image's pass) and
    /// the rule takes the layer — by Winograd with its own backward for the input
    /// (<see cref="Compute.WinogradConvolution.Conv2dRelu(Tensor, Tensor, Tensor, Tensor?)"/>). The values are those of running every entry in
    /// turn, up to float32 rounding where Winograd runs.
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
                h = ConvRelu(i, conv, h);
                i++;
            }
            else h = _layers[i].call(h);
            for (int k = 0; k < indices.Count; k++)
                if (indices[k] == i) outputs[k] = h;
        }
        return outputs;
    }

    // A convolution + ReLU. Without a gradient: Winograd where it applies and is chosen for this shape, else the direct
    // fused kernel, else the two ATen operations. With a gradient for the input only (the restored image's pass; the
    // network is frozen): Winograd with its own backward where it applies and is chosen, else the two ATen operations.
    private Tensor ConvRelu(int index, Conv2d conv, Tensor h)
    {
        var weight = conv.weight!;
        string mode = WinogradMode ?? Compute.WinogradConvolution.Mode;
        // Direct: the fused kernel where it applies (never with a gradient), else the two ATen operations.
        Tensor Direct(Tensor x) => Compute.FusedConvolution.CanFuse(x, weight, conv.bias)
            ? Compute.FusedConvolution.Conv2dRelu(x, weight, conv.bias, padding: 1)
            : conv.call(x).relu_();
        Tensor Winograd(Tensor x) => Compute.WinogradConvolution.Conv2d(x, Transformed(index).Weight(weight), conv.bias, relu: true);
        if (Compute.WinogradConvolution.AppliesWithInputGradient(h, weight, conv.bias))
        {
            // benchmark mode measures the forward passes without gradient (a proxy for forward + backward: both are
            // 3×3 convolutions of the same work, and the rule treats them alike).
            bool winograd;
            using (torch.no_grad())
            using (var x = h.detach())
                winograd = Compute.WinogradConvolution.Choose(mode, x, weight.shape[0], () => Direct(x), () => Winograd(x));
            if (!winograd) return Direct(h);
            var (forward, inputGradient) = Transformed(index).WithInputGradient(weight);
            return Compute.WinogradConvolution.Conv2dRelu(h, forward, inputGradient, conv.bias);
        }
        if (!Compute.WinogradConvolution.Applies(h, weight, conv.bias)) return Direct(h);
        return Compute.WinogradConvolution.Choose(mode, h, weight.shape[0], () => Direct(h), () => Winograd(h)) ? Winograd(h) : Direct(h);
    }

    // The Winograd transforms of layer index's weight, recomputed only when its values change.
    private Compute.WinogradWeightCache Transformed(int index)
    {
        if (!_winogradWeights.TryGetValue(index, out var cached)) _winogradWeights[index] = cached = new Compute.WinogradWeightCache();
        return cached;
    }

    private readonly Dictionary<int, Compute.WinogradWeightCache> _winogradWeights = [];

    /// <summary>Overrides <c>MCIR_WINOGRAD</c> for this network ("auto", "benchmark", "on", "off"; null: the variable's value). Tests.</summary>
    internal string? WinogradMode { get; set; }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            features.Dispose();
            foreach (var t in _winogradWeights.Values) t.Dispose();
            _winogradWeights.Clear();
        }
        base.Dispose(disposing);
    }
}
