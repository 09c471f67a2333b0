using Mcir.Abstractions.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mcir.Plugins.SuperResolution;

/// <summary>
/// SwinIR (Liang et al., "SwinIR: Image Restoration Using Swin Transformer", ICCVW 2021), a port of BasicSR's
/// <c>basicsr/archs/swinir_arch.py</c> with the same module tree, so BasicSR/MCIR checkpoints load by name:
/// <c>conv_first</c>, <c>patch_embed.norm</c>, <c>layers.{i}.residual_group.blocks.{j}.{norm1, attn.{relative_position_bias_table,
/// relative_position_index, qkv, proj}, norm2, mlp.fc1, mlp.fc2}</c>, <c>layers.{i}.conv</c>, <c>norm</c>,
/// <c>conv_after_body</c>, then the upsampler's modules (<c>upsample.0</c> for <c>pixelshuffledirect</c>;
/// <c>conv_before_upsample.0</c>, <c>upsample.{0,2,…}</c>, <c>conv_last</c> for <c>pixelshuffle</c>).
/// </summary>
/// <remarks>
/// <para>Forward, as BasicSR: <c>x = (x − mean)·img_range; x = conv_first(x); x = conv_after_body(features(x)) + x;</c>
/// then the upsampler, and <c>/ img_range + mean</c>. The mean is DIV2K's (0.4488, 0.4371, 0.4040) with 3 channels and 0
/// otherwise; like BasicSR's <c>self.mean</c> it is not in the state dict. Input [N, C, h, w] in [0, 1], output
/// [N, C, s·h, s·w].</para>
/// <para><b>Input size.</b> h and w must be multiples of the window size: like BasicSR, SwinIR does not pad, and an
/// input that is not a multiple is rejected with an <see cref="ArgumentException"/>. The network says so through
/// <see cref="IInputSizeMultiple"/>, and the engine's inference path (validation, <c>test</c>, <c>restore</c>)
/// reflect-pads to the next multiple and crops <c>scale·pad</c> from the output, as BasicSR's <c>SwinIRModel.test</c>
/// and MCLIR's <c>SwinIRNegModel_Multi.test</c>. Any multiple works, not only <see cref="SwinIROptions.ImgSize"/>.</para>
/// <para><b>Buffers.</b> <c>relative_position_index</c> (int64, [ws², ws²]) is a buffer, so the key exists as in BasicSR
/// checkpoints. The shifted-window attention masks are not kept: BasicSR's <c>attn_mask</c> buffers depend only on
/// <c>img_size</c>/<c>window_size</c>, and this port computes the mask for the actual input size at every call (what
/// BasicSR's <c>calculate_mask</c> does for inputs of another size; for <c>img_size</c> inputs both are identical).
/// Checkpoints written by BasicSR contain <c>….blocks.{odd}.attn_mask</c> entries: the engine's weights loader skips them
/// by name (<see cref="IsRecomputed"/>, strict mode included); drop them with <see cref="WithoutAttentionMasks"/> before
/// TorchSharp's own strict <c>load_state_dict</c>.</para>
/// <para>Stochastic depth (<c>drop_path_rate</c>) and dropouts act in training only.</para>
/// </remarks>
[McirModel("swinir", Tasks = new[] { "sr" }, Description = "SwinIR (Liang et al., 2021), BasicSR layout; presets swinir-light (60/4x6, pixelshuffledirect x4), swinir-small (60/2x2) and swinir-classical (180/6x6, pixelshuffle x4)")]
public sealed partial class SwinIR : nn.Module<Tensor, Tensor>, IRecomputedStateKeys, IInputSizeMultiple
{
    // Field names are the state_dict names (BasicSR's attribute names); RegisterComponents() registers the non-null ones.
    private readonly Conv2d conv_first;
    private readonly PatchEmbed patch_embed;
    private readonly Parameter? absolute_pos_embed;
    private readonly ModuleList<RSTB> layers;
    private readonly LayerNorm norm;
    private readonly nn.Module<Tensor, Tensor> conv_after_body;
    private readonly Sequential? conv_before_upsample;
    private readonly Sequential? upsample;
    private readonly Conv2d? conv_up1;
    private readonly Conv2d? conv_up2;
    private readonly Conv2d? conv_hr;
    private readonly Conv2d? conv_last;

    // Not a Tensor field, so RegisterComponents() does not turn it into a buffer.
    private readonly float[] _mean;

    private const int NumFeat = 64; // BasicSR's hard-coded num_feat of the pixelshuffle / nearest+conv reconstructions.

    /// <summary>Builds a SwinIR with BasicSR's initialisation (truncated-normal Linear weights and position-bias tables, std 0.02; zero Linear biases; unit LayerNorms; PyTorch-default convs).</summary>
    /// <param name="options">The configuration; see <see cref="SwinIROptions"/>.</param>
    /// <exception cref="ArgumentException">The options are invalid (e.g. an unsupported <see cref="SwinIROptions.Upsampler"/>).</exception>
    public SwinIR(SwinIROptions options) : base("SwinIR")
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        options.Validate();

        int dim = options.EmbedDim;
        int inCh = options.InChans;
        _mean = inCh == 3 ? new[] { 0.4488f, 0.4371f, 0.4040f } : new[] { 0f };

        conv_first = nn.Conv2d(inCh, dim, 3, stride: 1, padding: 1);
        patch_embed = new PatchEmbed(dim, options.PatchNorm);
        if (options.Ape)
        {
            long numPatches = (long)options.PatchesResolution * options.PatchesResolution;
            absolute_pos_embed = new Parameter(zeros(1, numPatches, dim));
            ModelInit.TruncNormal_(absolute_pos_embed, std: 0.02);
        }

        // Stochastic depth decay rule: linspace(0, drop_path_rate, sum(depths)) over all blocks.
        int totalBlocks = options.Depths.Sum();
        int ws = options.EffectiveWindowSize, shift = options.EffectiveShiftSize;
        layers = new ModuleList<RSTB>();
        int blockIndex = 0;
        for (int i = 0; i < options.Depths.Count; i++)
        {
            var blocks = new ModuleList<SwinTransformerBlock>();
            for (int j = 0; j < options.Depths[i]; j++, blockIndex++)
            {
                double dpr = totalBlocks > 1 ? options.DropPathRate * blockIndex / (totalBlocks - 1) : 0.0;
                blocks.Add(new SwinTransformerBlock(dim, options.NumHeads[i], ws, j % 2 == 0 ? 0 : shift, options.MlpRatio,
                    options.QkvBias, options.QkScale, options.DropRate, options.AttnDropRate, dpr));
            }

            layers.Add(new RSTB(dim, new BasicLayer(blocks), options.ResiConnection));
        }

        norm = nn.LayerNorm(dim);
        conv_after_body = ResidualConv(dim, options.ResiConnection);

        switch (options.Upsampler)
        {
            case SwinIROptions.PixelShuffle:
                conv_before_upsample = nn.Sequential(nn.Conv2d(dim, NumFeat, 3, stride: 1, padding: 1), nn.LeakyReLU(0.01));
                upsample = Upsample.Build(options.Upscale, NumFeat);
                conv_last = nn.Conv2d(NumFeat, inCh, 3, stride: 1, padding: 1);
                break;
            case SwinIROptions.PixelShuffleDirect:
                upsample = nn.Sequential(
                    nn.Conv2d(dim, (long)options.Upscale * options.Upscale * inCh, 3, stride: 1, padding: 1),
                    nn.PixelShuffle(options.Upscale));
                break;
            case SwinIROptions.NearestConv:
                conv_before_upsample = nn.Sequential(nn.Conv2d(dim, NumFeat, 3, stride: 1, padding: 1), nn.LeakyReLU(0.01));
                conv_up1 = nn.Conv2d(NumFeat, NumFeat, 3, stride: 1, padding: 1);
                conv_up2 = nn.Conv2d(NumFeat, NumFeat, 3, stride: 1, padding: 1);
                conv_hr = nn.Conv2d(NumFeat, NumFeat, 3, stride: 1, padding: 1);
                conv_last = nn.Conv2d(NumFeat, inCh, 3, stride: 1, padding: 1);
                break;
            default: // SwinIROptions.NoUpsampler (Validate() allows nothing else)
                conv_last = nn.Conv2d(dim, inCh, 3, stride: 1, padding: 1);
                break;
        }

        RegisterComponents();
        InitWeights();
    }

    /// <summary>
    /// Named configurations: <c>"swinir-light"</c> = <see cref="SwinIROptions.Light"/> (lightweight ×4, 929,628
    /// parameters), <c>"swinir-classical"</c> = <see cref="SwinIROptions.Classical"/> (classical ×4), and
    /// <c>"swinir-small"</c> = the light configuration with two residual groups of two blocks (depths/num_heads
    /// (2, 2)/(6, 6), 248,508 parameters; the project's reference fixture).
    /// </summary>
    public static IReadOnlyDictionary<string, SwinIROptions> Presets { get; } =
        new System.Collections.ObjectModel.ReadOnlyDictionary<string, SwinIROptions>(new Dictionary<string, SwinIROptions>(StringComparer.Ordinal)
        {
            ["swinir-light"] = SwinIROptions.Light,
            ["swinir-classical"] = SwinIROptions.Classical,
            ["swinir-small"] = SwinIROptions.Light with { Depths = [2, 2], NumHeads = [6, 6] },
        });

    /// <summary>The options this network was built from.</summary>
    public SwinIROptions Options { get; }

    /// <summary>
    /// The window the blocks use (<see cref="SwinIROptions.EffectiveWindowSize"/>: <c>window_size</c>, or the smaller
    /// <c>img_size / patch_size</c>): inputs must have multiples of it as height and width.
    /// </summary>
    public int InputSizeMultiple => Options.EffectiveWindowSize;

    /// <summary>
    /// The entries of <paramref name="stateDict"/> except BasicSR's <c>attn_mask</c> buffers (keys ending in
    /// <c>.attn_mask</c>), which this port recomputes for every input size; use it on BasicSR/SwinIR checkpoints before a
    /// strict <c>load_state_dict</c>. The tensors are not copied.
    /// </summary>
    /// <param name="stateDict">A state dict (name → tensor).</param>
    /// <returns>A new dictionary without the attention-mask entries.</returns>
    public static Dictionary<string, Tensor> WithoutAttentionMasks(IReadOnlyDictionary<string, Tensor> stateDict)
    {
        ArgumentNullException.ThrowIfNull(stateDict);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (key, value) in stateDict)
            if (!key.EndsWith(".attn_mask", StringComparison.Ordinal) && key != "attn_mask")
                result.Add(key, value);
        return result;
    }

    /// <summary>
    /// True for BasicSR's <c>attn_mask</c> buffers (keys ending in <c>.attn_mask</c>), which this port recomputes for
    /// every input size; weights loaders skip them by name.
    /// </summary>
    public bool IsRecomputed(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        return key.EndsWith(".attn_mask", StringComparison.Ordinal) || key == "attn_mask";
    }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        int inCh = Options.InChans;
        if (input.dim() != 4 || input.shape[1] != inCh)
            throw new ArgumentException(
                $"SwinIR expects a [N, {inCh}, H, W] input, got [{string.Join(", ", input.shape)}].", nameof(input));
        long h = input.shape[2], w = input.shape[3];
        int ws = Options.EffectiveWindowSize;
        if (h % ws != 0 || w % ws != 0 || h == 0 || w == 0)
            throw new ArgumentException(
                $"SwinIR: the input is {h}x{w}, but height and width must be positive multiples of the window size {ws}. "
                + $"SwinIR does not pad (as in BasicSR): pad the input to {RoundUp(h, ws)}x{RoundUp(w, ws)} (e.g. reflect padding, as MCLIR's "
                + $"SwinIRNegModel_Multi.test) and crop the output back by the scale factor {OutputScale}.", nameof(input));
        if (absolute_pos_embed is not null && (h != Options.PatchesResolution || w != Options.PatchesResolution))
            throw new ArgumentException(
                $"SwinIR: with the absolute position embedding (Ape) the input must be {Options.PatchesResolution}x{Options.PatchesResolution} (ImgSize), got {h}x{w}.",
                nameof(input));

        using var scope = NewDisposeScope();
        var mean = tensor(_mean, dtype: input.dtype, device: input.device).view(1, _mean.Length, 1, 1);
        var x = (input - mean) * Options.ImgRange;
        Tensor y;
        switch (Options.Upsampler)
        {
            case SwinIROptions.PixelShuffle:
                x = conv_first.call(x);
                x = conv_after_body.call(ForwardFeatures(x)) + x;
                x = conv_before_upsample!.call(x);
                y = conv_last!.call(upsample!.call(x));
                break;
            case SwinIROptions.PixelShuffleDirect:
                x = conv_first.call(x);
                x = conv_after_body.call(ForwardFeatures(x)) + x;
                y = upsample!.call(x);
                break;
            case SwinIROptions.NearestConv:
                x = conv_first.call(x);
                x = conv_after_body.call(ForwardFeatures(x)) + x;
                x = conv_before_upsample!.call(x);
                x = nn.functional.leaky_relu(conv_up1!.call(nn.functional.interpolate(x, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest)), 0.2);
                x = nn.functional.leaky_relu(conv_up2!.call(nn.functional.interpolate(x, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest)), 0.2);
                y = conv_last!.call(nn.functional.leaky_relu(conv_hr!.call(x), 0.2));
                break;
            default:
                var first = conv_first.call(x);
                var res = conv_after_body.call(ForwardFeatures(first)) + first;
                y = x + conv_last!.call(res);
                break;
        }

        return (y / Options.ImgRange + mean).MoveToOuterDisposeScope();
    }

    /// <summary>The output/input size ratio: <see cref="SwinIROptions.Upscale"/>, or 1 without upsampler.</summary>
    private int OutputScale => Options.Upsampler == SwinIROptions.NoUpsampler ? 1 : Options.Upscale;

    private static long RoundUp(long v, int m) => (v + m - 1) / m * m;

    /// <summary>BasicSR's <c>forward_features</c>: tokens, residual groups, LayerNorm, back to [b, c, h, w].</summary>
    private Tensor ForwardFeatures(Tensor x)
    {
        long b = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
        var tokens = patch_embed.call(x);
        if (absolute_pos_embed is not null) tokens = tokens + absolute_pos_embed;
        tokens = nn.functional.dropout(tokens, Options.DropRate, training);

        int shift = Options.EffectiveShiftSize;
        Tensor? mask = shift > 0 && Options.Depths.Any(static d => d > 1)
            ? SwinWindows.AttentionMask(h, w, Options.EffectiveWindowSize, shift, x.dtype, x.device)
            : null;
        foreach (var layer in layers) tokens = layer.Forward(tokens, h, w, mask);

        tokens = norm.call(tokens);
        return tokens.transpose(1, 2).view(b, c, h, w);
    }

    /// <summary>BasicSR's <c>resi_connection</c> conv: <c>1conv</c> = 3×3 conv; <c>3conv</c> = conv(dim→dim/4), LeakyReLU(0.2), 1×1 conv, LeakyReLU(0.2), conv(dim/4→dim).</summary>
    internal static nn.Module<Tensor, Tensor> ResidualConv(int dim, string resiConnection) =>
        resiConnection == "3conv"
            ? nn.Sequential(
                nn.Conv2d(dim, dim / 4, 3, stride: 1, padding: 1), nn.LeakyReLU(0.2, inplace: true),
                nn.Conv2d(dim / 4, dim / 4, 1, stride: 1, padding: 0L), nn.LeakyReLU(0.2, inplace: true),
                nn.Conv2d(dim / 4, dim, 3, stride: 1, padding: 1))
            : nn.Conv2d(dim, dim, 3, stride: 1, padding: 1);

    /// <summary>BasicSR's <c>_init_weights</c>: Linear weights trunc_normal(std 0.02) and zero biases; LayerNorm weight 1, bias 0.</summary>
    private void InitWeights()
    {
        using var guard = no_grad();
        foreach (var module in modules())
        {
            switch (module)
            {
                case Linear linear:
                    ModelInit.TruncNormal_(linear.weight, std: 0.02);
                    if (linear.bias is not null) nn.init.zeros_(linear.bias);
                    break;
                case LayerNorm layerNorm:
                    if (layerNorm.weight is not null) nn.init.ones_(layerNorm.weight);
                    if (layerNorm.bias is not null) nn.init.zeros_(layerNorm.bias);
                    break;
            }
        }
    }
}
