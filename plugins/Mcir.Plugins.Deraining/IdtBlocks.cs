using Mcir.Abstractions.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mcir.Plugins.Deraining;

// The building blocks of IDT (jiexiaou/IDT model.py @ d72510c) with the original's class and attribute names: field names
// are the state_dict names, and RegisterComponents() registers the non-null Module / Parameter / Tensor fields in
// declaration order (the original's registration order). Tokens are [B, L, C] with L = side² in row-major order, as in the
// original; every map IDT builds is square, so the side is sqrt(L).

/// <summary>Initialisation and small helpers of the original (timm 0.4.13's <c>DropPath</c>; <c>trunc_normal_</c> is the contract's <see cref="ModelInit"/>).</summary>
internal static class IdtInit
{
    /// <summary>IDT's <c>_init_weights</c> for a Linear: weight trunc_normal(std 0.02), bias 0.</summary>
    public static Linear Linear(long inFeatures, long outFeatures, bool hasBias = true)
    {
        var linear = nn.Linear(inFeatures, outFeatures, hasBias);
        ModelInit.TruncNormal_(linear.weight!, std: 0.02);
        if (linear.bias is not null)
        {
            using var guard = no_grad();
            linear.bias.zero_();
        }
        return linear;
    }


    /// <summary>Side of the square token map of a [B, L, C] sequence (the original's <c>int(math.sqrt(L))</c>).</summary>
    public static long Side(Tensor x) => (long)Math.Sqrt(x.shape[1]);

    /// <summary>[B, L, C] tokens → [B, C, side, side] (the original's <c>x.transpose(1, 2).view(B, C, H, W)</c>).</summary>
    public static Tensor ToMap(Tensor tokens)
    {
        long side = Side(tokens);
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], side, side);
    }

    /// <summary>[B, C, H, W] → [B, H·W, C] (the original's <c>flatten(2).transpose(1, 2)</c>).</summary>
    public static Tensor ToTokens(Tensor map) => map.flatten(2).transpose(1, 2);
}

/// <summary>
/// The original's <c>LinearProjection</c>: <c>to_q</c> (dim → dim) and <c>to_kv</c> (dim → 3·dim); the third third is V
/// again for the position branch, reshaped to a [B_, C, side, side] map (<c>v_r</c>).
/// </summary>
internal sealed class LinearProjection : nn.Module
{
    private readonly Linear to_q;
    private readonly Linear to_kv;
    private readonly int _heads;

    public LinearProjection(int dim, int heads, bool bias) : base(nameof(LinearProjection))
    {
        _heads = heads;
        int inner = dim / heads * heads;
        to_q = IdtInit.Linear(dim, inner, bias);
        to_kv = IdtInit.Linear(dim, inner * 3, bias);
        RegisterComponents();
    }

    /// <summary>x [B_, N, C] → q, k, v [B_, heads, N, C/heads] and v_r [B_, C, √N, √N].</summary>
    public (Tensor Q, Tensor K, Tensor V, Tensor VR) Forward(Tensor x)
    {
        long b = x.shape[0], n = x.shape[1], c = x.shape[2], side = IdtInit.Side(x);
        var q = to_q.call(x).reshape(b, n, 1, _heads, c / _heads).permute(2, 0, 3, 1, 4)[0];
        var kv = to_kv.call(x).reshape(b, n, 3, _heads, c / _heads).permute(2, 0, 3, 1, 4);
        var vR = kv[2].transpose(-1, -2).reshape(b, c, n).reshape(b, c, side, side);
        return (q, kv[0], kv[1], vR);
    }
}

/// <summary>
/// The original's <c>WindowAttention</c> (relative-position enhanced MSA): softmax(q·kᵀ·scale + relative-position bias)·v plus
/// a position branch <c>Position_Extract</c> (depthwise conv of kernel 2·min(win − 1, 2) + 1, then a 1×1 grouped by heads)
/// on V as a map; then <c>proj</c>. The bias table has (2·k_bound − 1)² rows; offsets are clamped to ±(k_bound − 1).
/// </summary>
internal sealed class WindowAttention : nn.Module<Tensor, Tensor>
{
    private readonly Parameter relative_position_bias_table;
    private readonly Sequential Position_Extract;
    private readonly LinearProjection qkv;
    private readonly Linear proj;

    // A plain attribute in the original (not in the state dict): assigned after RegisterComponents so it is no buffer.
    private readonly Tensor _relativePositionIndex;
    private readonly int _numHeads;
    private readonly double _scale;
    private readonly int _win;

    public WindowAttention(int dim, int win, int numHeads, bool qkvBias, double? qkScale, int kBound = 8) : base(nameof(WindowAttention))
    {
        _numHeads = numHeads;
        _win = win;
        _scale = qkScale ?? Math.Pow(dim / numHeads, -0.5);
        relative_position_bias_table = new Parameter(zeros((2 * kBound - 1) * (2 * kBound - 1), numHeads));
        int distance = Math.Min(win - 1, 2);
        int kernel = distance > 0 ? 2 * distance + 1 : 1;
        Position_Extract = nn.Sequential(
            nn.Conv2d(dim, dim, kernel, stride: 1, padding: distance > 0 ? distance : 0, groups: dim),
            nn.Conv2d(dim, dim, 1L, stride: 1L, padding: 0L, groups: numHeads));
        qkv = new LinearProjection(dim, numHeads, qkvBias);
        proj = IdtInit.Linear(dim, dim);
        ModelInit.TruncNormal_(relative_position_bias_table, std: 0.02);
        RegisterComponents();
        _relativePositionIndex = tensor(RelativePositionIndex(win, kBound), [(long)win * win * win * win], ScalarType.Int64);
        _relativePositionIndex.DetachFromDisposeScope();
    }

    /// <summary>
    /// The original's <c>relative_position_index</c>, flattened: for tokens i = (yi, xi), j = (yj, xj) of a win×win window,
    /// <c>(clamp(yi − yj) + k − 1)·(2k − 1) + clamp(xi − xj) + k − 1</c> with offsets clamped to [−(k − 1), k − 1].
    /// </summary>
    internal static long[] RelativePositionIndex(int win, int kBound)
    {
        int n = win * win;
        var index = new long[n * n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                int dy = Math.Clamp(i / win - j / win, -kBound + 1, kBound - 1) + kBound - 1;
                int dx = Math.Clamp(i % win - j % win, -kBound + 1, kBound - 1) + kBound - 1;
                index[i * n + j] = (long)dy * (2 * kBound - 1) + dx;
            }
        return index;
    }

    /// <summary>x [B_, N, C] (N = win²) → [B_, N, C].</summary>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], n = x.shape[1], c = x.shape[2];
        var (q, k, v, vR) = qkv.Forward(x);
        var attn = (q * _scale).matmul(k.transpose(-2, -1));
        var index = _relativePositionIndex.device == relative_position_bias_table.device
            ? _relativePositionIndex
            : _relativePositionIndex.to(relative_position_bias_table.device);
        var bias = relative_position_bias_table.index_select(0, index).view((long)_win * _win, (long)_win * _win, -1).permute(2, 0, 1);
        attn = (attn + bias.unsqueeze(0)).softmax(-1);
        var position = Position_Extract.call(vR).reshape(b, c, n).transpose(-2, -1);
        var y = attn.matmul(v).transpose(1, 2).reshape(b, n, c) + position;
        return proj.call(y).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The original's <c>LeFF</c> (locally-enhanced feed-forward): <c>linear1</c> (Linear, GELU), tokens as a map,
/// <c>dwconv</c> (3×3 depthwise, GELU) added to its input, back to tokens, <c>linear2</c>.
/// </summary>
internal sealed class LeFF : nn.Module<Tensor, Tensor>
{
    private readonly Sequential linear1;
    private readonly Sequential dwconv;
    private readonly Sequential linear2;

    public LeFF(int dim, int hiddenDim) : base(nameof(LeFF))
    {
        linear1 = nn.Sequential(IdtInit.Linear(dim, hiddenDim), nn.GELU());
        dwconv = nn.Sequential(nn.Conv2d(hiddenDim, hiddenDim, 3, stride: 1, padding: 1, groups: hiddenDim), nn.GELU());
        linear2 = nn.Sequential(IdtInit.Linear(hiddenDim, dim));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var map = IdtInit.ToMap(linear1.call(x));
        map = dwconv.call(map) + map;
        return linear2.call(IdtInit.ToTokens(map)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The original's <c>IDTBlock</c> (window transformer block, never shifted in IDT): <c>x + attn(norm1(x))</c> inside
/// win×win windows, then <c>x + mlp(norm2(x))</c>, each branch with stochastic depth. A map no larger than the window is one
/// window of its own size.
/// </summary>
internal sealed class IDTBlock : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm norm1;
    private readonly WindowAttention attn;
    private readonly LayerNorm norm2;
    private readonly LeFF mlp;
    private readonly int _win;
    private readonly double _dropPath;

    public IDTBlock(int dim, int resolution, int numHeads, int winSize, double mlpRatio, bool qkvBias, double? qkScale, double dropPath)
        : base(nameof(IDTBlock))
    {
        _win = resolution <= winSize ? resolution : winSize;
        _dropPath = dropPath;
        norm1 = nn.LayerNorm(dim);
        attn = new WindowAttention(dim, _win, numHeads, qkvBias, qkScale);
        norm2 = nn.LayerNorm(dim);
        mlp = new LeFF(dim, (int)(dim * mlpRatio));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], l = x.shape[1], c = x.shape[2], side = IdtInit.Side(x), ws = _win, nw = side / ws;
        var shortcut = x;
        // window_partition: [B, H, W, C] → [B·nW, ws², C]; window_reverse back.
        var windows = norm1.call(x).reshape(b, nw, ws, nw, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c);
        var attended = attn.call(windows).reshape(b, nw, nw, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, l, c);
        x = shortcut + StochasticDepth.DropPath(attended, _dropPath, training);
        x = x + StochasticDepth.DropPath(mlp.call(norm2.call(x)), _dropPath, training);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The original's <c>SpatialTransformerLayer</c>: the map is cut into 8×8 pixel windows; per sample and channel, attention
/// runs over the grid of windows (tokens) with the 64 pixels of each window as features (<c>attn</c>, dim 64, k_bound of the
/// level). Its output is laid back as the original does — <c>reshape(B, C, nW, 64).permute(0, 2, 3, 1).view(B, L, C)</c>,
/// i.e. in window-major rather than raster order — and added to the input; then <c>x + mlp(norm2(x))</c> (hidden width
/// int(64·mlp_ratio)). No norm before the attention.
/// </summary>
internal sealed class SpatialTransformerLayer : nn.Module<Tensor, Tensor>
{
    private readonly WindowAttention attn;
    private readonly LayerNorm norm2;
    private readonly LeFF mlp;
    private readonly double _dropPath;

    public SpatialTransformerLayer(int resolution, int numHeads, int channel, double mlpRatio, bool qkvBias, double? qkScale, double dropPath, int kBound)
        : base(nameof(SpatialTransformerLayer))
    {
        const int win = IdtOptions.SpatialWindow;
        _dropPath = dropPath;
        attn = new WindowAttention(win * win, resolution / win, numHeads, qkvBias, qkScale, kBound);
        norm2 = nn.LayerNorm(channel);
        mlp = new LeFF(channel, (int)(win * win * mlpRatio));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        const long win = IdtOptions.SpatialWindow;
        long b = x.shape[0], l = x.shape[1], c = x.shape[2], side = IdtInit.Side(x), grid = side / win, nw = grid * grid;
        var shortcut = x;
        // F.unfold(x, 8, stride=8) as [B·C, nW, 64]: window index row-major over the grid, pixel index row-major in the window.
        var windows = IdtInit.ToMap(x).reshape(b, c, grid, win, grid, win).permute(0, 1, 3, 5, 2, 4)
            .reshape(b * c, win * win, nw).transpose(1, 2);
        var attended = attn.call(windows).reshape(b, c, nw, win * win).permute(0, 2, 3, 1).reshape(b, l, c);
        x = shortcut + StochasticDepth.DropPath(attended, _dropPath, training);
        x = x + StochasticDepth.DropPath(mlp.call(norm2.call(x)), _dropPath, training);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>The original's <c>BasicIDTLayer</c>: <c>blocks</c> = <c>num</c> IDT blocks, then (except in the bottleneck) one spatial transformer.</summary>
internal sealed class BasicIDTLayer : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<nn.Module<Tensor, Tensor>> blocks;

    public BasicIDTLayer(IdtOptions options, int level, int num, int kBound, bool useCross, double firstDropPath, double lastDropPath)
        : base(nameof(BasicIDTLayer))
    {
        int dim = options.Width(level), res = options.Resolution(level), heads = options.NumHeads[level];
        blocks = new ModuleList<nn.Module<Tensor, Tensor>>();
        for (int i = 0; i < num; i++)
            blocks.Add(new IDTBlock(dim, res, heads, options.WinSize, options.MlpRatio, options.QkvBias, options.QkScale, firstDropPath));
        if (useCross)
            blocks.Add(new SpatialTransformerLayer(res, heads, dim, options.MlpRatio, options.QkvBias, options.QkScale, lastDropPath, kBound));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        foreach (var block in blocks) x = block.call(x);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>The original's <c>Downsample</c>: <c>conv = Sequential(Conv 4×4, stride 2, padding 1)</c> on the token map.</summary>
internal sealed class Downsample : nn.Module<Tensor, Tensor>
{
    private readonly Sequential conv;

    public Downsample(int inChannel, int outChannel) : base(nameof(Downsample))
    {
        conv = nn.Sequential(nn.Conv2d(inChannel, outChannel, 4, stride: 2, padding: 1));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return IdtInit.ToTokens(conv.call(IdtInit.ToMap(x))).MoveToOuterDisposeScope();
    }
}

/// <summary>The original's <c>Upsample</c>: <c>deconv = Sequential(ConvTranspose 2×2, stride 2)</c> on the token map.</summary>
internal sealed class Upsample : nn.Module<Tensor, Tensor>
{
    private readonly Sequential deconv;

    public Upsample(int inChannel, int outChannel) : base(nameof(Upsample))
    {
        deconv = nn.Sequential(nn.ConvTranspose2d(inChannel, outChannel, 2, stride: 2));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return IdtInit.ToTokens(deconv.call(IdtInit.ToMap(x))).MoveToOuterDisposeScope();
    }
}

/// <summary>The original's <c>InputProj</c>: <c>proj = Sequential(Conv 3×3, LeakyReLU(0.01))</c>, image → tokens.</summary>
internal sealed class InputProj : nn.Module<Tensor, Tensor>
{
    private readonly Sequential proj;

    public InputProj(int inChannel, int outChannel) : base(nameof(InputProj))
    {
        proj = nn.Sequential(nn.Conv2d(inChannel, outChannel, 3, stride: 1, padding: 1), nn.LeakyReLU(0.01, inplace: true));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return IdtInit.ToTokens(proj.call(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>The original's <c>OutputProj</c>: <c>proj = Sequential(Conv 3×3)</c>, tokens → image.</summary>
internal sealed class OutputProj : nn.Module<Tensor, Tensor>
{
    private readonly Sequential proj;

    public OutputProj(int inChannel, int outChannel) : base(nameof(OutputProj))
    {
        proj = nn.Sequential(nn.Conv2d(inChannel, outChannel, 3, stride: 1, padding: 1));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return proj.call(IdtInit.ToMap(x)).MoveToOuterDisposeScope();
    }
}
