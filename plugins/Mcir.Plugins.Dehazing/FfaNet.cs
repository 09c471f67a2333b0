using Mcir.Abstractions.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mcir.Plugins.Dehazing;

/// <summary>
/// FFA-Net (Qin et al., "FFA-Net: Feature Fusion Attention Network for Single Image Dehazing", AAAI 2020), a port of
/// MCLIR's <c>basicsr/archs/ffanet_arch.py</c> (<c>FFANet</c>, the same module tree as zhilin007/FFA-Net's <c>FFA</c>), so
/// MCLIR and FFA-Net checkpoints load by name: <c>g1</c>/<c>g2</c>/<c>g3</c> (groups), <c>ca.1</c>/<c>ca.3</c> (the
/// feature-fusion channel attention over the concatenated group outputs), <c>palayer.pa.{0,2}</c>, <c>pre.0</c> and
/// <c>post.{0,1}</c>.
/// </summary>
/// <remarks>
/// <para>A group <c>g{i}.gp</c> is <see cref="FfaNetOptions.Blocks"/> blocks <c>gp.{j}</c> followed by a 3×3 conv
/// <c>gp.{Blocks}</c>, plus the group input. A block holds <c>conv1</c>, <c>conv2</c> (3×3), <c>calayer.ca.{0,2}</c>
/// (channel attention: global average pool, 1×1 conv to 64/8, ReLU, 1×1 conv to 64, sigmoid) and <c>palayer.pa.{0,2}</c>
/// (pixel attention: 1×1 conv to 8, ReLU, 1×1 conv to 1, sigmoid):
/// <c>r = conv2(relu(conv1(x)) + x); out = pa(ca(r)) + x</c>.</para>
/// <para>Forward, as the original: <c>x = pre(x1)</c>; <c>res1 = g1(x)</c>, <c>res2 = g2(res1)</c>,
/// <c>res3 = g3(res2)</c>; <c>w = ca(cat(res1, res2, res3))</c> reshaped to [N, 3, 64, 1, 1];
/// <c>out = palayer(w₀·res1 + w₁·res2 + w₂·res3)</c>; result <c>post(out) + x1</c> (two 3×3 convs without an
/// activation between them). Input and output [N, 3, H, W], any H and W. When
/// <see cref="FfaNetOptions.NormalizeInput"/> is true, <c>x1</c> is the input normalised with MCLIR's mean/std (so the
/// global residual adds the normalised input, exactly as MCLIR feeding its normalised <c>lq</c>); the mean/std are
/// constants, not part of the state dict.</para>
/// </remarks>
[McirModel("ffa-net", Tasks = new[] { "dehaze" }, Description = "FFA-Net (Qin et al., 2020), MCLIR/FFA-Net layout; presets ffa-net (3 groups x 19 blocks) and ffa-net-small (3 x 1)",
    TileSafe = false, TileSafetyNote = "its channel attention and group fusion average the whole feature map")]
public sealed partial class FfaNet : nn.Module<Tensor, Tensor>
{
    private const int KernelSize = 3;

    // Field names are the state_dict names (MCLIR's attribute names), in the original's registration order
    // (g1, g2, g3, ca, palayer, pre, post); RegisterComponents() registers them.
    private readonly Group g1;
    private readonly Group g2;
    private readonly Group g3;
    private readonly Sequential ca;
    private readonly PaLayer palayer;
    private readonly Sequential pre;
    private readonly Sequential post;

    private readonly float[] _mean;
    private readonly float[] _std;

    /// <summary>Builds an FFA-Net with fresh PyTorch-default initialisation.</summary>
    /// <param name="options">The configuration; see <see cref="FfaNetOptions"/>.</param>
    /// <exception cref="ArgumentException">The options are invalid (e.g. <c>gps</c> other than 3).</exception>
    public FfaNet(FfaNetOptions options) : base("FFANet")
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        options.Validate();

        const int dim = FfaNetOptions.Dim;
        int gps = options.Gps;
        g1 = new Group(dim, options.Blocks);
        g2 = new Group(dim, options.Blocks);
        g3 = new Group(dim, options.Blocks);
        ca = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(dim * gps, dim / 16, 1),
            nn.ReLU(),
            nn.Conv2d(dim / 16, dim * gps, 1, bias: true),
            nn.Sigmoid());
        palayer = new PaLayer(dim);
        pre = nn.Sequential(DefaultConv(3, dim));
        post = nn.Sequential(DefaultConv(dim, dim), DefaultConv(dim, 3));

        _mean = options.InputMean.Select(static m => (float)m).ToArray();
        _std = options.InputStd.Select(static s => (float)s).ToArray();
        RegisterComponents();
    }

    /// <summary>
    /// Named configurations: <c>"ffa-net"</c> = the paper's/MCLIR's 3 groups × 19 blocks (<c>new FfaNetOptions()</c>),
    /// <c>"ffa-net-small"</c> = <see cref="FfaNetOptions.Small"/> (the reference fixture's configuration, 1 block per group).
    /// </summary>
    public static IReadOnlyDictionary<string, FfaNetOptions> Presets { get; } =
        new System.Collections.ObjectModel.ReadOnlyDictionary<string, FfaNetOptions>(new Dictionary<string, FfaNetOptions>(StringComparer.Ordinal)
        {
            ["ffa-net"] = new FfaNetOptions(),
            ["ffa-net-small"] = FfaNetOptions.Small,
        });

    /// <summary>The options this network was built from.</summary>
    public FfaNetOptions Options { get; }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.dim() != 4 || input.shape[1] != 3)
            throw new ArgumentException($"FFA-Net expects a [N, 3, H, W] input, got [{string.Join(", ", input.shape)}].", nameof(input));

        using var scope = NewDisposeScope();
        var x1 = Options.NormalizeInput ? Normalize(input) : input;

        var x = pre.call(x1);
        var res1 = g1.call(x);
        var res2 = g2.call(res1);
        var res3 = g3.call(res2);
        var w = ca.call(cat(new[] { res1, res2, res3 }, 1));
        w = w.view(-1, Options.Gps, FfaNetOptions.Dim).unsqueeze(-1).unsqueeze(-1);
        var outp = w.select(1, 0) * res1 + w.select(1, 1) * res2 + w.select(1, 2) * res3;
        outp = palayer.call(outp);
        x = post.call(outp);
        return (x + x1).MoveToOuterDisposeScope();
    }

    /// <summary>MCLIR's <c>(lq − mean) / std</c>, per RGB channel, in the input's dtype and on its device.</summary>
    private Tensor Normalize(Tensor input)
    {
        using var mean = tensor(_mean, dtype: input.dtype, device: input.device).view(1, 3, 1, 1);
        using var std = tensor(_std, dtype: input.dtype, device: input.device).view(1, 3, 1, 1);
        return (input - mean) / std;
    }

    /// <summary>The original's <c>default_conv</c>: k×k conv with <c>padding = k // 2</c> and a bias.</summary>
    private static Conv2d DefaultConv(int inChannels, int outChannels) =>
        nn.Conv2d(inChannels, outChannels, KernelSize, padding: KernelSize / 2, bias: true);

    /// <summary>FFA-Net's <c>PALayer(channel)</c>: <c>x · sigmoid(conv(relu(conv(x))))</c>, one attention value per pixel.</summary>
    private sealed class PaLayer : nn.Module<Tensor, Tensor>
    {
        private readonly Sequential pa;

        public PaLayer(int channel) : base("PALayer")
        {
            pa = nn.Sequential(
                nn.Conv2d(channel, channel / 8, 1, bias: true),
                nn.ReLU(),
                nn.Conv2d(channel / 8, 1, 1, bias: true),
                nn.Sigmoid());
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var y = pa.call(x);
            return x * y;
        }
    }

    /// <summary>FFA-Net's <c>CALayer(channel)</c>: <c>x · sigmoid(conv(relu(conv(avgpool(x)))))</c>, one value per channel.</summary>
    private sealed class CaLayer : nn.Module<Tensor, Tensor>
    {
        private readonly AdaptiveAvgPool2d avg_pool;
        private readonly Sequential ca;

        public CaLayer(int channel) : base("CALayer")
        {
            avg_pool = nn.AdaptiveAvgPool2d(1);
            ca = nn.Sequential(
                nn.Conv2d(channel, channel / 8, 1, bias: true),
                nn.ReLU(),
                nn.Conv2d(channel / 8, channel, 1, bias: true),
                nn.Sigmoid());
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            var y = ca.call(avg_pool.call(x));
            return (x * y).MoveToOuterDisposeScope();
        }
    }

    /// <summary>FFA-Net's <c>Block</c>: <c>r = conv2(relu(conv1(x)) + x); out = palayer(calayer(r)) + x</c>.</summary>
    private sealed class Block : nn.Module<Tensor, Tensor>
    {
        private readonly Conv2d conv1;
        private readonly ReLU act1;
        private readonly Conv2d conv2;
        private readonly CaLayer calayer;
        private readonly PaLayer palayer;

        public Block(int dim) : base("Block")
        {
            conv1 = DefaultConv(dim, dim);
            act1 = nn.ReLU();
            conv2 = DefaultConv(dim, dim);
            calayer = new CaLayer(dim);
            palayer = new PaLayer(dim);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            var res = act1.call(conv1.call(x));
            res = res + x;
            res = conv2.call(res);
            res = calayer.call(res);
            res = palayer.call(res);
            return (res + x).MoveToOuterDisposeScope();
        }
    }

    /// <summary>FFA-Net's <c>Group</c>: <c>gp</c> = blocks then a 3×3 conv; <c>out = gp(x) + x</c>.</summary>
    private sealed class Group : nn.Module<Tensor, Tensor>
    {
        private readonly Sequential gp;

        public Group(int dim, int blocks) : base("Group")
        {
            var modules = Enumerable.Range(0, blocks).Select(_ => (nn.Module<Tensor, Tensor>)new Block(dim)).ToList();
            modules.Add(DefaultConv(dim, dim));
            gp = nn.Sequential(modules.ToArray());
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            return (gp.call(x) + x).MoveToOuterDisposeScope();
        }
    }
}
