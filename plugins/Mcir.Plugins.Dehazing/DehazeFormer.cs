using Mcir.Abstractions.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mcir.Plugins.Dehazing;

/// <summary>
/// DehazeFormer (Song et al., "Vision Transformers for Single Image Dehazing", IEEE TIP 2023), a port of
/// IDKiro/DehazeFormer <c>models/dehazeformer.py</c> (@ 5af7c34) with the same module tree, so the released checkpoints
/// load by name: <c>patch_embed.proj</c>, <c>layer{1..5}.blocks.{i}.{norm1.{weight, bias, meta1, meta2},
/// attn.{conv, V, proj, QK, attn.{relative_positions, meta.{0,2}}}, mlp.mlp.{0,2}}</c>, <c>patch_merge{1,2}.proj</c>,
/// <c>skip{1,2}</c>, <c>patch_split{1,2}.proj.0</c>, <c>fusion{1,2}.mlp.{0,2}</c>, <c>patch_unembed.proj.0</c>.
/// </summary>
/// <remarks>
/// <para>Forward of the network, as the original: the input [N, 3, H, W] is reflect-padded at the bottom/right to a
/// multiple of 4 (<c>check_image_size</c>); a U-shaped body (stages at full, ½, ¼, ½, full resolution, joined by
/// SK-fusion skips) gives 4 channels, split into K (1) and B (3); the result is <c>K·x − B + x</c> cropped to H×W.
/// Inside each attention block the map is reflect-padded to window multiples (shifted blocks pad
/// <c>window_size // 2</c> on the top/left) and cropped back. Any H, W works as long as the ¼-resolution map is large
/// enough for that reflect padding (every side ≥ 4·window_size, i.e. 32 for the presets, is always enough; smaller
/// inputs that do not fit are an <see cref="ArgumentException"/>).</para>
/// <para><b>Value range.</b> DehazeFormer's pipeline feeds the network images in [−1, 1] and maps its output back with
/// <c>clamp(−1, 1)·0.5 + 0.5</c>. With <see cref="DehazeFormerOptions.InputRange"/> =
/// <see cref="DehazeFormerInputRange.MinusOneOne"/> (the default) this module does the mapping itself:
/// <c>forward(x) = net(2x − 1)·0.5 + 0.5</c> for x in [0, 1], so the framework's [0, 1] images train and test the
/// network exactly as DehazeFormer's train.py/test.py do (the framework clamps to [0, 1] when it quantises, which is the
/// same as test.py's clamp). <see cref="DehazeFormerInputRange.ZeroOne"/> gives the bare network.</para>
/// <para><b>State dict.</b> <c>relative_positions</c> ([ws², ws², 2] float32) is a buffer in the state dict, as in the
/// released checkpoints; its values depend only on <c>window_size</c>. The released checkpoints are
/// <c>{'state_dict': DataParallel state dict}</c> (keys prefixed <c>module.</c>). TorchSharp lists buffers after all
/// parameters in <c>state_dict()</c>, so the key order differs from PyTorch's; names and shapes are the same.</para>
/// <para>Initialisation follows the original: truncated-normal convs with std <c>(8·Σdepths)^(−1/4)·sqrt(2/(fan_in + fan_out))</c>
/// in the attention and MLP branches (no depth gain on QK), zero biases; RLN <c>meta1</c>/<c>meta2</c> weights
/// truncated normal (std 0.02), biases 1/0; other layers PyTorch's defaults.</para>
/// </remarks>
[McirModel("dehazeformer", Tasks = new[] { "dehaze" }, Description = "DehazeFormer (Song et al., 2023), IDKiro/DehazeFormer layout, [-1, 1] convention handled inside; presets dehazeformer-t/-s/-b/-m/-l",
    TileSafe = false, TileSafetyNote = "its RLN normalises by the mean and deviation of the whole feature map and SKFusion averages it")]
public sealed partial class DehazeFormer : nn.Module<Tensor, Tensor>
{
    /// <summary>The original's <c>patch_size</c>: total down-sampling of the body; inputs are padded to multiples of it.</summary>
    public const int PatchSize = 4;

    // Field names are the state_dict names, in the original's registration order; RegisterComponents() registers them.
    private readonly PatchEmbed patch_embed;
    private readonly BasicLayer layer1;
    private readonly PatchEmbed patch_merge1;
    private readonly Conv2d skip1;
    private readonly BasicLayer layer2;
    private readonly PatchEmbed patch_merge2;
    private readonly Conv2d skip2;
    private readonly BasicLayer layer3;
    private readonly PatchUnEmbed patch_split1;
    private readonly SKFusion fusion1;
    private readonly BasicLayer layer4;
    private readonly PatchUnEmbed patch_split2;
    private readonly SKFusion fusion2;
    private readonly BasicLayer layer5;
    private readonly PatchUnEmbed patch_unembed;

    /// <summary>Builds a DehazeFormer with the original's initialisation.</summary>
    /// <param name="options">The configuration; see <see cref="DehazeFormerOptions"/> and <see cref="Presets"/>.</param>
    /// <exception cref="ArgumentException">The options are invalid (wrong list lengths, unknown conv_type, …).</exception>
    public DehazeFormer(DehazeFormerOptions options) : base(nameof(DehazeFormer))
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        options.Validate();

        var dims = options.EmbedDims;
        int networkDepth = options.Depths.Sum();
        patch_embed = new PatchEmbed(patchSize: 1, inChans: 3, embedDim: dims[0], kernelSize: 3);
        layer1 = new BasicLayer(networkDepth, options, 0);
        patch_merge1 = new PatchEmbed(patchSize: 2, inChans: dims[0], embedDim: dims[1]);
        skip1 = nn.Conv2d(dims[0], dims[0], 1);
        layer2 = new BasicLayer(networkDepth, options, 1);
        patch_merge2 = new PatchEmbed(patchSize: 2, inChans: dims[1], embedDim: dims[2]);
        skip2 = nn.Conv2d(dims[1], dims[1], 1);
        layer3 = new BasicLayer(networkDepth, options, 2);
        patch_split1 = new PatchUnEmbed(patchSize: 2, outChans: dims[3], embedDim: dims[2]);
        fusion1 = new SKFusion(dims[3]);
        layer4 = new BasicLayer(networkDepth, options, 3);
        patch_split2 = new PatchUnEmbed(patchSize: 2, outChans: dims[4], embedDim: dims[3]);
        fusion2 = new SKFusion(dims[4]);
        layer5 = new BasicLayer(networkDepth, options, 4);
        patch_unembed = new PatchUnEmbed(patchSize: 1, outChans: 4, embedDim: dims[4], kernelSize: 3);
        RegisterComponents();
    }

    /// <summary>
    /// Named configurations, the official constructors: <c>"dehazeformer-t"</c> = <see cref="DehazeFormerOptions.T"/>,
    /// <c>"dehazeformer-s"</c> = <see cref="DehazeFormerOptions.S"/>, <c>"dehazeformer-b"</c> = <see cref="DehazeFormerOptions.B"/>,
    /// <c>"dehazeformer-m"</c> = <see cref="DehazeFormerOptions.M"/>, <c>"dehazeformer-l"</c> = <see cref="DehazeFormerOptions.L"/>;
    /// all with the [−1, 1] mapping (<see cref="DehazeFormerInputRange.MinusOneOne"/>).
    /// </summary>
    public static IReadOnlyDictionary<string, DehazeFormerOptions> Presets { get; } =
        new System.Collections.ObjectModel.ReadOnlyDictionary<string, DehazeFormerOptions>(new Dictionary<string, DehazeFormerOptions>(StringComparer.Ordinal)
        {
            ["dehazeformer-t"] = DehazeFormerOptions.T,
            ["dehazeformer-s"] = DehazeFormerOptions.S,
            ["dehazeformer-b"] = DehazeFormerOptions.B,
            ["dehazeformer-m"] = DehazeFormerOptions.M,
            ["dehazeformer-l"] = DehazeFormerOptions.L,
        });

    /// <summary>The options this network was built from.</summary>
    public DehazeFormerOptions Options { get; }

    /// <summary>
    /// [N, 3, H, W] → [N, 3, H, W]. With <see cref="DehazeFormerInputRange.MinusOneOne"/> the input is a [0, 1] image and so
    /// is the output (up to the network's over/undershoot, which the caller clamps); with
    /// <see cref="DehazeFormerInputRange.ZeroOne"/> it is the bare network.
    /// </summary>
    /// <exception cref="ArgumentException">The input is not [N, 3, H, W], or too small for the window padding.</exception>
    public override Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.dim() != 4 || input.shape[1] != 3)
            throw new ArgumentException($"DehazeFormer expects a [N, 3, H, W] input, got [{string.Join(", ", input.shape)}].", nameof(input));

        using var scope = NewDisposeScope();
        bool map = Options.InputRange == DehazeFormerInputRange.MinusOneOne;
        var x = map ? input * 2 - 1 : input;
        var y = Network(x);
        if (map) y = y * 0.5 + 0.5;
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>The original's <c>DehazeFormer.forward</c>: pad to multiples of 4, features, <c>K·x − B + x</c>, crop.</summary>
    private Tensor Network(Tensor input)
    {
        long h = input.shape[2], w = input.shape[3];
        long padH = (PatchSize - h % PatchSize) % PatchSize, padW = (PatchSize - w % PatchSize) % PatchSize;
        if (padH >= h || padW >= w)
            throw new ArgumentException($"DehazeFormer: a {h}x{w} input is too small to reflect-pad to a multiple of {PatchSize}.", nameof(input));
        var x = padH == 0 && padW == 0 ? input : nn.functional.pad(input, [0, padW, 0, padH], PaddingModes.Reflect);

        var feat = ForwardFeatures(x);
        var k = feat.narrow(1, 0, 1);
        var b = feat.narrow(1, 1, 3);
        var y = k * x - b + x;
        return padH == 0 && padW == 0 ? y : y.narrow(2, 0, h).narrow(3, 0, w);
    }

    /// <summary>The original's <c>forward_features</c>.</summary>
    private Tensor ForwardFeatures(Tensor x)
    {
        x = patch_embed.call(x);
        x = layer1.call(x);
        var s1 = x;

        x = patch_merge1.call(x);
        x = layer2.call(x);
        var s2 = x;

        x = patch_merge2.call(x);
        x = layer3.call(x);
        x = patch_split1.call(x);

        x = fusion1.call(x, skip2.call(DehazeFormerInit.ChannelsLast(s2))) + x;
        x = layer4.call(x);
        x = patch_split2.call(x);

        x = fusion2.call(x, skip1.call(DehazeFormerInit.ChannelsLast(s1))) + x;
        x = layer5.call(x);
        return patch_unembed.call(x);
    }
}
