using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mcir.Core.Compute;

/// <summary>
/// A restoration network's <c>PixelShuffle</c> layers on the CPU (float32) without libtorch's slow kernels: libtorch's
/// channels-last <c>pixel_unshuffle</c> (the shuffle's backward) and its contiguous <c>pixel_shuffle</c> and
/// <c>pixel_unshuffle</c> move one value at a time (measured on a Zen 5 guest: channels-last backward, 4 × 64 channels at
/// 192 × 192, 7.3 ms where the forward shuffle of the same data takes 1.9 ms and a copy 1.4 ms; contiguous, 4 × 256
/// channels at 48×48, 2.9 ms forward and 2.5 ms backward where a copy takes 0.5 ms). Here they move SSE vectors
/// (<see cref="Unshuffle"/>, <see cref="Shuffle"/>: 4 × 4 transposes channels-last, row interleaving contiguous) for
/// the factor 2 of EDSR's, SwinIR's and RCAN's ×2/×4 upsamplers; other factors one value at a time. A channels-last
/// forward stays libtorch's. Values are the same bit for bit (a permutation). Registered by
/// <see cref="ChannelsLast.ForConvolutions"/> on every model the engine builds; it takes a channels-last call only when
/// the input needs a gradient, a contiguous one always, and leaves every other call (another device or dtype) to the
/// module.
/// </summary>
/// <remarks>
/// Routed by the module's hooks (<see cref="RoutedLayer"/>; TorchSharp's <c>PixelShuffle</c> is sealed): the module is
/// passed an empty batch, and <see cref="PixelShuffle(Tensor, long)"/> of the real input replaces its empty output. The state dict is untouched (the layer has no parameters).
/// </remarks>
public static unsafe class PixelShuffleLayers
{
    private static readonly ConditionalWeakTable<PixelShuffle, RoutedLayer> Hooked = new();

    /// <summary>Registers the routing once per layer on every <c>PixelShuffle</c> of <paramref name="model"/> (itself included).</summary>
    /// <returns><paramref name="model"/>, for chaining.</returns>
    public static T ForModel<T>(T model) where T : nn.Module
    {
        RoutedLayer.Register<PixelShuffle>(model, Hooked, shuffle => new Layer(shuffle.upscale_factor));
        return model;
    }

    /// <summary>
    /// <c>pixel_shuffle(input, factor)</c> with autograd: the forward by <see cref="Shuffle"/> for a contiguous float32 CPU
    /// input, else by libtorch; the backward by <see cref="Unshuffle"/> where it applies (else libtorch's
    /// <c>pixel_unshuffle</c>). Values bit for bit libtorch's.
    /// </summary>
    /// <param name="input">[N, C·r², H, W].</param>
    /// <param name="factor">r ≥ 1.</param>
    /// <returns>[N, C, H·r, W·r], in the input's layout (channels-last or contiguous).</returns>
    public static Tensor PixelShuffle(Tensor input, long factor)
    {
        ArgumentNullException.ThrowIfNull(input);
        using var scope = NewDisposeScope();
        return PixelShuffleFunction.apply(input, factor).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <c>pixel_unshuffle(input, factor)</c> of a float32 CPU tensor, channels-last or contiguous, written in the same
    /// layout: out[n, c·r² + i·r + j, y, x] = input[n, c, y·r + i, x·r + j].
    /// </summary>
    /// <param name="input">[N, C, H·r, W·r] float32 on the CPU, channels-last (<see cref="ChannelsLast.IsChannelsLast"/>) or contiguous.</param>
    /// <param name="factor">r ≥ 1; r = 2 runs by SSE shuffles (channels-last: 4 × 4 transposes, C a multiple of 4;
    /// contiguous: even and odd columns apart, W·r a multiple of 8), other cases one value at a time.</param>
    /// <returns>[N, C·r², H, W] float32 in the input's layout, without autograd history.</returns>
    /// <exception cref="ArgumentException">The input is not a channels-last or contiguous float32 CPU tensor whose height and width are multiples of <paramref name="factor"/>.</exception>
    public static Tensor Unshuffle(Tensor input, long factor)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (!UnshuffleApplies(input, factor))
            throw new ArgumentException($"pixel unshuffle: expected a channels-last or contiguous float32 CPU tensor [N, C, H, W] with H and W multiples of {factor}, got [{string.Join(", ", input.shape)}] {input.dtype} on {input.device}", nameof(input));
        return ChannelsLast.IsChannelsLast(input) ? UnshuffleChannelsLast(input, factor) : UnshuffleContiguous(input, factor);
    }

    private static Tensor UnshuffleChannelsLast(Tensor input, long factor)
    {
        int r = (int)factor;
        int n = (int)input.shape[0], c = (int)input.shape[1], h = (int)input.shape[2] / r, w = (int)input.shape[3] / r;
        int oc = c * r * r;
        var output = empty_strided([n, oc, h, w], [(long)h * w * oc, 1, (long)w * oc, oc]);
        nint ip = TensorData.Pointer(input), op = TensorData.Pointer(output);
        int threads = Math.Max(1, get_num_threads());
        IntraOpParallel.For(0, n * h, threads, rowL =>
        {
            int row = (int)rowL;
            int img = row / h, y = row % h;
            float* src = (float*)ip;
            float* dst = (float*)op + (long)row * w * oc;
            long rowStride = (long)w * r * c; // one input row: W·r pixels of C values
            float* top = src + ((long)img * h * r + (long)y * r) * rowStride;
            if (r == 2 && c % 4 == 0 && Sse.IsSupported)
            {
                for (int x = 0; x < w; x++)
                {
                    float* p00 = top + (long)x * 2 * c, p01 = p00 + c, p10 = p00 + rowStride, p11 = p10 + c;
                    float* d = dst + (long)x * oc;
                    for (int k = 0; k < c; k += 4)
                    {
                        // Rows (i, j) = (0,0), (0,1), (1,0), (1,1) of four channels → per channel its 4 values.
                        var a = Sse.LoadVector128(p00 + k);
                        var b = Sse.LoadVector128(p01 + k);
                        var e = Sse.LoadVector128(p10 + k);
                        var f = Sse.LoadVector128(p11 + k);
                        var t0 = Sse.UnpackLow(a, b);   // a0 b0 a1 b1
                        var t1 = Sse.UnpackLow(e, f);   // e0 f0 e1 f1
                        var t2 = Sse.UnpackHigh(a, b);  // a2 b2 a3 b3
                        var t3 = Sse.UnpackHigh(e, f);  // e2 f2 e3 f3
                        float* o = d + 4L * k;
                        Sse.Store(o, Sse.MoveLowToHigh(t0, t1));       // a0 b0 e0 f0
                        Sse.Store(o + 4, Sse.MoveHighToLow(t1, t0));   // a1 b1 e1 f1
                        Sse.Store(o + 8, Sse.MoveLowToHigh(t2, t3));   // a2 b2 e2 f2
                        Sse.Store(o + 12, Sse.MoveHighToLow(t3, t2));  // a3 b3 e3 f3
                    }
                }
            }
            else
            {
                for (int x = 0; x < w; x++)
                for (int i = 0; i < r; i++)
                for (int j = 0; j < r; j++)
                {
                    float* s = top + i * rowStride + ((long)x * r + j) * c;
                    float* d = dst + (long)x * oc + i * r + j;
                    for (int k = 0; k < c; k++) d[(long)k * r * r] = s[k];
                }
            }
        });
        GC.KeepAlive(input);
        return output;
    }

    // Contiguous: each output plane (c·r² + i·r + j) row y is input plane c's row y·r + i at columns x·r + j.
    private static Tensor UnshuffleContiguous(Tensor input, long factor)
    {
        int r = (int)factor;
        int n = (int)input.shape[0], c = (int)input.shape[1], h = (int)input.shape[2] / r, w = (int)input.shape[3] / r;
        var output = empty(n, (long)c * r * r, h, w);
        nint ip = TensorData.Pointer(input), op = TensorData.Pointer(output);
        int threads = Math.Max(1, get_num_threads());
        long inRow = (long)w * r;
        IntraOpParallel.For(0, n * c, threads, planeL =>
        {
            int plane = (int)planeL;
            float* src = (float*)ip + (long)plane * h * r * inRow;
            float* dst = (float*)op + (long)plane * r * r * h * w;
            for (int y = 0; y < h; y++)
            for (int i = 0; i < r; i++)
            {
                float* s = src + ((long)y * r + i) * inRow;
                if (r == 2 && Sse.IsSupported)
                {
                    float* d0 = dst + ((long)(i * 2) * h + y) * w, d1 = dst + ((long)(i * 2 + 1) * h + y) * w;
                    int x = 0;
                    for (; x + 4 <= w; x += 4)
                    {
                        var a = Sse.LoadVector128(s + 2 * x);
                        var b = Sse.LoadVector128(s + 2 * x + 4);
                        Sse.Store(d0 + x, Sse.Shuffle(a, b, 0b10_00_10_00)); // s0 s2 s4 s6
                        Sse.Store(d1 + x, Sse.Shuffle(a, b, 0b11_01_11_01)); // s1 s3 s5 s7
                    }
                    for (; x < w; x++) { d0[x] = s[2 * x]; d1[x] = s[2 * x + 1]; }
                }
                else
                {
                    for (int j = 0; j < r; j++)
                    {
                        float* d = dst + ((long)(i * r + j) * h + y) * w;
                        for (int x = 0; x < w; x++) d[x] = s[(long)x * r + j];
                    }
                }
            }
        });
        GC.KeepAlive(input);
        return output;
    }

    /// <summary>
    /// <c>pixel_shuffle(input, factor)</c> of a contiguous float32 CPU tensor: out[n, c, y·r + i, x·r + j] =
    /// input[n, c·r² + i·r + j, y, x] — for r = 2 by SSE (two planes' rows interleaved), else one value at a time.
    /// libtorch's contiguous kernel moves one value at a time (measured on a Zen 5 guest, 4 × 256 channels at 48×48:
    /// 2.9 ms, a copy of the same data 0.5 ms).
    /// </summary>
    /// <param name="input">[N, C·r², H, W] float32, contiguous, on the CPU.</param>
    /// <param name="factor">r ≥ 1.</param>
    /// <returns>[N, C, H·r, W·r] float32, contiguous, without autograd history.</returns>
    /// <exception cref="ArgumentException">The input is not a contiguous float32 CPU tensor whose channel count is a multiple of r².</exception>
    public static Tensor Shuffle(Tensor input, long factor)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (!ShuffleApplies(input, factor))
            throw new ArgumentException($"pixel shuffle: expected a contiguous float32 CPU tensor [N, C, H, W] with C a multiple of {factor * factor}, got [{string.Join(", ", input.shape)}] {input.dtype} on {input.device}", nameof(input));
        int r = (int)factor;
        int n = (int)input.shape[0], oc = (int)(input.shape[1] / (r * r)), h = (int)input.shape[2], w = (int)input.shape[3];
        var output = empty(n, oc, (long)h * r, (long)w * r);
        nint ip = TensorData.Pointer(input), op = TensorData.Pointer(output);
        int threads = Math.Max(1, get_num_threads());
        long outRow = (long)w * r;
        IntraOpParallel.For(0, n * oc, threads, planeL =>
        {
            int plane = (int)planeL;
            float* src = (float*)ip + (long)plane * r * r * h * w;
            float* dst = (float*)op + (long)plane * h * r * outRow;
            for (int y = 0; y < h; y++)
            for (int i = 0; i < r; i++)
            {
                float* d = dst + ((long)y * r + i) * outRow;
                if (r == 2 && Sse.IsSupported)
                {
                    float* s0 = src + ((long)(i * 2) * h + y) * w, s1 = src + ((long)(i * 2 + 1) * h + y) * w;
                    int x = 0;
                    for (; x + 4 <= w; x += 4)
                    {
                        var a = Sse.LoadVector128(s0 + x);
                        var b = Sse.LoadVector128(s1 + x);
                        Sse.Store(d + 2 * x, Sse.UnpackLow(a, b));      // a0 b0 a1 b1
                        Sse.Store(d + 2 * x + 4, Sse.UnpackHigh(a, b)); // a2 b2 a3 b3
                    }
                    for (; x < w; x++) { d[2 * x] = s0[x]; d[2 * x + 1] = s1[x]; }
                }
                else
                {
                    for (int j = 0; j < r; j++)
                    {
                        float* s = src + ((long)(i * r + j) * h + y) * w;
                        for (int x = 0; x < w; x++) d[(long)x * r + j] = s[x];
                    }
                }
            }
        });
        GC.KeepAlive(input);
        return output;
    }

    /// <summary>Whether <see cref="Shuffle"/> takes this tensor and factor.</summary>
    public static bool ShuffleApplies(Tensor input, long factor)
    {
        ArgumentNullException.ThrowIfNull(input);
        return factor >= 1 && input.device_type == DeviceType.CPU && input.dtype == ScalarType.Float32 && input.dim() == 4
               && input.shape[1] % (factor * factor) == 0 && input.numel() > 0 && input.is_contiguous();
    }

    /// <summary>Whether <see cref="Unshuffle"/> takes this tensor and factor.</summary>
    public static bool UnshuffleApplies(Tensor input, long factor)
    {
        ArgumentNullException.ThrowIfNull(input);
        return factor >= 1 && input.device_type == DeviceType.CPU && input.dtype == ScalarType.Float32 && input.dim() == 4
               && input.shape[2] % factor == 0 && input.shape[3] % factor == 0 && (ChannelsLast.IsChannelsLast(input) || input.is_contiguous());
    }

    private sealed class PixelShuffleFunction : torch.autograd.SingleTensorFunction<PixelShuffleFunction>
    {
        public override string Name => "PixelShuffleBackward0";

        public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
        {
            var input = (Tensor)vars[0];
            long factor = (long)vars[1];
            ctx.save_data("factor", factor);
            using (no_grad()) return ShuffleApplies(input, factor) && !ChannelsLast.IsChannelsLast(input) ? Shuffle(input, factor) : nn.functional.pixel_shuffle(input, factor);
        }

        public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor grad_output)
        {
            long factor = (long)ctx.get_data("factor");
            var g = UnshuffleApplies(grad_output, factor) ? Unshuffle(grad_output, factor) : nn.functional.pixel_unshuffle(grad_output, factor);
            return [g, null!];
        }
    }

    // One layer's routing state.
    private sealed class Layer(long factor) : RoutedLayer
    {
        protected override bool Takes(Tensor x)
        {
            if (x.dim() != 4 || x.shape[0] == 0 || x.device_type != DeviceType.CPU || x.dtype != ScalarType.Float32) return false;
            // Channels-last: only a call whose backward will run (the forward is libtorch's either way). Contiguous:
            // every call (the forward is Shuffle's).
            return ChannelsLast.IsChannelsLast(x) ? is_grad_enabled() && x.requires_grad : ShuffleApplies(x, factor);
        }

        protected override Tensor Run(Tensor input) => PixelShuffle(input, factor);
    }
}
