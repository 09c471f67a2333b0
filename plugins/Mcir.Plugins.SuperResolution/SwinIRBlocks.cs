using Mcir.Abstractions.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mcir.Plugins.SuperResolution;

// The building blocks of SwinIR, with BasicSR's class and attribute names (field names are the state_dict names;
// RegisterComponents() registers non-null Module / Parameter / Tensor fields in declaration order).

/// <summary>Window helpers of BasicSR's <c>swinir_arch.py</c>: partition/reverse and the shifted-window mask.</summary>
internal static class SwinWindows
{
    /// <summary><c>window_partition</c>: [b, h, w, c] → [b·(h/ws)·(w/ws), ws, ws, c].</summary>
    public static Tensor Partition(Tensor x, long windowSize)
    {
        long b = x.shape[0], h = x.shape[1], w = x.shape[2], c = x.shape[3];
        return x.view(b, h / windowSize, windowSize, w / windowSize, windowSize, c)
            .permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, windowSize, windowSize, c);
    }

    /// <summary><c>window_reverse</c>: [b·nw, ws, ws, c] → [b, h, w, c].</summary>
    public static Tensor Reverse(Tensor windows, long windowSize, long h, long w)
    {
        long b = windows.shape[0] / (h / windowSize * (w / windowSize));
        return windows.view(b, h / windowSize, w / windowSize, windowSize, windowSize, -1)
            .permute(0, 1, 3, 2, 4, 5).contiguous().view(b, h, w, -1);
    }

    /// <summary>
    /// <c>SwinTransformerBlock.calculate_mask</c>: [nw, ws², ws²] with 0 where two tokens of a shifted window come from
    /// the same region of the un-shifted image and −100 elsewhere. Regions along each axis are
    /// <c>[0, h−ws)</c>, <c>[h−ws, h−shift)</c>, <c>[h−shift, h)</c> (Python's <c>slice(0, -ws)</c>, …).
    /// </summary>
    public static Tensor AttentionMask(long h, long w, int windowSize, int shiftSize, ScalarType dtype, Device device)
    {
        static int Region(long i, long size, int ws, int shift) => i < size - ws ? 0 : i < size - shift ? 1 : 2;

        long nh = h / windowSize, nw = w / windowSize;
        int n = windowSize * windowSize;
        var ids = new int[nh * nw, n]; // region id of every token of every window (window_partition order)
        for (long y = 0; y < h; y++)
            for (long x = 0; x < w; x++)
            {
                long win = y / windowSize * nw + x / windowSize;
                int tok = (int)(y % windowSize) * windowSize + (int)(x % windowSize);
                ids[win, tok] = Region(y, h, windowSize, shiftSize) * 3 + Region(x, w, windowSize, shiftSize);
            }

        var mask = new float[nh * nw * n * n];
        long o = 0;
        for (long win = 0; win < nh * nw; win++)
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                    mask[o++] = ids[win, j] == ids[win, i] ? 0f : -100f;
        return tensor(mask, new[] { nh * nw, n, n }, dtype: dtype, device: device);
    }



}

/// <summary>BasicSR's <c>Mlp</c>: <c>fc2(drop(gelu(fc1(x))))</c> then dropout.</summary>
internal sealed class Mlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear fc1;
    private readonly Linear fc2;
    private readonly double _drop;

    public Mlp(int inFeatures, int hiddenFeatures, double drop) : base(nameof(Mlp))
    {
        fc1 = nn.Linear(inFeatures, hiddenFeatures);
        fc2 = nn.Linear(hiddenFeatures, inFeatures);
        _drop = drop;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = nn.functional.dropout(nn.functional.gelu(fc1.call(x)), _drop, training);
        return nn.functional.dropout(fc2.call(h), _drop, training).MoveToOuterDisposeScope();
    }
}

/// <summary>BasicSR's <c>WindowAttention</c>: multi-head self-attention inside windows, with relative position bias.</summary>
internal sealed class WindowAttention : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly Parameter relative_position_bias_table;
    private readonly Tensor relative_position_index;
    private readonly Linear qkv;
    private readonly Linear proj;

    private readonly int _windowSize;
    private readonly int _numHeads;
    private readonly double _scale;
    private readonly double _attnDrop;
    private readonly double _projDrop;

    public WindowAttention(int dim, int windowSize, int numHeads, bool qkvBias, double? qkScale, double attnDrop, double projDrop)
        : base(nameof(WindowAttention))
    {
        _windowSize = windowSize;
        _numHeads = numHeads;
        int headDim = dim / numHeads;
        _scale = qkScale ?? Math.Pow(headDim, -0.5);
        _attnDrop = attnDrop;
        _projDrop = projDrop;

        relative_position_bias_table = new Parameter(zeros((2 * windowSize - 1) * (2 * windowSize - 1), numHeads));
        relative_position_index = RelativePositionIndex(windowSize);
        qkv = nn.Linear(dim, dim * 3, hasBias: qkvBias);
        proj = nn.Linear(dim, dim);
        ModelInit.TruncNormal_(relative_position_bias_table, std: 0.02);
        RegisterComponents();
    }

    /// <summary>
    /// [ws², ws²] int64: for tokens i = (yi, xi) and j = (yj, xj) of a window,
    /// <c>(yi − yj + ws − 1)·(2·ws − 1) + (xi − xj + ws − 1)</c> (BasicSR's <c>relative_position_index</c>).
    /// </summary>
    private static Tensor RelativePositionIndex(int ws)
    {
        int n = ws * ws;
        var index = new long[n * n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                index[i * n + j] = (i / ws - j / ws + ws - 1) * (2L * ws - 1) + (i % ws - j % ws + ws - 1);
        return tensor(index, new long[] { n, n }, dtype: ScalarType.Int64);
    }

    /// <summary>x: [b·nw, ws², c]; mask: [nw, ws², ws²] of 0/−100, or null for unshifted windows.</summary>
    public override Tensor forward(Tensor x, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        long b_ = x.shape[0], n = x.shape[1], c = x.shape[2];
        var qkvOut = qkv.call(x).reshape(b_, n, 3, _numHeads, c / _numHeads).permute(2, 0, 3, 1, 4);
        var q = qkvOut[0];
        var k = qkvOut[1];
        var v = qkvOut[2];

        q = q * _scale;
        var attn = q.matmul(k.transpose(-2, -1));

        long wsq = (long)_windowSize * _windowSize;
        var index = relative_position_index.to(ScalarType.Int64, relative_position_bias_table.device).view(-1);
        var bias = relative_position_bias_table.index_select(0, index).view(wsq, wsq, -1).permute(2, 0, 1).contiguous();
        attn = attn + bias.unsqueeze(0);

        if (mask is not null)
        {
            long nw = mask.shape[0];
            attn = attn.view(b_ / nw, nw, _numHeads, n, n) + mask.unsqueeze(1).unsqueeze(0);
            attn = attn.view(-1, _numHeads, n, n);
        }

        attn = nn.functional.dropout(attn.softmax(-1), _attnDrop, training);
        var y = attn.matmul(v).transpose(1, 2).reshape(b_, n, c);
        y = nn.functional.dropout(proj.call(y), _projDrop, training);
        return y.MoveToOuterDisposeScope();
    }
}

/// <summary>BasicSR's <c>SwinTransformerBlock</c> (W-MSA for even indices, SW-MSA with cyclic shift for odd ones).</summary>
internal sealed class SwinTransformerBlock : nn.Module
{
    private readonly LayerNorm norm1;
    private readonly WindowAttention attn;
    private readonly LayerNorm norm2;
    private readonly Mlp mlp;

    private readonly double _dropPath;

    public SwinTransformerBlock(int dim, int numHeads, int windowSize, int shiftSize, double mlpRatio, bool qkvBias,
        double? qkScale, double drop, double attnDrop, double dropPath) : base(nameof(SwinTransformerBlock))
    {
        WindowSize = windowSize;
        ShiftSize = shiftSize;
        _dropPath = dropPath;
        norm1 = nn.LayerNorm(dim);
        attn = new WindowAttention(dim, windowSize, numHeads, qkvBias, qkScale, attnDrop, drop);
        norm2 = nn.LayerNorm(dim);
        mlp = new Mlp(dim, (int)(dim * mlpRatio), drop);
        RegisterComponents();
    }

    /// <summary>The window side (already reduced to the input resolution when that is not larger).</summary>
    public int WindowSize { get; }

    /// <summary>The cyclic shift (0 for W-MSA blocks).</summary>
    public int ShiftSize { get; }

    /// <summary>x: [b, h·w, c] → same. <paramref name="mask"/> is used only when <see cref="ShiftSize"/> &gt; 0.</summary>
    public Tensor Forward(Tensor x, long h, long w, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], c = x.shape[2];
        var shortcut = x;
        var y = norm1.call(x).view(b, h, w, c);
        if (ShiftSize > 0)
            y = y.roll(new long[] { -ShiftSize, -ShiftSize }, new long[] { 1, 2 });

        var windows = SwinWindows.Partition(y, WindowSize).view(-1, (long)WindowSize * WindowSize, c);
        var attnWindows = attn.call(windows, ShiftSize > 0 ? mask : null).view(-1, WindowSize, WindowSize, c);
        y = SwinWindows.Reverse(attnWindows, WindowSize, h, w);

        if (ShiftSize > 0)
            y = y.roll(new long[] { ShiftSize, ShiftSize }, new long[] { 1, 2 });
        y = y.view(b, h * w, c);

        var x1 = shortcut + StochasticDepth.DropPath(y, _dropPath, training);
        var x2 = x1 + StochasticDepth.DropPath(mlp.call(norm2.call(x1)), _dropPath, training);
        return x2.MoveToOuterDisposeScope();
    }
}

/// <summary>BasicSR's <c>BasicLayer</c> without downsampling: the blocks of one residual group.</summary>
internal sealed class BasicLayer : nn.Module
{
    private readonly ModuleList<SwinTransformerBlock> blocks;

    public BasicLayer(ModuleList<SwinTransformerBlock> blocks) : base(nameof(BasicLayer))
    {
        this.blocks = blocks;
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, long h, long w, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        foreach (var block in blocks) x = block.Forward(x, h, w, mask);
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// BasicSR's <c>RSTB</c> (residual Swin Transformer block): <c>embed(conv(unembed(residual_group(x)))) + x</c>, with
/// <c>conv</c> a 3×3 conv (<c>1conv</c>) or conv/LeakyReLU(0.2)/1×1 conv/LeakyReLU(0.2)/conv (<c>3conv</c>).
/// </summary>
internal sealed class RSTB : nn.Module
{
    private readonly BasicLayer residual_group;
    private readonly nn.Module<Tensor, Tensor> conv;

    public RSTB(int dim, BasicLayer residualGroup, string resiConnection) : base(nameof(RSTB))
    {
        residual_group = residualGroup;
        conv = SwinIR.ResidualConv(dim, resiConnection);
        RegisterComponents();
    }

    /// <summary>x: [b, h·w, c] → same.</summary>
    public Tensor Forward(Tensor x, long h, long w, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        var y = residual_group.Forward(x, h, w, mask);
        var image = y.transpose(1, 2).view(y.shape[0], y.shape[2], h, w); // PatchUnEmbed
        var tokens = conv.call(image).flatten(2).transpose(1, 2); // PatchEmbed without norm
        return (tokens + x).MoveToOuterDisposeScope();
    }
}

/// <summary>BasicSR's <c>PatchEmbed</c> of the network: flatten to tokens, then the optional LayerNorm (<c>norm</c>).</summary>
internal sealed class PatchEmbed : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm? norm;

    public PatchEmbed(int embedDim, bool patchNorm) : base(nameof(PatchEmbed))
    {
        norm = patchNorm ? nn.LayerNorm(embedDim) : null;
        RegisterComponents();
    }

    /// <summary>[b, c, h, w] → [b, h·w, c].</summary>
    public override Tensor forward(Tensor x)
    {
        var tokens = x.flatten(2).transpose(1, 2);
        if (norm is null) return tokens;
        using var scope = NewDisposeScope();
        return norm.call(tokens).MoveToOuterDisposeScope();
    }
}
