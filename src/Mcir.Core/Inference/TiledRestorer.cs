using Mcir.Abstractions.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Inference;

/// <summary>How <see cref="TiledRestorer"/> runs a network over an image.</summary>
public sealed record TileOptions
{
    /// <summary>
    /// Tile edge in input pixels; null or 0 = the whole image in one forward pass. An image side no longer than the tile
    /// is not split along that side.
    /// </summary>
    public int? TileSize { get; init; }

    /// <summary>Input pixels shared by neighbouring tiles (at least; the last tile of a row/column may share more). Default 16.</summary>
    public int Overlap { get; init; } = 16;

    /// <summary>Output size / input size; null (default) = inferred from the first forward pass and then checked.</summary>
    public int? Scale { get; init; }

    /// <summary>
    /// Each forward pass gets an input whose height and width are multiples of this (e.g. the window size 8 of
    /// Swin-type networks): the input is reflect-padded at the bottom and right, the output cropped back to
    /// scale × the unpadded size. Default 1 (no padding beyond what the network itself asks for through
    /// <see cref="IInputSizeMultiple"/>, which is always applied; with both, the least common multiple).
    /// </summary>
    public int PadMultiple { get; init; } = 1;

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (TileSize is { } t && t < 0) throw new ArgumentException($"tile size must be 0 (whole image) or positive, got {t}");
        if (Overlap < 0) throw new ArgumentException($"tile overlap must be 0 or more, got {Overlap}");
        if (TileSize is > 0 and var n && Overlap >= n)
            throw new ArgumentException($"tile overlap {Overlap} must be smaller than the tile size {n}");
        if (Scale is { } s && s < 1) throw new ArgumentException($"scale must be 1 or more, got {s}");
        if (PadMultiple < 1) throw new ArgumentException($"pad multiple must be 1 or more, got {PadMultiple}");
    }
}

/// <summary>
/// Runs an image-to-image network (<c>[B, C, H, W] → [B, C', s·H, s·W]</c> for an integer scale s, 1 included) over a
/// whole image or tile by tile, in <c>eval()</c> mode under <c>no_grad</c>, each tile in its own dispose scope.
/// </summary>
/// <remarks>
/// <para><b>Tile placement.</b> Along each axis of length L, tiles of size N (on the input) start at 0, N − O, 2(N − O), …
/// (O = overlap); the last tile is shifted inward to end exactly at L (never padded), so every tile is N pixels long
/// and neighbours share at least O pixels. A side with L ≤ N is one tile.</para>
/// <para><b>Blending.</b> Each tile's output is multiplied by a separable weight window and accumulated; the result
/// is divided by the summed weights. Along a side that borders another tile the window is 0 on the outer
/// m = ⌊O/4⌋ input pixels (where the tile saw zero padding instead of its neighbour's pixels), then rises as a raised
/// cosine over the next O − 2m pixels to 1; sides on the image border have weight 1 up to the edge. Where two tiles
/// share exactly O pixels their ramps are complementary (they sum to 1), so the transition is a smooth cross-fade
/// over the middle half of the overlap — no hard seam even for networks whose receptive field exceeds the overlap.
/// Consequence: for a network whose receptive field reaches at most m input pixels from the output pixel
/// (a radius, e.g. 3 for three 3×3 convolutions), the tiled output equals the whole-image output up to float rounding;
/// larger receptive fields give small differences confined to the cross-fade bands.</para>
/// <para><b>Pad to multiple.</b> A network that implements <see cref="IInputSizeMultiple"/> (SwinIR: its window size) gets
/// every forward input (tile or whole image) reflect-padded at the bottom/right to a multiple of its
/// <see cref="IInputSizeMultiple.InputSizeMultiple"/> and the output cropped back to scale × the unpadded size, as
/// BasicSR's <c>SwinIRModel.test</c> (<c>F.pad(img, (0, mod_pad_w, 0, mod_pad_h), 'reflect')</c>); edge replication
/// where the input is too small to reflect. <see cref="TileOptions.PadMultiple"/> k &gt; 1 asks for a multiple of k as
/// well. This is the engine's one inference path: validation during training, <c>test</c> and <c>restore</c> use it.</para>
/// <para><b>Fixed-size networks.</b> A network that implements <see cref="IWindowedInference"/> (IDT) is always run in its
/// own windows and merged with its own weights (see that interface); <see cref="TileOptions.TileSize"/>,
/// <see cref="TileOptions.Overlap"/> and <see cref="TileOptions.PadMultiple"/> do not apply to it.</para>
/// </remarks>
public static class TiledRestorer
{
    /// <summary>
    /// Restores <paramref name="input"/> ([B, C, H, W] or [C, H, W]) with <paramref name="net"/>. Returns a new float32
    /// tensor on the input's device with the input's rank; the caller owns it. The network's training mode is
    /// restored afterwards.
    /// </summary>
    /// <exception cref="McirException">The network's output size is not an integer multiple of its input size, or
    /// changes scale between tiles, or differs from <see cref="TileOptions.Scale"/>.</exception>
    public static Tensor Restore(nn.Module<Tensor, Tensor> net, Tensor input, TileOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(net);
        ArgumentNullException.ThrowIfNull(input);
        options ??= new TileOptions();
        options.Validate();
        if (input.dim() == 3)
        {
            using var batched = input.unsqueeze(0);
            using var result = Restore(net, batched, options);
            return result.squeeze(0);
        }
        if (input.dim() != 4) throw new ArgumentException($"expected a [B, C, H, W] or [C, H, W] tensor, got shape ({string.Join(", ", input.shape)})");

        bool wasTraining = net.training;
        net.eval();
        try
        {
            using var noGrad = no_grad();
            if (net is IWindowedInference windowed) return Windowed(net, input, windowed, options.Scale);
            int h = (int)input.shape[2], w = (int)input.shape[3];
            int n = options.TileSize ?? 0;
            int multiple = Lcm(options.PadMultiple, InputMultipleOf(net));
            if (n == 0 || (h <= n && w <= n))
            {
                using var scope = NewDisposeScope();
                var whole = Forward(net, input, multiple, options.Scale, out _).to(ScalarType.Float32);
                if (ReferenceEquals(whole, input)) whole = input.clone(); // a network that returns its input
                return whole.MoveToOuterDisposeScope();
            }
            return Tiled(net, input, n, multiple, options);
        }
        finally
        {
            if (wasTraining) net.train();
        }
    }

    /// <summary>The start offsets of the tiles along an axis of <paramref name="length"/> pixels (see the class remarks).</summary>
    public static IReadOnlyList<int> TileStarts(int length, int tile, int overlap)
    {
        if (length <= tile) return [0];
        int stride = tile - overlap;
        if (stride <= 0) throw new ArgumentException($"tile overlap {overlap} must be smaller than the tile size {tile}");
        var starts = new List<int>();
        for (int s = 0; ; s += stride)
        {
            if (s + tile >= length) { starts.Add(length - tile); break; }
            starts.Add(s);
        }
        return starts;
    }

    /// <summary>
    /// The 1-D blending window of a tile of <paramref name="length"/> output pixels (see the class remarks):
    /// <paramref name="rampStart"/>/<paramref name="rampEnd"/> say whether that side borders another tile.
    /// </summary>
    public static float[] Window(int length, int overlap, bool rampStart, bool rampEnd)
    {
        var w = new float[length];
        int margin = overlap / 4, ramp = overlap - 2 * margin;
        for (int i = 0; i < length; i++)
        {
            double v = 1;
            if (rampStart) v = Math.Min(v, Ramp(i, margin, ramp));
            if (rampEnd) v = Math.Min(v, Ramp(length - 1 - i, margin, ramp));
            w[i] = (float)v;
        }
        return w;
    }

    // Weight at distance d (output pixels) from a tile side that borders another tile.
    private static double Ramp(double d, double margin, double ramp)
    {
        if (d < margin) return 0;
        if (ramp <= 0) return 1;
        double t = (d - margin + 0.5) / ramp;
        return t >= 1 ? 1 : 0.5 - 0.5 * Math.Cos(Math.PI * t);
    }

    /// <summary>
    /// The multiple a network's input height and width must have: its <see cref="IInputSizeMultiple.InputSizeMultiple"/>,
    /// else 1.
    /// </summary>
    /// <exception cref="McirException">The network reports a multiple below 1.</exception>
    public static int InputMultipleOf(nn.Module<Tensor, Tensor> net)
    {
        ArgumentNullException.ThrowIfNull(net);
        if (net is not IInputSizeMultiple m) return 1;
        int k = m.InputSizeMultiple;
        return k >= 1 ? k : throw new McirException($"{net.GetType().Name} reports an input size multiple of {k}; expected 1 or more");
    }

    private static int Lcm(int a, int b)
    {
        int x = a, y = b;
        while (y != 0) (x, y) = (y, x % y);
        return checked(a / x * b);
    }

    private static Tensor Tiled(nn.Module<Tensor, Tensor> net, Tensor input, int n, int multiple, TileOptions options)
    {
        long b = input.shape[0];
        int h = (int)input.shape[2], w = (int)input.shape[3];
        int th = Math.Min(n, h), tw = Math.Min(n, w);
        var ys = TileStarts(h, th, options.Overlap);
        var xs = TileStarts(w, tw, options.Overlap);
        int? scale = options.Scale;

        Tensor? acc = null, weight = null;
        try
        {
            for (int iy = 0; iy < ys.Count; iy++)
            {
                for (int ix = 0; ix < xs.Count; ix++)
                {
                    using var scope = NewDisposeScope();
                    var tile = input.narrow(2, ys[iy], th).narrow(3, xs[ix], tw);
                    var output = Forward(net, tile, multiple, scale, out int s).to(ScalarType.Float32);
                    scale = s;
                    if (acc is null)
                    {
                        acc = zeros([b, output.shape[1], (long)h * s, (long)w * s], ScalarType.Float32, input.device);
                        weight = zeros([1, 1, (long)h * s, (long)w * s], ScalarType.Float32, input.device);
                        acc.MoveToOuterDisposeScope();
                        weight.MoveToOuterDisposeScope();
                    }
                    var wy = Window(th * s, options.Overlap * s, iy > 0, iy < ys.Count - 1);
                    var wx = Window(tw * s, options.Overlap * s, ix > 0, ix < xs.Count - 1);
                    var window = tensor(wy, [th * s, 1L], ScalarType.Float32, input.device)
                        .mul(tensor(wx, [1L, tw * s], ScalarType.Float32, input.device))
                        .view(1, 1, th * s, tw * s);
                    acc.narrow(2, (long)ys[iy] * s, (long)th * s).narrow(3, (long)xs[ix] * s, (long)tw * s).add_(output.mul(window));
                    weight!.narrow(2, (long)ys[iy] * s, (long)th * s).narrow(3, (long)xs[ix] * s, (long)tw * s).add_(window);
                }
            }
            acc!.div_(weight!);
            var result = acc;
            acc = null;
            return result;
        }
        finally
        {
            acc?.Dispose();
            weight?.Dispose();
        }
    }

    /// <summary>
    /// The merge weights of one output window of side <paramref name="n"/> (see <see cref="WindowMerge"/>), [1, 1, n, n]
    /// float32: IDT's <c>get_scoremap</c>, whose values are computed in float64 and stored in a float32 tensor.
    /// </summary>
    public static Tensor WindowWeights(int n, WindowMerge merge)
    {
        var v = new float[n * n];
        double c = n / 2.0;
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++)
                v[y * n + x] = merge == WindowMerge.Mean ? 1f : (float)(1.0 / Math.Sqrt((y - c) * (y - c) + (x - c) * (x - c) + 1e-3));
        return tensor(v, [1L, 1, n, n], ScalarType.Float32);
    }

    // IDT's full-size test (test_full_size.py splitimage/mergeimage): windows of the network's one input size, the
    // weighted sum of the window outputs divided by the summed weights, accumulated window by window in float32.
    private static Tensor Windowed(nn.Module<Tensor, Tensor> net, Tensor input, IWindowedInference spec, int? expectedScale)
    {
        int n = spec.InferenceWindow, m = spec.InferenceOverlap;
        if (n < 1 || m < 0 || m >= n)
            throw new McirException($"{net.GetType().Name} reports inference windows of {n} pixels with overlap {m}; expected a window of 1 or more and 0 <= overlap < window");
        long b = input.shape[0];
        int h = (int)input.shape[2], w = (int)input.shape[3];
        int ph = Math.Max(0, n - h), pw = Math.Max(0, n - w);
        using var scope = NewDisposeScope();
        var x = ph == 0 && pw == 0
            ? input
            : nn.functional.pad(input, [0, pw, 0, ph], ph < h && pw < w ? PaddingModes.Reflect : PaddingModes.Replicate);
        var ys = TileStarts(h + ph, n, m);
        var xs = TileStarts(w + pw, n, m);
        Tensor? acc = null, total = null, weights = null;
        int? scale = expectedScale;
        foreach (int y0 in ys)
        {
            foreach (int x0 in xs)
            {
                using var tileScope = NewDisposeScope();
                var output = Forward(net, x.narrow(2, y0, n).narrow(3, x0, n), 1, scale, out int s).to(ScalarType.Float32);
                scale = s;
                if (acc is null)
                {
                    acc = zeros([b, output.shape[1], (long)(h + ph) * s, (long)(w + pw) * s], ScalarType.Float32, input.device).MoveToOuterDisposeScope();
                    total = zeros([1, 1, (long)(h + ph) * s, (long)(w + pw) * s], ScalarType.Float32, input.device).MoveToOuterDisposeScope();
                    weights = WindowWeights(n * s, spec.InferenceMerge).to(input.device).MoveToOuterDisposeScope();
                }
                acc.narrow(2, (long)y0 * s, (long)n * s).narrow(3, (long)x0 * s, (long)n * s).add_(weights!.mul(output));
                total!.narrow(2, (long)y0 * s, (long)n * s).narrow(3, (long)x0 * s, (long)n * s).add_(weights!);
            }
        }
        var merged = acc!.div_(total!);
        if (ph > 0 || pw > 0) merged = merged.narrow(2, 0, (long)h * scale!.Value).narrow(3, 0, (long)w * scale.Value).contiguous();
        return merged.MoveToOuterDisposeScope();
    }

    // One forward pass with optional pad-to-multiple; returns the cropped output and its (checked) integer scale.
    private static Tensor Forward(nn.Module<Tensor, Tensor> net, Tensor x, int multiple, int? expectedScale, out int scale)
    {
        long h = x.shape[2], w = x.shape[3];
        long ph = (multiple - h % multiple) % multiple, pw = (multiple - w % multiple) % multiple;
        var padded = ph == 0 && pw == 0
            ? x
            : nn.functional.pad(x, [0, pw, 0, ph], ph < h && pw < w ? PaddingModes.Reflect : PaddingModes.Replicate);
        var y = net.call(Compute.ConvolutionLayout.ForModel(padded));
        if (y.dim() != 4 || y.shape[0] != x.shape[0])
            throw new McirException($"the network returned shape ({string.Join(", ", y.shape)}) for an input of shape ({string.Join(", ", padded.shape)}); expected [B, C, s·H, s·W]");
        long oh = y.shape[2], ow = y.shape[3], ih = padded.shape[2], iw = padded.shape[3];
        if (oh % ih != 0 || ow % iw != 0 || oh / ih != ow / iw || oh < ih)
            throw new McirException($"the network returned {oh}x{ow} for a {ih}x{iw} input: not an integer scale of it");
        scale = (int)(oh / ih);
        if (expectedScale is { } e && e != scale)
            throw new McirException($"the network returned {oh}x{ow} for a {ih}x{iw} input (scale {scale}), expected scale {e}");
        return ph == 0 && pw == 0 ? y : y.narrow(2, 0, h * scale).narrow(3, 0, w * scale);
    }
}
