using Mcir.Abstractions.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Plugins.Deraining;

/// <summary>
/// IDT, the Image Deraining Transformer (Xiao, Fu, Liu, Wu, Zha, "Image De-raining Transformer", IEEE TPAMI 2023), a port of
/// jiexiaou/IDT <c>model.py</c> (@ d72510c) with the same module tree, so its checkpoints load by name:
/// <c>input_proj.proj.0</c>, <c>encoderlayer_{0..3}</c> / <c>bottle</c> / <c>decoderlayer_{0..3}</c> <c>.blocks.{i}.{norm1,
/// attn.{relative_position_bias_table, Position_Extract.{0,1}, qkv.{to_q, to_kv}, proj}, norm2, mlp.{linear1.0, dwconv.0,
/// linear2.0}}</c>, <c>dowsample_{0..3}.conv.0</c> (sic), <c>upsample_{0..3}.deconv.0</c>, <c>output_proj.proj.0</c>.
/// </summary>
/// <remarks>
/// <para>A U-shaped network on [B, L, C] tokens: input projection (3×3 conv, LeakyReLU); four encoder levels (window
/// transformer blocks, then a spatial transformer whose attention runs over the grid of 8×8 pixel windows) joined by 4×4
/// stride-2 convolutions; a bottleneck; four decoder levels that concatenate the up-sampled map (2×2 transposed conv) with
/// the encoder's; a 3×3 output projection; the result is <c>input + output_proj(…)</c>.</para>
/// <para><b>Input size.</b> Like the original, the network accepts only <c>img_size</c> × <c>img_size</c> inputs (its spatial
/// transformers are built for that grid); other sizes are an <see cref="ArgumentException"/>. Train on patches of that size
/// (<c>gt_size</c> = <c>img_size</c>). For whole images the engine's inference path (validation, <c>test</c>,
/// <c>restore</c>) uses <see cref="IWindowedInference"/>: overlapping windows of <c>img_size</c> with
/// <see cref="TestOverlap"/> pixels of overlap, merged with centre-distance weights — IDT's <c>test_full_size.py</c>
/// (<c>splitimage</c>, <c>get_scoremap</c>, <c>mergeimage</c>); its <c>test.py</c> on 128×128 patches is the single-window
/// case. Images smaller than the window in a side (where test_full_size.py fails) are padded to it and cropped back.</para>
/// <para><b>State dict.</b> Parameters only: <c>relative_position_index</c> is a plain attribute in the original too. IDT's
/// train_derain.py saves the DataParallel state dict (keys prefixed <c>module.</c>), which the engine's weights reader
/// strips.</para>
/// <para>Initialisation follows the original: Linear weights and the relative-position tables truncated normal (std 0.02,
/// bounds ±2), Linear biases 0, LayerNorm 1/0, convolutions PyTorch's defaults. Stochastic depth (<c>drop_path_rate</c>)
/// as the original distributes it: linearly from 0 over the encoder's <c>sum(depths[:4])</c> slots, the reverse for the
/// decoder, <c>drop_path_rate</c> in the bottleneck; window blocks take the first rate of their level's slice, the spatial
/// transformer the last.</para>
/// </remarks>
[McirModel("idt", Tasks = new[] { "derain" }, Description = "IDT (Xiao et al., TPAMI 2023), jiexiaou/IDT layout, fixed 128x128 input evaluated in overlapping windows; presets idt and idt-small")]
public sealed partial class Idt : nn.Module<Tensor, Tensor>, IWindowedInference
{
    /// <summary>Overlap of the inference windows in pixels: <c>splitimage(overlap_size=20)</c> of IDT's test_full_size.py.</summary>
    public const int TestOverlap = 20;

    // Field names are the state_dict names, in the original's registration order; RegisterComponents() registers them.
    private readonly InputProj input_proj;
    private readonly OutputProj output_proj;
    private readonly BasicIDTLayer encoderlayer_0;
    private readonly Downsample dowsample_0;
    private readonly BasicIDTLayer encoderlayer_1;
    private readonly Downsample dowsample_1;
    private readonly BasicIDTLayer encoderlayer_2;
    private readonly Downsample dowsample_2;
    private readonly BasicIDTLayer encoderlayer_3;
    private readonly Downsample dowsample_3;
    private readonly BasicIDTLayer bottle;
    private readonly Upsample upsample_0;
    private readonly BasicIDTLayer decoderlayer_0;
    private readonly Upsample upsample_1;
    private readonly BasicIDTLayer decoderlayer_1;
    private readonly Upsample upsample_2;
    private readonly BasicIDTLayer decoderlayer_2;
    private readonly Upsample upsample_3;
    private readonly BasicIDTLayer decoderlayer_3;

    /// <summary>Builds an IDT with the original's initialisation.</summary>
    /// <param name="options">The configuration; see <see cref="IdtOptions"/> and <see cref="Presets"/>.</param>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public Idt(IdtOptions options) : base("IDT")
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        options.Validate();

        int e = options.EmbedDim;
        var (first, last) = DropPathRates(options);
        BasicIDTLayer Layer(int level, int num, int kBound, bool cross = true) =>
            new(options, level, num, kBound, cross, first[level], last[level]);

        input_proj = new InputProj(options.InChans, e);
        output_proj = new OutputProj(2 * e, options.InChans);
        encoderlayer_0 = Layer(0, num: 3, kBound: 16);
        dowsample_0 = new Downsample(e, e * 2);
        encoderlayer_1 = Layer(1, num: 3, kBound: 8);
        dowsample_1 = new Downsample(e * 2, e * 4);
        encoderlayer_2 = Layer(2, num: 2, kBound: 4);
        dowsample_2 = new Downsample(e * 4, e * 8);
        encoderlayer_3 = Layer(3, num: 2, kBound: 2);
        dowsample_3 = new Downsample(e * 8, e * 16);
        bottle = Layer(4, num: 1, kBound: 1, cross: false);
        upsample_0 = new Upsample(e * 16, e * 8);
        decoderlayer_0 = Layer(5, num: 1, kBound: 2);
        upsample_1 = new Upsample(e * 16, e * 4);
        decoderlayer_1 = Layer(6, num: 2, kBound: 4);
        upsample_2 = new Upsample(e * 8, e * 2);
        decoderlayer_2 = Layer(7, num: 2, kBound: 8);
        upsample_3 = new Upsample(e * 4, e);
        decoderlayer_3 = Layer(8, num: 3, kBound: 16);
        RegisterComponents();
    }

    /// <summary>
    /// Named configurations: <c>"idt"</c> = <c>new IdtOptions()</c> (IDT's train/test scripts), <c>"idt-small"</c> =
    /// <see cref="IdtOptions.Small"/> (embed_dim 4, for tests and CPU experiments).
    /// </summary>
    public static IReadOnlyDictionary<string, IdtOptions> Presets { get; } =
        new System.Collections.ObjectModel.ReadOnlyDictionary<string, IdtOptions>(new Dictionary<string, IdtOptions>(StringComparer.Ordinal)
        {
            ["idt"] = new IdtOptions(),
            ["idt-small"] = IdtOptions.Small,
        });

    /// <summary>The options this network was built from.</summary>
    public IdtOptions Options { get; }

    /// <inheritdoc />
    public int InferenceWindow => Options.ImgSize;

    /// <inheritdoc />
    public int InferenceOverlap => TestOverlap;

    /// <inheritdoc />
    public WindowMerge InferenceMerge => WindowMerge.InverseCenterDistance;

    /// <summary>
    /// The stochastic-depth rate of the window blocks (first) and of the spatial transformer (last) of each level, as the
    /// original slices <c>enc_dpr = linspace(0, drop_path_rate, sum(depths[:4]))</c>, <c>[drop_path_rate] · depths[4]</c>
    /// and <c>dec_dpr = enc_dpr[::-1]</c>.
    /// </summary>
    internal static (double[] First, double[] Last) DropPathRates(IdtOptions o)
    {
        var d = o.Depths;
        int n = d.Take(4).Sum();
        var enc = Enumerable.Range(0, n).Select(i => n == 1 ? 0.0 : (double)(float)(o.DropPathRate * i / (n - 1))).ToArray();
        var dec = enc.Reverse().ToArray();
        var slices = new double[IdtOptions.Levels][];
        for (int level = 0; level < 4; level++) slices[level] = enc[d.Take(level).Sum()..d.Take(level + 1).Sum()];
        slices[4] = Enumerable.Repeat(o.DropPathRate, d[4]).ToArray();
        for (int level = 5; level < IdtOptions.Levels; level++)
        {
            int start = d.Skip(5).Take(level - 5).Sum();
            slices[level] = dec[start..Math.Min(dec.Length, start + d[level])];
        }
        return (slices.Select(static s => s[0]).ToArray(), slices.Select(static s => s[^1]).ToArray());
    }

    /// <summary>
    /// [B, in_chans, img_size, img_size] → same shape: <c>input + output_proj(decoder(encoder(input_proj(input))))</c>.
    /// </summary>
    /// <exception cref="ArgumentException">The input is not [B, in_chans, img_size, img_size].</exception>
    public override Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        int s = Options.ImgSize;
        if (input.dim() != 4 || input.shape[1] != Options.InChans || input.shape[2] != s || input.shape[3] != s)
            throw new ArgumentException(
                $"IDT accepts only [B, {Options.InChans}, {s}, {s}] inputs (img_size {s}), got [{string.Join(", ", input.shape)}]; "
                + $"train on {s}x{s} patches (gt_size {s}); whole images are evaluated in {s}x{s} windows by the engine.", nameof(input));

        using var scope = NewDisposeScope();
        var y = input_proj.call(input);
        var encoder0 = encoderlayer_0.call(y);
        var encoder1 = encoderlayer_1.call(dowsample_0.call(encoder0));
        var encoder2 = encoderlayer_2.call(dowsample_1.call(encoder1));
        var encoder3 = encoderlayer_3.call(dowsample_2.call(encoder2));
        var b = bottle.call(dowsample_3.call(encoder3));

        var decoder0 = decoderlayer_0.call(cat([upsample_0.call(b), encoder3], -1));
        var decoder1 = decoderlayer_1.call(cat([upsample_1.call(decoder0), encoder2], -1));
        var decoder2 = decoderlayer_2.call(cat([upsample_2.call(decoder1), encoder1], -1));
        var decoder3 = decoderlayer_3.call(cat([upsample_3.call(decoder2), encoder0], -1));
        return (input + output_proj.call(decoder3)).MoveToOuterDisposeScope();
    }
}
