using Mcir.Abstractions.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mcir.Plugins.Dehazing;

// The building blocks of DehazeFormer (IDKiro/DehazeFormer models/dehazeformer.py @ 5af7c34) with the original's class
// and attribute names: field names are the state_dict names, and RegisterComponents() registers the non-null Module /
// Parameter / Tensor fields in declaration order (the original's registration order).

/// <summary>Weight initialisation helpers of the original (timm's <c>trunc_normal_</c>, <c>_calculate_fan_in_and_fan_out</c>).</summary>
internal static class DehazeFormerInit
{


    /// <summary>
    /// The original's conv init in <c>Mlp</c> and <c>Attention</c>: truncated normal with
    /// <c>std = gain · sqrt(2 / (fan_in + fan_out))</c> (fan = channels × kernel area, PyTorch's rule) and a zero bias.
    /// </summary>
    public static void InitConv(Conv2d conv, double gain)
    {
        var s = conv.weight!.shape;
        long receptive = 1;
        for (int i = 2; i < s.Length; i++) receptive *= s[i];
        double fanIn = s[1] * receptive, fanOut = s[0] * receptive;
        ModelInit.TruncNormal_(conv.weight, std: gain * Math.Sqrt(2.0 / (fanIn + fanOut)));
        if (conv.bias is not null)
        {
            using var guard = no_grad();
            conv.bias.zero_();
        }
    }

    /// <summary>The original's depth-scaled gain <c>(8 · network_depth)^(−1/4)</c>.</summary>
    public static double Gain(int networkDepth) => Math.Pow(8.0 * networkDepth, -0.25);

    /// <summary>
    /// The same [N, C, H, W] values with channels-last (NHWC) strides; a no-op when they already are. Every conv input
    /// goes through this: libtorch 2.10's float32 CPU convolution returns wrong values for some contiguous NCHW
    /// inputs (measured on an AVX-512 EPYC: 24 input channels at 32×32 and larger, errors up to 1.0, while
    /// channels-last inputs and float64 agree to 1e-6), and channels-last is also the layout the engine feeds
    /// (faster oneDNN kernels). Conv outputs then stay channels-last.
    /// </summary>
    public static Tensor ChannelsLast(Tensor x)
    {
        var s = x.stride();
        bool already = s[1] == 1 && s[3] == x.shape[1] && s[2] == x.shape[1] * x.shape[3];
        return already ? x : x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
    }
}

/// <summary>
/// <c>RLN</c> (rescaled LayerNorm): normalises over channels and space per sample, returns
/// <c>(x̂ · weight + bias, meta1(std), meta2(mean))</c>; the block multiplies its branch by the rescale and adds the rebias.
/// </summary>
internal sealed class RLN : nn.Module<Tensor, (Tensor Out, Tensor Rescale, Tensor Rebias)>
{
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly Conv2d meta1;
    private readonly Conv2d meta2;
    private readonly double _eps;

    public RLN(int dim, double eps = 1e-5) : base(nameof(RLN))
    {
        _eps = eps;
        weight = new Parameter(ones(1, dim, 1, 1));
        bias = new Parameter(zeros(1, dim, 1, 1));
        meta1 = nn.Conv2d(1, dim, 1);
        meta2 = nn.Conv2d(1, dim, 1);
        ModelInit.TruncNormal_(meta1.weight!, std: 0.02);
        ModelInit.TruncNormal_(meta2.weight!, std: 0.02);
        using (no_grad())
        {
            meta1.bias!.fill_(1);
            meta2.bias!.zero_();
        }
        RegisterComponents();
    }

    public override (Tensor Out, Tensor Rescale, Tensor Rebias) forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        long[] dims = [1, 2, 3];
        var mean = input.mean(dims, keepdim: true);
        var centered = input - mean;
        var std = (centered.pow(2).mean(dims, keepdim: true) + _eps).sqrt();
        var normalized = centered / std;
        var rescale = meta1.call(std);
        var rebias = meta2.call(mean);
        var output = normalized * weight + bias;
        return (output.MoveToOuterDisposeScope(), rescale.MoveToOuterDisposeScope(), rebias.MoveToOuterDisposeScope());
    }
}

/// <summary>The original's <c>Mlp</c>: <c>mlp = Sequential(Conv 1×1, ReLU, Conv 1×1)</c> with the depth-scaled init.</summary>
internal sealed class Mlp : nn.Module<Tensor, Tensor>
{
    private readonly Sequential mlp;

    public Mlp(int networkDepth, int inFeatures, int hiddenFeatures) : base(nameof(Mlp))
    {
        var fc1 = nn.Conv2d(inFeatures, hiddenFeatures, 1);
        var fc2 = nn.Conv2d(hiddenFeatures, inFeatures, 1);
        double gain = DehazeFormerInit.Gain(networkDepth);
        DehazeFormerInit.InitConv(fc1, gain);
        DehazeFormerInit.InitConv(fc2, gain);
        mlp = nn.Sequential(fc1, nn.ReLU(), fc2);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return mlp.call(DehazeFormerInit.ChannelsLast(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The original's <c>WindowAttention</c>: multi-head attention inside windows with a relative-position bias produced by
/// a small MLP (<c>meta</c>: Linear(2, 256), ReLU, Linear(256, heads)) from the log-spaced offsets in the
/// <c>relative_positions</c> buffer ([ws², ws², 2] float32, in the state dict as in the original's checkpoints).
/// </summary>
internal sealed class WindowAttention : nn.Module<Tensor, Tensor>
{
    private readonly Tensor relative_positions;
    private readonly Sequential meta;
    private readonly int _dim;
    private readonly int _numHeads;
    private readonly double _scale;

    public WindowAttention(int dim, int windowSize, int numHeads) : base(nameof(WindowAttention))
    {
        _dim = dim;
        _numHeads = numHeads;
        _scale = Math.Pow(dim / numHeads, -0.5);
        relative_positions = RelativePositions(windowSize);
        meta = nn.Sequential(nn.Linear(2, 256, hasBias: true), nn.ReLU(), nn.Linear(256, numHeads, hasBias: true));
        RegisterComponents();
    }

    /// <summary>
    /// <c>get_relative_positions</c>: for tokens i = (yi, xi), j = (yj, xj) of a window (row-major), the pair
    /// <c>(yi − yj, xi − xj)</c> mapped by <c>sign(d) · log(1 + |d|)</c>; [ws², ws², 2] float32.
    /// </summary>
    internal static Tensor RelativePositions(int ws)
    {
        int n = ws * ws;
        var values = new float[n * n * 2];
        static float LogSigned(int d) => MathF.Sign(d) * MathF.Log(1f + Math.Abs(d));
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                values[(i * n + j) * 2] = LogSigned(i / ws - j / ws);
                values[(i * n + j) * 2 + 1] = LogSigned(i % ws - j % ws);
            }
        return tensor(values, new long[] { n, n, 2 }, dtype: ScalarType.Float32);
    }

    /// <summary>qkv: [b·nw, ws², 3·dim] (Q, K, V channel blocks, each split into heads) → [b·nw, ws², dim].</summary>
    public override Tensor forward(Tensor qkv)
    {
        using var scope = NewDisposeScope();
        long b_ = qkv.shape[0], n = qkv.shape[1];
        var parts = qkv.reshape(b_, n, 3, _numHeads, _dim / _numHeads).permute(2, 0, 3, 1, 4);
        var q = parts[0] * _scale;
        var k = parts[1];
        var v = parts[2];
        var attn = q.matmul(k.transpose(-2, -1));
        var positions = relative_positions.dtype == attn.dtype ? relative_positions : relative_positions.to(attn.dtype);
        var bias = meta.call(positions).permute(2, 0, 1).contiguous();
        attn = (attn + bias.unsqueeze(0)).softmax(-1);
        var x = attn.matmul(v).transpose(1, 2).reshape(b_, n, _dim);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The original's <c>Attention</c>: a convolution branch on V (<c>conv</c>: 5×5 depthwise for DWConv, or
/// Conv3×3–ReLU–Conv3×3 for Conv, reflect padding) and, in attention blocks, shifted-window attention on
/// <c>cat(QK(x), V(x))</c>; the two are summed and projected (<c>proj</c>). Without attention: DWConv gives
/// <c>proj(conv(V(x)))</c>, Conv gives <c>conv(x)</c> (no V/proj).
/// </summary>
internal sealed class Attention : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor>? conv;
    private readonly Conv2d? V;
    private readonly Conv2d? proj;
    private readonly Conv2d? QK;
    private readonly WindowAttention? attn;

    private readonly int _windowSize;
    private readonly int _shiftSize;
    private readonly bool _useAttn;
    private readonly string _convType;

    public Attention(int networkDepth, int dim, int numHeads, int windowSize, int shiftSize, bool useAttn, string convType)
        : base(nameof(Attention))
    {
        _windowSize = windowSize;
        _shiftSize = shiftSize;
        _useAttn = useAttn;
        _convType = convType;
        double gain = DehazeFormerInit.Gain(networkDepth);

        if (convType == DehazeFormerOptions.Conv)
        {
            var c1 = nn.Conv2d(dim, dim, 3, padding: 1, padding_mode: PaddingModes.Reflect);
            var c2 = nn.Conv2d(dim, dim, 3, padding: 1, padding_mode: PaddingModes.Reflect);
            DehazeFormerInit.InitConv(c1, gain);
            DehazeFormerInit.InitConv(c2, gain);
            conv = nn.Sequential(c1, nn.ReLU(), c2);
        }
        else
        {
            var dw = nn.Conv2d(dim, dim, 5, padding: 2, groups: dim, padding_mode: PaddingModes.Reflect);
            DehazeFormerInit.InitConv(dw, gain);
            conv = dw;
        }

        if (convType == DehazeFormerOptions.DWConv || useAttn)
        {
            V = nn.Conv2d(dim, dim, 1);
            proj = nn.Conv2d(dim, dim, 1);
            DehazeFormerInit.InitConv(V, gain);
            DehazeFormerInit.InitConv(proj, gain);
        }

        if (useAttn)
        {
            // The original's _init_weights recognises QK by its 2·dim output channels: no depth gain there.
            QK = nn.Conv2d(dim, dim * 2, 1);
            DehazeFormerInit.InitConv(QK, 1.0);
            attn = new WindowAttention(dim, windowSize, numHeads);
        }

        RegisterComponents();
    }

    /// <summary>
    /// <c>check_size</c>: reflect-pads [b, c, h, w] at the bottom/right to window multiples; shifted blocks pad
    /// <c>shift</c> on the top/left and the rest (mod window) on the bottom/right.
    /// </summary>
    private Tensor CheckSize(Tensor x, bool shift)
    {
        long h = x.shape[2], w = x.shape[3], ws = _windowSize;
        long padH = (ws - h % ws) % ws, padW = (ws - w % ws) % ws;
        long[] pad = shift
            ? [_shiftSize, (ws - _shiftSize + padW) % ws, _shiftSize, (ws - _shiftSize + padH) % ws]
            : [0, padW, 0, padH];
        if (pad[0] >= w || pad[1] >= w || pad[2] >= h || pad[3] >= h)
            throw new ArgumentException(
                $"DehazeFormer: a {h}x{w} feature map is too small for a window-{ws} attention block "
                + $"(reflect padding (left, right, top, bottom) = ({string.Join(", ", pad)}) must be smaller than the side it pads); "
                + "use a larger input (every side at least 4 x window_size is always enough).");
        return pad.All(static p => p == 0) ? x : nn.functional.pad(x, pad, PaddingModes.Reflect);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], h = x.shape[2], w = x.shape[3];
        x = DehazeFormerInit.ChannelsLast(x);
        Tensor output;
        if (_useAttn)
        {
            var v = V!.call(x);
            var qkv = cat([QK!.call(x), v], 1);
            var shifted = CheckSize(qkv, _shiftSize > 0);
            long ht = shifted.shape[2], wt = shifted.shape[3], c = shifted.shape[1], ws = _windowSize;
            // window_partition of the [b, ht, wt, c] map: [b·nw, ws², c].
            var windows = shifted.permute(0, 2, 3, 1)
                .reshape(b, ht / ws, ws, wt / ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c);
            var attnWindows = attn!.call(windows);
            // window_reverse, then crop the padding.
            var merged = attnWindows.reshape(b, ht / ws, wt / ws, ws, ws, -1).permute(0, 1, 3, 2, 4, 5).reshape(b, ht, wt, -1);
            var attnOut = merged.narrow(1, _shiftSize, h).narrow(2, _shiftSize, w).permute(0, 3, 1, 2);
            output = proj!.call(DehazeFormerInit.ChannelsLast(conv!.call(v) + attnOut));
        }
        else if (_convType == DehazeFormerOptions.Conv)
        {
            output = conv!.call(x);
        }
        else
        {
            output = proj!.call(conv!.call(V!.call(x)));
        }
        return output.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The original's <c>TransformerBlock</c>: <c>x + rescale · attn(norm1(x)) + rebias</c> (RLN only in attention
/// blocks; plain <c>x + attn(x)</c> otherwise), then <c>x + mlp(x)</c> (<c>mlp_norm</c> is False in DehazeFormer, so no norm2).
/// </summary>
internal sealed class TransformerBlock : nn.Module<Tensor, Tensor>
{
    private readonly RLN? norm1;
    private readonly Attention attn;
    private readonly Mlp mlp;

    public TransformerBlock(int networkDepth, int dim, int numHeads, double mlpRatio, int windowSize, int shiftSize, bool useAttn, string convType)
        : base(nameof(TransformerBlock))
    {
        norm1 = useAttn ? new RLN(dim) : null;
        attn = new Attention(networkDepth, dim, numHeads, windowSize, shiftSize, useAttn, convType);
        mlp = new Mlp(networkDepth, dim, (int)(dim * mlpRatio));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var identity = x;
        Tensor y;
        if (norm1 is not null)
        {
            var (normed, rescale, rebias) = norm1.call(x);
            y = attn.call(normed) * rescale + rebias;
        }
        else
        {
            y = attn.call(x);
        }
        x = identity + y;
        x = x + mlp.call(x);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>The original's <c>BasicLayer</c>: <c>blocks</c>, block i shifted by <c>window_size // 2</c> when i is odd.</summary>
internal sealed class BasicLayer : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<TransformerBlock> blocks;

    public BasicLayer(int networkDepth, DehazeFormerOptions options, int stage) : base(nameof(BasicLayer))
    {
        int dim = options.EmbedDims[stage];
        blocks = new ModuleList<TransformerBlock>();
        for (int i = 0; i < options.Depths[stage]; i++)
            blocks.Add(new TransformerBlock(networkDepth, dim, options.NumHeads[stage], options.MlpRatios[stage], options.WindowSize,
                i % 2 == 0 ? 0 : options.WindowSize / 2, options.UsesAttention(stage, i), options.ConvType[stage]));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        foreach (var block in blocks) x = block.call(x);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>The original's <c>PatchEmbed</c>: one conv (<c>proj</c>), stride = patch size, reflect padding <c>(k − p + 1) // 2</c>.</summary>
internal sealed class PatchEmbed : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d proj;

    public PatchEmbed(int patchSize, int inChans, int embedDim, int? kernelSize = null) : base(nameof(PatchEmbed))
    {
        int k = kernelSize ?? patchSize;
        proj = nn.Conv2d(inChans, embedDim, k, stride: patchSize, padding: (k - patchSize + 1) / 2, padding_mode: PaddingModes.Reflect);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return proj.call(DehazeFormerInit.ChannelsLast(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>The original's <c>PatchUnEmbed</c>: <c>proj = Sequential(conv to out·p² channels (reflect padding k // 2), PixelShuffle(p))</c>.</summary>
internal sealed class PatchUnEmbed : nn.Module<Tensor, Tensor>
{
    private readonly Sequential proj;

    public PatchUnEmbed(int patchSize, int outChans, int embedDim, int? kernelSize = null) : base(nameof(PatchUnEmbed))
    {
        int k = kernelSize ?? 1;
        proj = nn.Sequential(
            nn.Conv2d(embedDim, outChans * patchSize * patchSize, k, padding: k / 2, padding_mode: PaddingModes.Reflect),
            nn.PixelShuffle(patchSize));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return proj.call(DehazeFormerInit.ChannelsLast(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The original's <c>SKFusion</c> (selective-kernel fusion of <c>height</c> = 2 maps): a softmax over the maps of
/// <c>mlp(avgpool(Σ maps))</c> weights each channel; <c>mlp</c> = Conv(dim, max(dim / 8, 4)), ReLU, Conv(…, 2·dim), no biases.
/// </summary>
internal sealed class SKFusion : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly AdaptiveAvgPool2d avg_pool;
    private readonly Sequential mlp;
    private const int Height = 2;

    public SKFusion(int dim, int reduction = 8) : base(nameof(SKFusion))
    {
        int d = Math.Max(dim / reduction, 4);
        avg_pool = nn.AdaptiveAvgPool2d(1);
        mlp = nn.Sequential(nn.Conv2d(dim, d, 1, bias: false), nn.ReLU(), nn.Conv2d(d, dim * Height, 1, bias: false));
        RegisterComponents();
    }

    public override Tensor forward(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        long n = a.shape[0], c = a.shape[1], h = a.shape[2], w = a.shape[3];
        var feats = cat([a, b], 1).reshape(n, Height, c, h, w);
        var attn = mlp.call(avg_pool.call(feats.sum(1))).reshape(n, Height, c, 1, 1).softmax(1);
        return (feats * attn).sum(1).MoveToOuterDisposeScope();
    }
}
