using System.Diagnostics;
using Mcir.Abstractions.Losses;
using Mcir.Core.Losses;
using Mcir.Core.ModelContrast;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Runs;

/// <summary>Median training-step times of plain L1 and of L1 + SPN for one model and batch shape.</summary>
public sealed record StepBenchmarkResult(double PlainSeconds, double SpnSeconds, int Negatives, int Threads, IReadOnlyList<double> PlainSteps, IReadOnlyList<double> SpnSteps)
{
    public double Ratio => SpnSeconds / PlainSeconds;
}

/// <summary>
/// Times full training steps (zero_grad, forward, loss, backward, Adam step) the way the reference measurement did:
/// warm-up steps first, then rounds alternating plain and SPN steps, medians reported. The negatives' EMA updates
/// (every ≥ 100 iterations) are not part of a step.
/// </summary>
public static class StepBenchmark
{
    /// <summary>
    /// Untimed steps before timing (each side in <c>bench</c>, each candidate in the ISA probe). With bfloat16 negatives
    /// the first steps run ~35 % slower than later ones (measured on the Zen 5 guest: 1.67–1.69 s for the fourth and
    /// fifth SPN steps, 1.22 s from the sixth), so three warm-up steps left <c>bench</c>'s first rounds slow and the
    /// probe's single one made bfloat16 negatives look slower than float32 ones.
    /// </summary>
    public const int WarmUpSteps = 5;

    public static StepBenchmarkResult Run(Func<nn.Module<Tensor, Tensor>> createModel, SpnLossOptions spnOptions, int negatives,
        int batch, int lrSize, int scale, int warmup = WarmUpSteps, int rounds = 5, Action<string>? progress = null,
        Compute.NegativePrecision negativePrecision = Compute.NegativePrecision.Float32, Device? device = null, Action<int>? afterRound = null,
        Action? beforePlain = null, Action? beforeSpn = null)
    {
        device ??= CPU;
        using var gen = new Generator(7);
        using var lq = rand(new long[] { batch, 3, lrSize, lrSize }, generator: gen).to(device);
        using var gt = rand(new long[] { batch, 3, lrSize * scale, lrSize * scale }, generator: gen).to(device);

        manual_seed(0);
        using var plainNet = createModel();
        using var spnNet = createModel();
        spnNet.load_state_dict(plainNet.state_dict());
        if (device.type != DeviceType.CPU) { plainNet.to(device); spnNet.to(device); }
        var l1 = new L1Loss();
        using var spn = SpnLoss.FromOptions(spnOptions with { NegativePrecision = negativePrecision });
        spn.To(device);
        var steps = Enumerable.Range(0, negatives).Select(j => 100L * (j + 1)).ToArray();
        using var bank = NegativeBank.Create(spnNet, new NegativeBankOptions { Steps = steps, Precision = negativePrecision });

        var plain = new Stepper(plainNet, [l1], null, lq, gt);
        var withSpn = new Stepper(spnNet, [l1, spn], bank, lq, gt);
        // Each step under its own workload's settings (e.g. IsaProbe.Switcher), switched before it, untimed.
        double PlainStep() { beforePlain?.Invoke(); return plain.Step(); }
        double SpnStep() { beforeSpn?.Invoke(); return withSpn.Step(); }
        for (int i = 0; i < warmup; i++) { PlainStep(); SpnStep(); }
        var plainTimes = new List<double>();
        var spnTimes = new List<double>();
        for (int r = 0; r < rounds; r++)
        {
            plainTimes.Add(PlainStep());
            spnTimes.Add(SpnStep());
            progress?.Invoke($"round {r + 1}/{rounds}: plain {plainTimes[^1]:F3} s, spn {spnTimes[^1]:F3} s");
            afterRound?.Invoke(r); // e.g. the PyTorch reference's round, so both sides alternate
        }
        return new StepBenchmarkResult(Median(plainTimes), Median(spnTimes), negatives, get_num_threads(), plainTimes, spnTimes);
    }

    /// <summary>
    /// One step's forward and backward pass as the trainer computes it: the input given channels-last strides, the
    /// model's output, the negatives' outputs (when a bank is given), the sum of the loss terms, its backward pass.
    /// </summary>
    /// <returns>The output [B, C, H·s, W·s] and the negatives' outputs [B, K, C, H·s, W·s] (or null).</returns>
    public static (Tensor Output, Tensor? Negatives) ForwardBackward(nn.Module<Tensor, Tensor> net, IReadOnlyList<ILossTerm> terms,
        NegativeBank? bank, Tensor lq, Tensor gt)
    {
        ArgumentNullException.ThrowIfNull(net);
        ArgumentNullException.ThrowIfNull(terms);
        var input = Compute.ConvolutionLayout.ForModel(lq); // as the trainer does
        var output = net.call(input);
        var negatives = bank?.Produce(input);
        var context = new LossContext(output, gt, input, negatives);
        Tensor total = terms[0].Compute(context).Value;
        for (int i = 1; i < terms.Count; i++) total = total + terms[i].Compute(context).Value;
        total.backward();
        return (output, negatives);
    }

    /// <summary>The median of step times (seconds); NaN for none. The one median of every benchmark here.</summary>
    public static double Median(IEnumerable<double> xs)
    {
        var s = xs.Order().ToList();
        if (s.Count == 0) return double.NaN;
        return s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2;
    }

    internal sealed class Stepper(nn.Module<Tensor, Tensor> net, IReadOnlyList<ILossTerm> terms, NegativeBank? bank, Tensor lq, Tensor gt)
    {
        private readonly optim.Optimizer _adam = optim.Adam(net.parameters(), 1e-4, 0.9, 0.99);

        public double Step()
        {
            net.train();
            var sw = Stopwatch.StartNew();
            using (var scope = NewDisposeScope())
            {
                net.zero_grad(set_to_none: true); // as the trainer does
                ForwardBackward(net, terms, bank, lq, gt);
                _adam.step();
            }
            if (lq.device_type == DeviceType.CUDA) cuda.synchronize(); // CUDA kernels run asynchronously
            return sw.Elapsed.TotalSeconds;
        }
    }
}
