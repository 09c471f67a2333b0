namespace Mcir.Core.Embeddings;

/// <summary>VGG variants with torchvision's layer layout (no batch norm).</summary>
public enum VggVariant
{
    /// <summary>torchvision <c>vgg16</c> (configuration "D"): 13 convolutions.</summary>
    Vgg16,
    /// <summary>torchvision <c>vgg19</c> (configuration "E"): 16 convolutions.</summary>
    Vgg19,
}

/// <summary>One entry of a VGG <c>features</c> Sequential, at its torchvision index.</summary>
/// <param name="Index">torchvision index in <c>features</c> (the state-dict key prefix is <c>features.{Index}.</c>).</param>
/// <param name="Name">BasicSR-style name: conv1_1, relu1_1, ..., pool1, ...</param>
/// <param name="Kind">Convolution, ReLU or max pooling.</param>
/// <param name="InChannels">Input channels (convolutions only).</param>
/// <param name="OutChannels">Output channels (convolutions only).</param>
public sealed record VggLayer(int Index, string Name, VggLayerKind Kind, int InChannels, int OutChannels);

/// <summary>Kind of a <see cref="VggLayer"/>.</summary>
public enum VggLayerKind { Conv, Relu, Pool }

/// <summary>
/// The layer tables of torchvision's VGG16/VGG19 <c>features</c>: index, BasicSR name, shape. Names follow BasicSR's
/// <c>vgg_arch.py</c> (relu1_2 = <c>features[3]</c>, relu2_2 = 8, relu3_3 = 15 for VGG16; relu5_4 = 35 for VGG19).
/// </summary>
public static class VggLayout
{
    private static readonly int[][] Blocks16 = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]];
    private static readonly int[][] Blocks19 = [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]];
    private static readonly IReadOnlyList<VggLayer> Layers16 = Build(Blocks16);
    private static readonly IReadOnlyList<VggLayer> Layers19 = Build(Blocks19);

    /// <summary>All entries of <c>features</c> for <paramref name="variant"/>, in index order.</summary>
    public static IReadOnlyList<VggLayer> Layers(VggVariant variant) => variant == VggVariant.Vgg16 ? Layers16 : Layers19;

    /// <summary>The torchvision feature index of a named layer; throws with the valid names when unknown.</summary>
    public static int IndexOf(VggVariant variant, string name)
    {
        foreach (var l in Layers(variant))
            if (string.Equals(l.Name, name, StringComparison.OrdinalIgnoreCase)) return l.Index;
        throw new ArgumentException(
            $"Unknown {VariantName(variant)} layer '{name}'. Valid names: {string.Join(", ", Layers(variant).Select(l => l.Name))}.",
            nameof(name));
    }

    /// <summary>"vgg16" or "vgg19".</summary>
    public static string VariantName(VggVariant variant) => variant == VggVariant.Vgg16 ? "vgg16" : "vgg19";

    /// <summary>Parses "vgg16"/"vgg19" (case-insensitive).</summary>
    public static VggVariant ParseVariant(string name) => name.Trim().ToLowerInvariant() switch
    {
        "vgg16" => VggVariant.Vgg16,
        "vgg19" => VggVariant.Vgg19,
        _ => throw new ArgumentException($"Unknown VGG variant '{name}' (expected vgg16 or vgg19).", nameof(name)),
    };

    /// <summary>torchvision's checkpoint file name for the ImageNet weights of <paramref name="variant"/>.</summary>
    public static string TorchvisionFileName(VggVariant variant) =>
        variant == VggVariant.Vgg16 ? "vgg16-397923af.pth" : "vgg19-dcbb9e9d.pth";

    /// <summary>torchvision's download URL for <see cref="TorchvisionFileName"/>.</summary>
    public static string TorchvisionUrl(VggVariant variant) => "https://download.pytorch.org/models/" + TorchvisionFileName(variant);

    /// <summary>State-dict keys and shapes of the convolutions with index ≤ <paramref name="lastIndex"/>.</summary>
    public static IReadOnlyList<(string Key, long[] Shape)> ExpectedKeys(VggVariant variant, int lastIndex)
    {
        var keys = new List<(string, long[])>();
        foreach (var l in Layers(variant))
        {
            if (l.Index > lastIndex) break;
            if (l.Kind != VggLayerKind.Conv) continue;
            keys.Add(($"features.{l.Index}.weight", [l.OutChannels, l.InChannels, 3, 3]));
            keys.Add(($"features.{l.Index}.bias", [l.OutChannels]));
        }
        return keys;
    }

    private static IReadOnlyList<VggLayer> Build(int[][] blocks)
    {
        var list = new List<VggLayer>();
        int index = 0, inCh = 3;
        for (int b = 0; b < blocks.Length; b++)
        {
            for (int c = 0; c < blocks[b].Length; c++)
            {
                int outCh = blocks[b][c];
                list.Add(new VggLayer(index++, $"conv{b + 1}_{c + 1}", VggLayerKind.Conv, inCh, outCh));
                list.Add(new VggLayer(index++, $"relu{b + 1}_{c + 1}", VggLayerKind.Relu, outCh, outCh));
                inCh = outCh;
            }
            list.Add(new VggLayer(index++, $"pool{b + 1}", VggLayerKind.Pool, inCh, inCh));
        }
        return list;
    }
}
