using System.Collections.Concurrent;
using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Compute;

/// <summary>
/// 3×3 convolution (stride 1, zero padding 1) + bias + optional ReLU of a frozen layer by Winograd's minimal filtering
/// F(4×4, 3×3): 36 multiplications per 4×4 output tile and input channel instead of 144, so a quarter of the direct
/// convolution's multiply-adds. Used for the frozen embedding's passes on the layers where it is faster than oneDNN's
/// direct kernel (<see cref="Choose(Tensor, long, Func{Tensor}, Func{Tensor})"/>): the no-gradient ones (the negatives'
/// VGG16 features, <see cref="Conv2d(Tensor, Tensor, Tensor?, bool)"/>) and the restored image's, whose input gradient
/// is a 3×3 convolution too (<see cref="Conv2dRelu(Tensor, Tensor, Tensor, Tensor?)"/>, an autograd function). No
/// gradient for the weights.
/// </summary>
/// <remarks>
/// Algorithm and matrices: A. Lavin, S. Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016
/// (arXiv:1509.09308), F(4×4, 3×3) with interpolation points 0, ±1, ±2, ∞: Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A per tile.
/// Three passes: the input transform (here, <c>System.Numerics.Vector</c> over channels: each 6×6 input tile → 36
/// vectors of C values, laid out [tiles, 36, C]); the 36 products, one [tiles × C] · [C × O] matrix product per tile
/// position, run by oneDNN as one grouped 1×1 convolution (36 groups) on the transformed weights; the output transform
/// (36 → 16 values per tile, plus bias and ReLU, written channels-last). The weight transform G g Gᵀ is computed in
/// float64 once per weight (<see cref="TransformWeight"/>). Only for channels-last float32 CPU tensors whose channel
/// counts are multiples of <c>Vector&lt;float&gt;.Count</c>.
/// <para>Values: exact arithmetic gives the convolution's values exactly; in float32 the transforms' coefficients (up
/// to 8 and 1/24) amplify rounding: measured on VGG16's relu3 layers (256 channels, 48×48) the mean absolute difference
/// from a float64 convolution is ~3× that of oneDNN's direct float32 kernel (2.2e-6 against 7.1e-7 for outputs up to
/// 14), the largest ~6× (1.6e-4 against 2.8e-5) — float32 rounding of a different summation. One consequence: features
/// of identical networks (a negative equal to the target, as right after a <c>copy</c> initialisation) may differ by that
/// rounding between the restored image's pass and the negatives' (different batch sizes: possibly other blockings of
/// the products, and a layer that one pass takes and the other does not — the rule's <see cref="MinimumWork"/> counts
/// the batch, e.g. one image of 256 channels at 48×48 stays direct while K·B images take Winograd — as can
/// <c>benchmark</c> mode's measurements), so their distance is of rounding size instead of exactly 0. <c>MCIR_WINOGRAD</c>: <c>auto</c> (default: a fixed rule, so every process on a
/// machine makes the same choice and a resumed run computes what the uninterrupted one would), <c>benchmark</c> (measured
/// per shape in each process, as cuDNN's benchmark mode: possibly faster, not reproducible between processes),
/// <c>on</c> (wherever it applies), <c>off</c>.</para>
/// </remarks>
public static unsafe class WinogradConvolution
{
    /// <summary>Environment variable: <c>auto</c> (default), <c>benchmark</c>, <c>on</c> or <c>off</c>.</summary>
    public const string SwitchVariable = "MCIR_WINOGRAD";

    /// <summary>In <c>benchmark</c> mode Winograd is chosen for a shape when its measured time is at most this fraction of the direct kernel's.</summary>
    public const double RequiredRatio = 0.9;

    private const int Tile = 4, Patch = 6, Positions = Patch * Patch;

    private static readonly ConcurrentDictionary<string, (bool Winograd, double DirectMs, double WinogradMs)> Decisions = new();

    /// <summary>
    /// Shapes whose convolution has fewer multiply-adds than 9 × this (N·C·O·H·W below it: ~2.4 G multiply-adds, ~12 ms
    /// of the direct kernel on two Zen 5 cores) run directly in <c>auto</c> and <c>benchmark</c> modes: there the
    /// transforms' fixed costs leave nothing to gain (measured: VGG16's 64-channel layers of 16 images at 48×48 take
    /// 7.6 ms directly, 13 ms by F(4×4, 3×3)), and small shapes keep the direct kernel's values.
    /// </summary>
    public const long MinimumWork = 1L << 28;

    /// <summary>
    /// <c>auto</c>'s rule on the channel counts: Winograd when C·O ≥ k·(C + O) — the products' work (∝ C·O) per value the
    /// transforms touch (∝ C + O) — with k = 48 where oneDNN runs its AVX-512 kernels and 32 below AVX-512 (oneDNN's AVX2
    /// kernels are half as fast, and every layer gains). Measured on the Zen 5 guest (16 images): 256 channels at 48×48
    /// 114 → 66 ms, 128 → 256 channels 58 → 40 ms, 128 channels at 96×96 116 → 77 ms, 64 → 256 channels at 96×96 (4
    /// images) 27.9 → 22.8 ms, while the 64-channel layers were as fast or slower (123 → 141 ms at 192×192, 56 → 55 ms;
    /// C·O/(C+O) = 32, below 48); on a Zen 4 guest (4 images) 64 → 256 at 96×96 58 → 47 ms, 256 → 64 57 → 38 ms, 64 → 64
    /// at 48×48 4.0 → 4.7 ms; under the AVX2 cap the 64-channel ones 234 → 186 ms and 114 → 72 ms.
    /// So: AVX-512 128 ↔ 128, 64 ↔ 256 and more; below AVX-512 also 64 ↔ 64.
    /// </summary>
    public static bool ChannelsQualify(long inputChannels, long outputChannels) =>
        inputChannels * outputChannels >= (Avx512InForce ? 48 : 32) * (inputChannels + outputChannels);

    /// <summary>True when the CPU has AVX-512 and no ISA cap in force (<c>ONEDNN_MAX_CPU_ISA</c>) keeps oneDNN below it.</summary>
    public static bool Avx512InForce =>
        CpuFeatures.Machine.Avx512F && !((OneDnnIsa.UserCap ?? OneDnnIsa.EngineCap) is { } cap && OneDnnIsa.IsBelowAvx512(cap));

    /// <summary>The value of <see cref="SwitchVariable"/> in force: "auto", "benchmark", "on" or "off" (unset or invalid: "auto"; the host refuses an invalid one at start-up, <see cref="ConfigurationError"/>).</summary>
    public static string Mode => ParseMode(Environment.GetEnvironmentVariable(SwitchVariable)) ?? "auto";

    /// <summary>"auto" for null or empty; "auto", "benchmark", "on", "off" for those values in any case; else null.</summary>
    public static string? ParseMode(string? value)
    {
        if (string.IsNullOrEmpty(value)) return "auto";
        var v = value.ToLowerInvariant();
        return v is "auto" or "benchmark" or "on" or "off" ? v : null;
    }

    /// <summary>Null for an unset or valid value of <see cref="SwitchVariable"/>, else the error line.</summary>
    public static string? ConfigurationError => ErrorFor(Environment.GetEnvironmentVariable(SwitchVariable));

    /// <summary>The error line for a value of <see cref="SwitchVariable"/>, or null when it is valid.</summary>
    public static string? ErrorFor(string? value) =>
        ParseMode(value) is null ? $"{SwitchVariable}: expected 'auto', 'benchmark', 'on' or 'off', got '{value}'" : null;

    /// <summary>
    /// One clause for run logs and <c>bench</c>: the mode, its rule, and for <c>benchmark</c> the shapes measured so far
    /// with the direct and Winograd times (ms) and the choice.
    /// </summary>
    public static string Note
    {
        get
        {
            switch (Mode)
            {
                case "off": return $"Winograd F(4x4,3x3) off ({SwitchVariable}=off)";
                case "on": return $"Winograd F(4x4,3x3) for every embedding convolution it applies to ({SwitchVariable}=on)";
                case "auto": return $"Winograd F(4x4,3x3) for 3x3 convolutions with C*O >= {(Avx512InForce ? 48 : 32)}*(C+O) channels (the embedding's: negatives' passes, the output's pass and its input gradient; the restoration networks': forward and input gradient)";
            }
            var d = Decisions.OrderBy(kv => kv.Key, StringComparer.Ordinal)
                .Select(kv => $"{kv.Key} {(kv.Value.Winograd ? "Winograd" : "direct")} ({kv.Value.DirectMs:F1} / {kv.Value.WinogradMs:F1} ms)").ToList();
            return $"Winograd F(4x4,3x3) where measured faster in the embedding's and the restoration networks' passes ({SwitchVariable}=benchmark; the output's input gradient follows its forward)" +
                   (d.Count == 0 ? ": no shape measured yet" : ": " + string.Join("; ", d));
        }
    }

    /// <summary>
    /// Whether <see cref="Conv2d(Tensor, Tensor, Tensor?, bool)"/> takes these operands: CPU float32; input [N, C, H, W] channels-last and dense;
    /// weight [O, C, 3, 3]; bias [O] or none; C and O multiples of <c>Vector&lt;float&gt;.Count</c>; no gradient needed
    /// (gradient mode off, or no operand requires grad).
    /// </summary>
    public static bool Applies(Tensor input, Tensor weight, Tensor? bias)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(weight);
        if (input.device_type != DeviceType.CPU || weight.device_type != DeviceType.CPU) return false;
        if (input.dtype != ScalarType.Float32 || weight.dtype != ScalarType.Float32) return false;
        if (input.dim() != 4 || weight.dim() != 4 || weight.shape[1] != input.shape[1] || weight.shape[2] != 3 || weight.shape[3] != 3) return false;
        if (bias is not null && (bias.dtype != ScalarType.Float32 || bias.device_type != DeviceType.CPU || bias.dim() != 1 || bias.shape[0] != weight.shape[0])) return false;
        if (torch.is_grad_enabled() && (input.requires_grad || weight.requires_grad || bias?.requires_grad == true)) return false;
        int vl = Vector<float>.Count;
        if (input.shape[1] % vl != 0 || weight.shape[0] % vl != 0 || input.numel() == 0) return false;
        return ChannelsLast.IsChannelsLast(input);
    }

    /// <summary>
    /// Whether <see cref="Conv2dRelu(Tensor, Tensor, Tensor, Tensor?)"/> takes these operands: as <see cref="Applies"/>,
    /// but the gradient mode on and the input requiring grad while the weight and bias do not (a frozen network's layer
    /// inside a differentiable computation, as the embedding's pass over the restored image).
    /// </summary>
    public static bool AppliesWithInputGradient(Tensor input, Tensor weight, Tensor? bias)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(weight);
        if (!torch.is_grad_enabled() || !input.requires_grad || weight.requires_grad || bias?.requires_grad == true) return false;
        using (no_grad()) return Applies(input, weight, bias);
    }

    /// <summary>
    /// relu(conv2d(input, weight, bias, padding: 1)) with autograd for the input only: the forward by F(4×4, 3×3) as
    /// <see cref="Conv2d(Tensor, Tensor, Tensor?, bool)"/>, and the input's gradient — ReLU's backward (the gradient where the output is
    /// positive, else 0) then the convolution's backward for its input, which for a 3×3 kernel, stride 1 and padding 1 is
    /// the 3×3 convolution of the masked gradient with the weight's transpose flipped in both spatial axes — by
    /// F(4×4, 3×3) too, the ReLU's mask applied in its input transform. Values as <see cref="Conv2d(Tensor, Tensor, Tensor?, bool)"/>'s (float32 rounding of
    /// a different summation). No gradient for the weight or bias (they must not require one, see
    /// <see cref="AppliesWithInputGradient"/>), and no second-order gradient: with <c>create_graph</c> the input's gradient
    /// is computed but has no history.
    /// </summary>
    /// <param name="input">[N, C, H, W] float32, channels-last, on the CPU; requiring grad (else the result has no autograd node, as any operation's).</param>
    /// <param name="transformedWeight"><see cref="TransformWeight"/> of the [O, C, 3, 3] weight.</param>
    /// <param name="transformedInputGradientWeight"><see cref="TransformWeightForInputGradient"/> of the same weight.</param>
    /// <param name="bias">[O] or null.</param>
    /// <returns>[N, O, H, W] float32, channels-last, whose backward gives the input's gradient [N, C, H, W] (channels-last).</returns>
    /// <exception cref="ArgumentNullException">input, transformedWeight or transformedInputGradientWeight is null.</exception>
    /// <exception cref="ArgumentException">The operands do not match (shapes, dtype, layout; the two transformed weights'
    /// shapes are checked against each other, not their values). Checked before any autograd node is made.</exception>
    public static Tensor Conv2dRelu(Tensor input, Tensor transformedWeight, Tensor transformedInputGradientWeight, Tensor? bias)
    {
        ArgumentNullException.ThrowIfNull(transformedInputGradientWeight);
        Validate(input, transformedWeight, bias); // before the autograd node exists: a refusal leaves nothing behind
        if (transformedInputGradientWeight.dim() != 4 || transformedWeight.dim() != 4
            || transformedInputGradientWeight.shape[0] != Positions * transformedWeight.shape[1]
            || transformedInputGradientWeight.shape[1] * Positions != transformedWeight.shape[0])
            throw new ArgumentException($"Winograd convolution: input-gradient weight [{string.Join(", ", transformedInputGradientWeight.shape)}] does not belong to the forward weight [{string.Join(", ", transformedWeight.shape)}]");
        using var scope = NewDisposeScope(); // the forward's own handles (its output before wrapping, the saved alias)
        return WinogradConvReluFunction.apply(input, transformedWeight, transformedInputGradientWeight, bias!).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// conv2d(input, weight, bias, padding: 1) with autograd for the input, the weight and the bias — a trainable layer
    /// (the restoration network's, <see cref="ConvolutionLayers.ForModel{T}(T)"/>). The forward by F(4×4, 3×3) as
    /// <see cref="Conv2d(Tensor, Tensor, Tensor?, bool)"/> on <paramref name="transformedWeight"/>; the backward: the
    /// input's gradient by F(4×4, 3×3) too (the 3×3 convolution of the output gradient with the weight's transpose
    /// flipped, <see cref="TransformWeightForInputGradient"/>, transformed from the weight saved at the forward), the
    /// weight's gradient by libtorch's own backward-weights kernel (<see cref="ConvolutionBackward"/>: oneDNN's, the values
    /// autograd gives for <c>conv2d</c>), the bias's as the sum of the output gradient over batch and pixels (float32
    /// summation order apart, autograd's value; <see cref="ConvolutionBackward.Conv2d"/> says why). Gradients only for the operands that require one; no second-order
    /// gradient. Values: the forward's and the input gradient's as <see cref="Conv2d(Tensor, Tensor, Tensor?, bool)"/>'s
    /// (float32 rounding of a different summation, ~3× the direct kernel's on average).
    /// </summary>
    /// <param name="input">[N, C, H, W] float32, channels-last, on the CPU.</param>
    /// <param name="weight">[O, C, 3, 3] float32 (the layer's parameter).</param>
    /// <param name="bias">[O] or null.</param>
    /// <param name="transformedWeight"><see cref="TransformWeight"/> of <paramref name="weight"/>'s current values.</param>
    /// <returns>[N, O, H, W] float32, channels-last.</returns>
    /// <exception cref="ArgumentException">The operands do not match (shapes, dtype, layout). Checked before any autograd node is made.</exception>
    /// <exception cref="InvalidOperationException">The weight needs a gradient and libtorch's backward entry point is missing (<see cref="ConvolutionBackward.Available"/>).</exception>
    public static Tensor Conv2dTrainable(Tensor input, Tensor weight, Tensor? bias, Tensor transformedWeight)
    {
        ArgumentNullException.ThrowIfNull(weight);
        Validate(input, transformedWeight, bias);
        if (weight.dim() != 4 || weight.shape[2] != 3 || weight.shape[3] != 3 || weight.shape[1] != input.shape[1]
            || weight.shape[0] * Positions != transformedWeight.shape[0] || weight.dtype != ScalarType.Float32)
            throw new ArgumentException($"Winograd convolution: weight [{string.Join(", ", weight.shape)}] {weight.dtype} does not belong to the input [{string.Join(", ", input.shape)}] and the transformed weight [{string.Join(", ", transformedWeight.shape)}]");
        if (weight.requires_grad && !ConvolutionBackward.Available)
            throw new InvalidOperationException($"Winograd convolution: the weight's gradient needs {ConvolutionBackward.EntryPoint}, which this process's libtorch does not export");
        using var scope = NewDisposeScope(); // the forward's own handles (its output before wrapping, the saved aliases)
        return WinogradConvFunction.apply(input, weight, bias!, transformedWeight).MoveToOuterDisposeScope();
    }

    // The autograd node of Conv2dTrainable: saves the input and the weight (the weight gradient's operands; the input
    // gradient's transformed weight is made from the saved weight in the backward).
    private sealed class WinogradConvFunction : torch.autograd.SingleTensorFunction<WinogradConvFunction>
    {
        public override string Name => "WinogradConv2dBackward";

        public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
        {
            var input = (Tensor)vars[0];
            var weight = (Tensor)vars[1];
            var bias = vars[2] is Tensor b && !b.IsInvalid ? b : null;
            var transformed = (Tensor)vars[3];
            var y = Conv2d(input, transformed, bias, relu: false);
            ctx.save_for_backward([input.detach(), weight.detach()]);
            ctx.save_data("needs", (input.requires_grad, weight.requires_grad, bias?.requires_grad == true));
            return y;
        }

        public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor grad_output)
        {
            var saved = ctx.get_saved_variables();
            Tensor input = saved[0], weight = saved[1];
            var (inputNeeds, weightNeeds, biasNeeds) = ((bool, bool, bool))ctx.get_data("needs");
            Tensor? gradInput = null, gradWeight = null, gradBias = null;
            using (var scope = NewDisposeScope())
            {
                var g = ChannelsLast.Of(grad_output.dtype == ScalarType.Float32 ? grad_output : grad_output.to(ScalarType.Float32));
                if (inputNeeds)
                {
                    using var flippedTransform = TransformWeightForInputGradient(weight);
                    gradInput = Conv2d(g, flippedTransform, null, relu: false).MoveToOuterDisposeScope();
                }
                if (weightNeeds) gradWeight = ConvolutionBackward.WeightAndBias(g, input, weight, withBias: false).Weight.MoveToOuterDisposeScope();
                // The bias's as a sum (ConvolutionBackward.Conv2d says why).
                if (biasNeeds) gradBias = g.sum([0, 2, 3]).MoveToOuterDisposeScope();
            }
            input.Dispose();
            weight.Dispose();
            return [gradInput!, gradWeight!, gradBias!, null!];
        }
    }

    /// <summary>
    /// The transformed weight of the input gradient's convolution (<see cref="Conv2dRelu(Tensor, Tensor, Tensor, Tensor?)"/>): <see cref="TransformWeight"/>
    /// of w′[c, o, i, j] = w[o, c, 2 − i, 2 − j], i.e. [36·C, O, 1, 1].
    /// </summary>
    /// <param name="weight">[O, C, 3, 3] float32 on the CPU.</param>
    public static Tensor TransformWeightForInputGradient(Tensor weight) => Transform(weight, flippedTranspose: true);

    // The autograd node of Conv2dRelu: saves the output (ReLU's mask) and the input gradient's weight.
    private sealed class WinogradConvReluFunction : torch.autograd.SingleTensorFunction<WinogradConvReluFunction>
    {
        public override string Name => "WinogradConv2dReluBackward";

        public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
        {
            var input = (Tensor)vars[0];
            var weight = (Tensor)vars[1];
            var inputGradientWeight = (Tensor)vars[2];
            var bias = vars[3] as Tensor;
            var y = Conv2d(input, weight, bias is null || bias.IsInvalid ? null : bias, relu: true);
            ctx.save_for_backward([y.detach(), inputGradientWeight]);
            return y;
        }

        public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor grad_output)
        {
            var saved = ctx.get_saved_variables();
            Tensor output = saved[0], inputGradientWeight = saved[1];
            Tensor gradInput;
            using (var scope = NewDisposeScope())
            {
                var g = ChannelsLast.Of(grad_output.dtype == ScalarType.Float32 ? grad_output : grad_output.to(ScalarType.Float32));
                gradInput = Conv2d(g, inputGradientWeight, null, relu: false, imagesPerChunk: null, inputMask: output).MoveToOuterDisposeScope();
            }
            output.Dispose();
            inputGradientWeight.Dispose();
            return [gradInput, null!, null!, null!];
        }
    }

    /// <summary>
    /// G g Gᵀ for every (output, input) channel pair, computed in float64, laid out as the weight of the grouped 1×1
    /// convolution <see cref="Conv2d(Tensor, Tensor, Tensor?, bool)"/> runs: [36·O, C, 1, 1] float32 channels-last, group p = the 6×6 tile position p.
    /// </summary>
    /// <param name="weight">[O, C, 3, 3] float32 on the CPU (PyTorch's Conv2d weight).</param>
    public static Tensor TransformWeight(Tensor weight) => Transform(weight, flippedTranspose: false);

    // G: the F(4×4, 3×3) filter transform (interpolation points 0, ±1, ±2, ∞), row-major 6×3.
    private static readonly double[] G =
    [
        1 / 4.0, 0, 0,
        -1 / 6.0, -1 / 6.0, -1 / 6.0,
        -1 / 6.0, 1 / 6.0, -1 / 6.0,
        1 / 24.0, 1 / 12.0, 1 / 6.0,
        1 / 24.0, -1 / 12.0, 1 / 6.0,
        0, 0, 1,
    ];

    // G ⊗ G as a [36, 9] float64 matrix: row a·6 + b, column i·3 + j holds G[a, i]·G[b, j], so U = G g Gᵀ is this matrix
    // times the 9 weights of a pair.
    private static readonly Lazy<double[]> Kron = new(() =>
    {
        var k = new double[Positions * 9];
        for (int a = 0; a < 6; a++)
        for (int b = 0; b < 6; b++)
        for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            k[(a * 6 + b) * 9 + i * 3 + j] = G[a * 3 + i] * G[b * 3 + j];
        return k;
    });

    // G g Gᵀ in float64 for every channel pair of the [O, C, 3, 3] weight, or (flippedTranspose) of w′[c, o, i, j] =
    // w[o, c, 2 − i, 2 − j]; packed [36·rows, cols, 1, 1] (dense, which for 1×1 is also channels-last), element
    // ((p·rows + r)·cols + k) = U[r, k] at tile position p. One float64 matrix product, (G ⊗ G) [36, 9] times the
    // pairs' weights [9, rows·cols], whose result is already in that order: the weight changes every training step, and
    // this takes a fraction of a millisecond where per-pair 6×3 products took ~5 ms for 256 × 64 channels.
    private static Tensor Transform(Tensor weight, bool flippedTranspose)
    {
        ArgumentNullException.ThrowIfNull(weight);
        if (weight.dim() != 4 || weight.shape[2] != 3 || weight.shape[3] != 3)
            throw new ArgumentException($"Winograd weight transform: expected [O, C, 3, 3], got [{string.Join(", ", weight.shape)}]", nameof(weight));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        long o = weight.shape[0], c = weight.shape[1];
        var w = weight.detach().to(ScalarType.Float64);
        // Pairs in the packed order: (o, c) forward; (c, o) with the 3×3 taps reversed for the input gradient (a
        // flip in both axes is the reversal of the 9 taps in row-major order).
        var pairs = flippedTranspose ? w.flip(2, 3).transpose(0, 1).reshape(c * o, 9) : w.reshape(o * c, 9);
        var k = tensor(Kron.Value, [Positions, 9], ScalarType.Float64, weight.device);
        var u = matmul(k, pairs.t()); // [36, rows·cols]
        return u.to(ScalarType.Float32).reshape(Positions * (flippedTranspose ? c : o), flippedTranspose ? o : c, 1, 1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// relu?(conv2d(input, weight, bias, padding: 1)) for a 3×3 weight, by F(4×4, 3×3).
    /// </summary>
    /// <param name="input">[N, C, H, W] float32, channels-last, on the CPU (see <see cref="Applies"/>).</param>
    /// <param name="transformedWeight"><see cref="TransformWeight"/> of the [O, C, 3, 3] weight.</param>
    /// <param name="bias">[O] or null.</param>
    /// <param name="relu">Apply ReLU to the output.</param>
    /// <returns>[N, O, H, W] float32, channels-last, with no autograd history.</returns>
    /// <exception cref="ArgumentException">The operands do not match (shapes, dtype, layout).</exception>
    public static Tensor Conv2d(Tensor input, Tensor transformedWeight, Tensor? bias, bool relu) =>
        Conv2d(input, transformedWeight, bias, relu, imagesPerChunk: null);

    // imagesPerChunk: null for ImagesPerChunk's (tests set a smaller one). inputMask: null, or a tensor of the input's
    // shape and layout whose entries ≤ 0 zero the input's values as they are read (ReLU's backward fused into
    // the input transform: the input is a gradient, the mask the ReLU's output).
    internal static Tensor Conv2d(Tensor input, Tensor transformedWeight, Tensor? bias, bool relu, int? imagesPerChunk, Tensor? inputMask = null)
    {
        Validate(input, transformedWeight, bias);
        if (inputMask is not null && (inputMask.dtype != ScalarType.Float32 || !inputMask.shape.SequenceEqual(input.shape) || !ChannelsLast.IsChannelsLast(inputMask)))
            throw new ArgumentException($"Winograd convolution: mask [{string.Join(", ", inputMask.shape)}] {inputMask.dtype} is not a channels-last float32 tensor of the input's shape [{string.Join(", ", input.shape)}]");
        using var noGrad = no_grad();
        int n = (int)input.shape[0], c = (int)input.shape[1], h = (int)input.shape[2], w = (int)input.shape[3];
        int o = (int)(transformedWeight.shape[0] / Positions);
        int threads = Math.Max(1, torch.get_num_threads());
        // [N, O, H, W] with channels-last strides, not a view (a view made inside an autograd function refuses in-place use).
        var y = empty_strided([n, o, h, w], [(long)h * w * o, 1, (long)w * o, o]);
        using var biasValues = bias is null ? zeros(o) : bias.detach().contiguous();
        int chunk = imagesPerChunk ?? ImagesPerChunk(c, o, h, w);
        for (int first = 0; first < n; first += chunk)
        {
            int count = Math.Min(chunk, n - first);
            using var images = input.narrow(0, first, count);
            using var maskImages = inputMask?.narrow(0, first, count);
            using var v = InputTransform(images, maskImages, count, c, h, w, threads);
            var m = nn.functional.conv2d(v, transformedWeight, groups: Positions);
            if (!ChannelsLast.IsChannelsLast(m))
            {
                var cl = ChannelsLast.Of(m);
                m.Dispose();
                m = cl;
            }
            using (m) OutputTransform(m, biasValues, y, first, count, o, h, w, relu, threads);
        }
        return y;
    }

    // The operands' checks of Conv2d (one ArgumentException naming shapes, dtype and layout).
    private static void Validate(Tensor input, Tensor transformedWeight, Tensor? bias)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(transformedWeight);
        int vl = Vector<float>.Count;
        if (input.device_type != DeviceType.CPU || input.dtype != ScalarType.Float32 || input.dim() != 4 || !ChannelsLast.IsChannelsLast(input)
            || transformedWeight.dim() != 4 || transformedWeight.shape[1] != input.shape[1] || transformedWeight.shape[0] % Positions != 0
            || input.shape[1] % vl != 0 || transformedWeight.shape[0] / Positions % vl != 0
            || (bias is not null && (bias.dim() != 1 || bias.shape[0] != transformedWeight.shape[0] / Positions || bias.dtype != ScalarType.Float32)))
            throw new ArgumentException($"Winograd convolution: input [{string.Join(", ", input.shape)}] {input.dtype}, transformed weight [{string.Join(", ", transformedWeight.shape)}] are not a channels-last float32 input and its F(4x4,3x3) weight with channel counts that are multiples of {vl}");
    }

    /// <summary>
    /// Bytes of transformed tiles (input or products) one chunk of images may take: the transforms expand the data 2.25×,
    /// so the whole batch at once would hold two buffers of 2.25× the layer's input (340 MB for 16 images of 128 channels
    /// at 96×96); chunks of at most this size bound the extra memory while keeping each matrix product large (measured on
    /// the Zen 5 guest: 32 MB chunks made those layers 20–25 % slower than the whole batch, 96 MB chunks as fast).
    /// </summary>
    public const long ChunkBytes = 96L << 20;

    /// <summary>Images per chunk: as many as fit <see cref="ChunkBytes"/> of transformed tiles (the larger of C and O), at least one.</summary>
    public static int ImagesPerChunk(int c, int o, int h, int w)
    {
        long tiles = (long)((h + Tile - 1) / Tile) * ((w + Tile - 1) / Tile);
        long bytesPerImage = tiles * Positions * Math.Max(c, o) * sizeof(float);
        return (int)Math.Clamp(ChunkBytes / Math.Max(1, bytesPerImage), 1, int.MaxValue);
    }

    /// <summary>
    /// Whether a 3×3 convolution of this shape should run by Winograd (with a gradient for the input, both its forward and
    /// that gradient's convolution, which has the same work with C and O exchanged): <c>off</c> → no; <c>on</c> → yes;
    /// below <see cref="MinimumWork"/> → no; <c>auto</c> → when <see cref="ChannelsQualify"/>;
    /// <c>benchmark</c> → measured once per process and shape (as cuDNN's benchmark mode does): direct
    /// (<paramref name="direct"/>) and Winograd (<paramref name="winograd"/>) alternately, three times each after one
    /// warm-up each, Winograd chosen when its median is at most <see cref="RequiredRatio"/> of the direct one's
    /// (<see cref="Prefers"/>); the choice is kept for the process and listed in <see cref="Note"/>.
    /// </summary>
    /// <param name="input">The convolution's input [N, C, H, W].</param>
    /// <param name="outputChannels">O.</param>
    /// <param name="direct">Runs the direct convolution once (its result is disposed; <c>benchmark</c> mode only).</param>
    /// <param name="winograd">Runs the Winograd convolution once (its result is disposed; <c>benchmark</c> mode only).</param>
    public static bool Choose(Tensor input, long outputChannels, Func<Tensor> direct, Func<Tensor> winograd) =>
        Choose(Mode, input, outputChannels, direct, winograd);

    internal static bool Choose(string mode, Tensor input, long outputChannels, Func<Tensor> direct, Func<Tensor> winograd)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(direct);
        ArgumentNullException.ThrowIfNull(winograd);
        switch (mode)
        {
            case "off": return false;
            case "on": return true;
        }
        if (input.numel() * outputChannels < MinimumWork) return false;
        if (mode == "auto") return ChannelsQualify(input.shape[1], outputChannels);
        string key = $"[{string.Join("x", input.shape)}]->{outputChannels}";
        return Decisions.GetOrAdd(key, _ =>
        {
            var td = new List<double>();
            var tw = new List<double>();
            for (int i = 0; i < 4; i++)
            {
                var sw = Stopwatch.StartNew();
                using (NewDisposeScope()) direct().Dispose();
                if (i > 0) td.Add(sw.Elapsed.TotalMilliseconds);
                sw.Restart();
                using (NewDisposeScope()) winograd().Dispose();
                if (i > 0) tw.Add(sw.Elapsed.TotalMilliseconds);
            }
            double dm = Median(td), wm = Median(tw);
            return (Prefers(dm, wm), dm, wm);
        }).Winograd;
    }

    /// <summary>The shapes measured so far and the choice for each (key: "[N x C x H x W]->O").</summary>
    public static IReadOnlyDictionary<string, bool> Decided => Decisions.ToDictionary(kv => kv.Key, kv => kv.Value.Winograd);

    /// <summary>True when <paramref name="winogradMs"/> ≤ <see cref="RequiredRatio"/> × <paramref name="directMs"/>.</summary>
    public static bool Prefers(double directMs, double winogradMs) => winogradMs <= RequiredRatio * directMs;

    private static double Median(List<double> xs)
    {
        xs.Sort();
        return xs[xs.Count / 2];
    }

    // Input [N, H, W, C] (channels-last) → V [1, 36·C, T, 1] channels-last, i.e. memory [T][36][C], T = N·⌈H/4⌉·⌈W/4⌉;
    // tile (i, j) reads input rows 4i−1 … 4i+4 and columns 4j−1 … 4j+4 (zero outside: the padding). With a mask (same
    // shape and layout as the input), a value whose mask entry is ≤ 0 is read as zero (ATen's threshold_backward: a NaN
    // entry lets the value through).
    private static Tensor InputTransform(Tensor input, Tensor? mask, int n, int c, int h, int w, int threads)
    {
        int th = (h + Tile - 1) / Tile, tw = (w + Tile - 1) / Tile;
        long tiles = (long)n * th * tw;
        Tensor v;
        using (var storage = empty(1, tiles, 1, (long)Positions * c)) v = storage.permute(0, 3, 1, 2); // the view keeps the storage
        nint xp = TensorData.Pointer(input), vp = TensorData.Pointer(v);
        nint mp = mask is null ? 0 : TensorData.Pointer(mask);
        int vl = Vector<float>.Count;
        IntraOpParallel.For(0, n * th, threads, rowL =>
        {
            int row = (int)rowL;
            int img = row / th, ti = row % th;
            Vector<float>* d = stackalloc Vector<float>[Positions];
            Vector<float>* a = stackalloc Vector<float>[Patch]; // an edge patch's raw row, apart from d (no aliasing of in and out)
            float* x = (float*)xp;
            float* mk = (float*)mp;
            bool rowsInside = Tile * ti - 1 >= 0 && Tile * ti + Patch - 1 <= h;
            for (int tj = 0; tj < tw; tj++)
            {
                float* dst = (float*)vp + ((long)row * tw + tj) * Positions * c;
                // The patch's top-left pixel (row 4i − 1, column 4j − 1); a patch wholly inside the image is read
                // without per-pixel checks.
                bool inside = rowsInside && Tile * tj - 1 >= 0 && Tile * tj + Patch - 1 <= w;
                long cornerOffset = (((long)img * h + Tile * ti - 1) * w + Tile * tj - 1) * c;
                float* corner = x + cornerOffset;
                for (int k = 0; k < c; k += vl)
                {
                    // Bᵀ along each patch row with its six values in registers (into d), then Bᵀ along each column of d
                    // written straight to the tile's 36 vectors.
                    if (inside)
                    {
                        for (int r = 0; r < Patch; r++)
                        {
                            long rowOffset = (long)r * w * c + k;
                            float* px = corner + rowOffset;
                            Vector<float> a0 = *(Vector<float>*)px, a1 = *(Vector<float>*)(px + c), a2 = *(Vector<float>*)(px + 2L * c),
                                a3 = *(Vector<float>*)(px + 3L * c), a4 = *(Vector<float>*)(px + 4L * c), a5 = *(Vector<float>*)(px + 5L * c);
                            if (mk is not null)
                            {
                                float* pm = mk + cornerOffset + rowOffset;
                                a0 = Masked(a0, pm); a1 = Masked(a1, pm + c); a2 = Masked(a2, pm + 2L * c);
                                a3 = Masked(a3, pm + 3L * c); a4 = Masked(a4, pm + 4L * c); a5 = Masked(a5, pm + 5L * c);
                            }
                            Vector<float>* dr = d + r * Patch;
                            InputTransform1D(a0, a1, a2, a3, a4, a5, out dr[0], out dr[1], out dr[2], out dr[3], out dr[4], out dr[5]);
                        }
                    }
                    else
                    {
                        // A patch crossing the image's edge: read with per-pixel checks (zero outside: the padding).
                        for (int r = 0; r < Patch; r++)
                        {
                            int y = Tile * ti - 1 + r;
                            bool rowIn = y >= 0 && y < h;
                            Vector<float>* dr = d + r * Patch;
                            for (int q = 0; q < Patch; q++)
                            {
                                int xx = Tile * tj - 1 + q;
                                long at = (((long)img * h + y) * w + xx) * c + k;
                                a[q] = !(rowIn && xx >= 0 && xx < w) ? Vector<float>.Zero
                                    : mk is null ? *(Vector<float>*)(x + at)
                                    : Masked(*(Vector<float>*)(x + at), mk + at);
                            }
                            InputTransform1D(a[0], a[1], a[2], a[3], a[4], a[5], out dr[0], out dr[1], out dr[2], out dr[3], out dr[4], out dr[5]);
                        }
                    }
                    for (int q = 0; q < Patch; q++)
                    {
                        InputTransform1D(d[q], d[Patch + q], d[2 * Patch + q], d[3 * Patch + q], d[4 * Patch + q], d[5 * Patch + q],
                            out var o0, out var o1, out var o2, out var o3, out var o4, out var o5);
                        float* dq = dst + (long)q * c + k;
                        *(Vector<float>*)dq = o0;
                        *(Vector<float>*)(dq + (long)Patch * c) = o1;
                        *(Vector<float>*)(dq + 2L * Patch * c) = o2;
                        *(Vector<float>*)(dq + 3L * Patch * c) = o3;
                        *(Vector<float>*)(dq + 4L * Patch * c) = o4;
                        *(Vector<float>*)(dq + 5L * Patch * c) = o5;
                    }
                }
            }
        });
        GC.KeepAlive(input);
        GC.KeepAlive(mask);
        return v;
    }

    // A value read through the mask: zero where the mask's entry is ≤ 0 (a NaN entry lets the value through).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<float> Masked(Vector<float> value, float* mask) =>
        Vector.ConditionalSelect(Vector.LessThanOrEqual(*(Vector<float>*)mask, Vector<float>.Zero), Vector<float>.Zero, value);

    // Bᵀ applied to six values in registers (Lavin & Gray's F(4, 3)):
    // [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0; 0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1].
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void InputTransform1D(Vector<float> d0, Vector<float> d1, Vector<float> d2, Vector<float> d3, Vector<float> d4, Vector<float> d5,
        out Vector<float> o0, out Vector<float> o1, out Vector<float> o2, out Vector<float> o3, out Vector<float> o4, out Vector<float> o5)
    {
        var four = new Vector<float>(4f);
        var five = new Vector<float>(5f);
        var a = d4 - d2;
        var b = d3 - d1;
        var b2 = b + b;
        o0 = four * d0 - five * d2 + d4;
        o1 = d4 + d3 - four * (d1 + d2);
        o2 = d4 - d3 + four * (d1 - d2);
        o3 = a + b2;
        o4 = a - b2;
        o5 = four * d1 - five * d3 + d5;
    }

    // M [1, 36·O, T, 1] channels-last (memory [T][36][O]) → images firstImage … firstImage + n − 1 of Y [N, O, H, W]
    // channels-last: Aᵀ M A per tile, plus bias and ReLU; Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1]. Tiles past the edge write only their
    // pixels inside the image.
    private static void OutputTransform(Tensor m, Tensor biasValues, Tensor y, int firstImage, int n, int o, int h, int w, bool relu, int threads)
    {
        int th = (h + Tile - 1) / Tile, tw = (w + Tile - 1) / Tile;
        nint mp = TensorData.Pointer(m), bp = TensorData.Pointer(biasValues);
        nint yp = (nint)((float*)TensorData.Pointer(y) + (long)firstImage * h * w * o);
        int vl = Vector<float>.Count;
        IntraOpParallel.For(0, n * th, threads, rowL =>
        {
            int row = (int)rowL;
            int img = row / th, ti = row % th;
            Vector<float>* s = stackalloc Vector<float>[Tile * Patch];
            Vector<float>* outs = stackalloc Vector<float>[Tile];
            var two = new Vector<float>(2f);
            var four = new Vector<float>(4f);
            var eight = new Vector<float>(8f);
            for (int tj = 0; tj < tw; tj++)
            {
                float* src = (float*)mp + ((long)row * tw + tj) * Positions * o;
                int cols = Math.Min(Tile, w - Tile * tj);
                for (int k = 0; k < o; k += vl)
                {
                    for (int q = 0; q < Patch; q++)
                    {
                        var m0 = *(Vector<float>*)(src + (long)(0 * Patch + q) * o + k);
                        var m1 = *(Vector<float>*)(src + (long)(1 * Patch + q) * o + k);
                        var m2 = *(Vector<float>*)(src + (long)(2 * Patch + q) * o + k);
                        var m3 = *(Vector<float>*)(src + (long)(3 * Patch + q) * o + k);
                        var m4 = *(Vector<float>*)(src + (long)(4 * Patch + q) * o + k);
                        var m5 = *(Vector<float>*)(src + (long)(5 * Patch + q) * o + k);
                        var p12 = m1 + m2; var d12 = m1 - m2; var p34 = m3 + m4; var d34 = m3 - m4;
                        s[q] = m0 + p12 + p34;
                        s[Patch + q] = d12 + two * d34;
                        s[2 * Patch + q] = p12 + four * p34;
                        s[3 * Patch + q] = d12 + eight * d34 + m5;
                    }
                    var bv = *(Vector<float>*)((float*)bp + k);
                    for (int r = 0; r < Tile; r++)
                    {
                        int yy = Tile * ti + r;
                        if (yy >= h) break;
                        int b = r * Patch;
                        var p12 = s[b + 1] + s[b + 2]; var d12 = s[b + 1] - s[b + 2];
                        var p34 = s[b + 3] + s[b + 4]; var d34 = s[b + 3] - s[b + 4];
                        outs[0] = s[b] + p12 + p34 + bv;
                        outs[1] = d12 + two * d34 + bv;
                        outs[2] = p12 + four * p34 + bv;
                        outs[3] = d12 + eight * d34 + s[b + 5] + bv;
                        float* dst = (float*)yp + (((long)img * h + yy) * w + Tile * tj) * o + k;
                        for (int q = 0; q < cols; q++)
                            *(Vector<float>*)(dst + (long)q * o) = relu ? Vector.Max(outs[q], Vector<float>.Zero) : outs[q];
                    }
                }
            }
        });
        GC.KeepAlive(m);
        GC.KeepAlive(biasValues);
        GC.KeepAlive(y);
    }
}
