using Mcir.Abstractions.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mcir.Plugins.Deblurring;

/// <summary>
/// NAFNet (Chen et al., "Simple Baselines for Image Restoration", ECCV 2022), a port of megvii-research/NAFNet's
/// <c>basicsr/models/archs/NAFNet_arch.py</c> with the same module tree, so NAFNet checkpoints load by name:
/// <c>intro</c>, <c>ending</c>, <c>encoders.{i}.{j}</c>, <c>decoders.{i}.{j}</c>, <c>middle_blks.{j}</c> (NAFBlocks),
/// <c>ups.{i}.0</c> (1×1 conv without bias, followed by <c>ups.{i}.1</c> = PixelShuffle(2)), <c>downs.{i}</c> (2×2 stride-2 conv).
/// </summary>
/// <remarks>
/// <para>Forward, as the original: zero-pad the input on the bottom/right to a multiple of
/// <see cref="NafnetOptions.PadderSize()"/> (<c>check_image_size</c>), <c>intro</c>, encoder levels (each output kept as
/// a skip connection, then downsampled), middle blocks, decoder levels (upsample, add the skip, blocks),
/// <c>ending</c>, add the padded input (global residual) and crop back to the input size. Input and output
/// [N, img_channel, H, W], any H and W.</para>
/// <para>A NAFBlock holds <c>conv1</c>…<c>conv5</c>, <c>sca.1</c> (the 1×1 conv after the global average pool of the
/// simplified channel attention), <c>norm1</c>/<c>norm2</c> (LayerNorm2d: weight/bias, ε = 1e-6, normalising over channels
/// per pixel) and the learnable residual scales <c>beta</c>/<c>gamma</c> ([1, C, 1, 1], zero at initialisation). The
/// original's dropout rate is 0, so <c>dropout1</c>/<c>dropout2</c> are identities. This is the plain <c>NAFNet</c>
/// class when <see cref="NafnetOptions.TrainSize"/> is null.</para>
/// <para>With <see cref="NafnetOptions.TrainSize"/> set it is <c>NAFNetLocal</c> (TLC; NAFNet's GoPro/REDS test
/// configurations, <c>basicsr/models/archs/local_arch.py</c> with fast_imp false): every block's <c>sca.0</c> global
/// average pool is replaced by a local one whose window NAFNetLocal fixes with one pass on a train_size input —
/// k = (h·⌊1.5·H⌋ div H, w·⌊1.5·W⌋ div W) for a block that sees an h × w feature map there (after the zero padding). On an
/// h' × w' map the pool is the global mean when k_h ≥ h' and k_w ≥ w'; otherwise the mean over each
/// min(h', k_h) × min(w', k_w) window (stride 1, from a summed-area table as the original), replicate-padded back to
/// h' × w' (the extra row/column at the bottom/right). Same parameters and state-dict keys as the plain network; on
/// inputs up to 1.5 × the training size both compute the same thing, in training and evaluation mode alike (as the
/// original, which replaces the pools once at construction).</para>
/// </remarks>
[McirModel("nafnet", Tasks = new[] { "deblur" }, Description = "NAFNet (Chen et al., 2022), NAFNet repo layout; presets nafnet (GoPro width 32), nafnet-small (width 8) and their NAFNetLocal (TLC) variants nafnet-local, nafnet-small-local",
    TileSafe = false, TileSafetyNote = "every block's channel attention averages the whole feature map (nafnet-local: windows of 1.5 x its train_size)")]
public sealed partial class Nafnet : nn.Module<Tensor, Tensor>
{
    // Field names are the state_dict names (NAFNet's attribute names), in the original's registration order;
    // RegisterComponents() registers them.
    private readonly Conv2d intro;
    private readonly Conv2d ending;
    private readonly ModuleList<Sequential> encoders;
    private readonly ModuleList<Sequential> decoders;
    private readonly Sequential middle_blks;
    private readonly ModuleList<Sequential> ups;
    private readonly ModuleList<Conv2d> downs;

    /// <summary>Builds a NAFNet with fresh PyTorch-default initialisation (<c>beta</c>, <c>gamma</c> zero; norms unit/zero).</summary>
    /// <param name="options">The configuration; see <see cref="NafnetOptions"/>.</param>
    /// <exception cref="ArgumentException">The options are invalid (e.g. a width below 1).</exception>
    public Nafnet(NafnetOptions options) : base("NAFNet")
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        options.Validate();

        int img = options.ImgChannel, width = options.Width;
        intro = nn.Conv2d(img, width, 3, stride: 1, padding: 1);
        ending = nn.Conv2d(width, img, 3, stride: 1, padding: 1);

        var enc = new List<Sequential>();
        var down = new List<Conv2d>();
        int chan = width, level = 0;
        foreach (int num in options.EncBlkNums)
        {
            enc.Add(Blocks(chan, num, LocalPoolKernel(options, level++)));
            down.Add(nn.Conv2d(chan, 2 * chan, 2, stride: 2));
            chan *= 2;
        }

        middle_blks = Blocks(chan, options.MiddleBlkNum, LocalPoolKernel(options, level));

        var dec = new List<Sequential>();
        var up = new List<Sequential>();
        foreach (int num in options.DecBlkNums)
        {
            up.Add(nn.Sequential(nn.Conv2d(chan, chan * 2, 1, bias: false), nn.PixelShuffle(2)));
            chan /= 2;
            dec.Add(Blocks(chan, num, LocalPoolKernel(options, --level)));
        }

        encoders = nn.ModuleList(enc.ToArray());
        decoders = nn.ModuleList(dec.ToArray());
        ups = nn.ModuleList(up.ToArray());
        downs = nn.ModuleList(down.ToArray());
        RegisterComponents();
    }

    /// <summary>
    /// Named configurations: <c>"nafnet"</c> = NAFNet's GoPro width-32 model (<c>new NafnetOptions()</c>),
    /// <c>"nafnet-small"</c> = <see cref="NafnetOptions.Small"/> (the reference fixture's configuration), and their
    /// <c>NAFNetLocal</c> variants with train_size (1, 3, 256, 256): <c>"nafnet-local"</c> = <see cref="NafnetOptions.Local"/>
    /// (NAFNet's GoPro test model), <c>"nafnet-small-local"</c> = <see cref="NafnetOptions.SmallLocal"/>. A variant loads the
    /// weights of its plain model.
    /// </summary>
    public static IReadOnlyDictionary<string, NafnetOptions> Presets { get; } =
        new System.Collections.ObjectModel.ReadOnlyDictionary<string, NafnetOptions>(new Dictionary<string, NafnetOptions>(StringComparer.Ordinal)
        {
            ["nafnet"] = new NafnetOptions(),
            ["nafnet-small"] = NafnetOptions.Small,
            ["nafnet-local"] = NafnetOptions.Local,
            ["nafnet-small-local"] = NafnetOptions.SmallLocal,
        });

    /// <summary>The options this network was built from.</summary>
    public NafnetOptions Options { get; }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.dim() != 4 || input.shape[1] != Options.ImgChannel)
            throw new ArgumentException(
                $"NAFNet expects a [N, {Options.ImgChannel}, H, W] input, got [{string.Join(", ", input.shape)}].", nameof(input));

        using var scope = NewDisposeScope();
        long h = input.shape[2], w = input.shape[3];
        var inp = CheckImageSize(input);

        var x = intro.call(inp);
        var skips = new List<Tensor>(encoders.Count);
        for (int i = 0; i < encoders.Count; i++)
        {
            x = encoders[i].call(x);
            skips.Add(x);
            x = downs[i].call(x);
        }

        x = middle_blks.call(x);

        for (int i = 0; i < decoders.Count; i++)
        {
            x = ups[i].call(x);
            x = x + skips[skips.Count - 1 - i];
            x = decoders[i].call(x);
        }

        x = ending.call(x);
        x = x + inp;
        return x.slice(2, 0, h, 1).slice(3, 0, w, 1).MoveToOuterDisposeScope();
    }

    /// <summary>NAFNet's <c>check_image_size</c>: zero-pads bottom and right to a multiple of <see cref="NafnetOptions.PadderSize()"/>.</summary>
    private Tensor CheckImageSize(Tensor x)
    {
        long p = Options.PadderSize();
        long padH = (p - x.shape[2] % p) % p, padW = (p - x.shape[3] % p) % p;
        return padH == 0 && padW == 0 ? x.alias() : nn.functional.pad(x, new[] { 0, padW, 0, padH });
    }

    private static Sequential Blocks(int chan, int count, (int H, int W)? poolKernel) =>
        nn.Sequential(Enumerable.Range(0, count).Select(_ => (nn.Module<Tensor, Tensor>)new NafBlock(chan, poolKernel)).ToArray());

    /// <summary>
    /// The local pooling window of the blocks at <paramref name="level"/> (0 = full resolution), as NAFNetLocal fixes it
    /// with a pass on a train_size input; null for the plain network (global pooling).
    /// </summary>
    internal static (int H, int W)? LocalPoolKernel(NafnetOptions options, int level)
    {
        if (options.TrainSize is not { } t) return null;
        long p = options.PadderSize(), th = t[2], tw = t[3];
        long h = (th + p - 1) / p * p >> level, w = (tw + p - 1) / p * p >> level; // the feature map after check_image_size
        long kh = h * (3 * th / 2) / th, kw = w * (3 * tw / 2) / tw;            // base_size = int(1.5 * train_size)
        return ((int)Math.Min(kh, int.MaxValue), (int)Math.Min(kw, int.MaxValue));
    }

    /// <summary>
    /// NAFNet's <c>NAFBlock(c)</c> (DW_Expand 2, FFN_Expand 2, drop_out_rate 0):
    /// <c>y = inp + conv3(sca(sg(conv2(conv1(norm1(inp)))))·…)·beta; out = y + conv5(sg(conv4(norm2(y))))·gamma</c>.
    /// </summary>
    private sealed class NafBlock : nn.Module<Tensor, Tensor>
    {
        // Registration order of the original: beta, gamma (own parameters come first in state_dict), then conv1..conv5,
        // sca, norm1, norm2, dropout1, dropout2 (the SimpleGate has no parameters and is a function here).
        private readonly Parameter beta;
        private readonly Parameter gamma;
        private readonly Conv2d conv1;
        private readonly Conv2d conv2;
        private readonly Conv2d conv3;
        private readonly Sequential sca;
        private readonly Conv2d conv4;
        private readonly Conv2d conv5;
        private readonly LayerNorm2d norm1;
        private readonly LayerNorm2d norm2;
        private readonly nn.Module<Tensor, Tensor> dropout1;
        private readonly nn.Module<Tensor, Tensor> dropout2;

        public NafBlock(int c, (int H, int W)? poolKernel) : base("NAFBlock")
        {
            int dw = c * 2, ffn = c * 2;
            conv1 = nn.Conv2d(c, dw, 1);
            conv2 = nn.Conv2d(dw, dw, 3, padding: 1, groups: dw);
            conv3 = nn.Conv2d(dw / 2, c, 1);
            sca = nn.Sequential(
                poolKernel is { } k ? new LocalAvgPool2d(k.H, k.W) : nn.AdaptiveAvgPool2d(1),
                nn.Conv2d(dw / 2, dw / 2, 1));
            conv4 = nn.Conv2d(c, ffn, 1);
            conv5 = nn.Conv2d(ffn / 2, c, 1);
            norm1 = new LayerNorm2d(c);
            norm2 = new LayerNorm2d(c);
            dropout1 = nn.Identity();
            dropout2 = nn.Identity();
            beta = new Parameter(zeros(1, c, 1, 1));
            gamma = new Parameter(zeros(1, c, 1, 1));
            RegisterComponents();
        }

        public override Tensor forward(Tensor inp)
        {
            using var scope = NewDisposeScope();
            var x = norm1.call(inp);
            x = conv1.call(x);
            x = conv2.call(x);
            x = SimpleGate(x);
            x = x * sca.call(x);
            x = conv3.call(x);
            x = dropout1.call(x);

            var y = inp + x * beta;

            x = conv4.call(norm2.call(y));
            x = SimpleGate(x);
            x = conv5.call(x);
            x = dropout2.call(x);
            return (y + x * gamma).MoveToOuterDisposeScope();
        }

        /// <summary>NAFNet's <c>SimpleGate</c>: split the channels in two halves and multiply them.</summary>
        private static Tensor SimpleGate(Tensor x)
        {
            var halves = x.chunk(2, dim: 1);
            return halves[0] * halves[1];
        }
    }

    /// <summary>
    /// TLC's test-time replacement of <c>AdaptiveAvgPool2d(1)</c> (NAFNet's <c>local_arch.py</c> <c>AvgPool2d</c>, fast_imp
    /// false, auto_pad true) with a fixed window of <c>kernelH</c> × <c>kernelW</c> feature pixels: the global mean
    /// ([N, C, 1, 1]) when the window covers the whole map, else the mean over each k1 × k2 window (k = min(map, window))
    /// from a summed-area table, replicate-padded back to the input's [N, C, h, w]. No parameters.
    /// </summary>
    private sealed class LocalAvgPool2d : nn.Module<Tensor, Tensor>
    {
        private readonly long _kernelH, _kernelW;

        public LocalAvgPool2d(int kernelH, int kernelW) : base("AvgPool2d")
        {
            _kernelH = kernelH;
            _kernelW = kernelW;
        }

        public override Tensor forward(Tensor x)
        {
            long h = x.shape[2], w = x.shape[3];
            if (_kernelH >= h && _kernelW >= w) return nn.functional.adaptive_avg_pool2d(x, 1);

            using var scope = NewDisposeScope();
            long k1 = Math.Min(h, _kernelH), k2 = Math.Min(w, _kernelW);
            // Summed-area table with a zero row and column in front: s[i, j] = sum of x[:i, :j].
            var s = nn.functional.pad(x.cumsum(-1).cumsum(-2), new long[] { 1, 0, 1, 0 });
            long oh = h - k1 + 1, ow = w - k2 + 1;
            Tensor At(long top, long left) => s.narrow(2, top, oh).narrow(3, left, ow);
            // The original's order of terms: s4 + s1 - s2 - s3.
            var sum = At(k1, k2) + At(0, 0) - At(0, k2) - At(k1, 0);
            var mean = sum / (double)(k1 * k2);
            var padded = oh == h && ow == w
                ? mean
                : nn.functional.pad(mean, new long[] { (w - ow) / 2, (w - ow + 1) / 2, (h - oh) / 2, (h - oh + 1) / 2 }, PaddingModes.Replicate);
            return padded.MoveToOuterDisposeScope();
        }
    }

    /// <summary>
    /// NAFNet's <c>LayerNorm2d(channels, eps=1e-6)</c>: per pixel, normalise over the channel dimension
    /// (<c>(x − μ)/sqrt(σ² + ε)</c>, biased variance) and apply a per-channel <c>weight</c> and <c>bias</c>. The original
    /// writes the backward by hand; here autograd differentiates the same forward.
    /// </summary>
    private sealed class LayerNorm2d : nn.Module<Tensor, Tensor>
    {
        private const double Eps = 1e-6;
        private readonly Parameter weight;
        private readonly Parameter bias;

        public LayerNorm2d(int channels) : base("LayerNorm2d")
        {
            weight = new Parameter(ones(channels));
            bias = new Parameter(zeros(channels));
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            long c = x.shape[1];
            var mu = x.mean(new long[] { 1 }, keepdim: true);
            var centred = x - mu;
            var variance = centred.pow(2).mean(new long[] { 1 }, keepdim: true);
            var y = centred / (variance + Eps).sqrt();
            return (weight.view(1, c, 1, 1) * y + bias.view(1, c, 1, 1)).MoveToOuterDisposeScope();
        }
    }
}
