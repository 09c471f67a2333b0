using Mcir.Core.Compute;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Compute;

/// <summary>The per-network convolution memory format (<see cref="ConvolutionLayout"/>) and the measured auto precision.</summary>
[Collection(NativeMemoryCollection.Name)] // process-wide settings: run alone
public class ConvolutionLayoutTests
{
    [Fact]
    public void Parse_reads_one_format_or_one_per_network_and_names_the_variable_on_error()
    {
        Assert.True(ConvolutionLayout.Parse("contiguous", out var m, out var e, out _));
        Assert.Equal((MemoryFormat.Contiguous, MemoryFormat.Contiguous), (m, e));
        Assert.True(ConvolutionLayout.Parse("model=contiguous", out m, out e, out _));
        Assert.Equal((MemoryFormat.Contiguous, MemoryFormat.ChannelsLast), (m, e));
        Assert.True(ConvolutionLayout.Parse(ConvolutionLayout.Format(MemoryFormat.ChannelsLast, MemoryFormat.Contiguous), out m, out e, out _));
        Assert.Equal((MemoryFormat.ChannelsLast, MemoryFormat.Contiguous), (m, e));
        Assert.False(ConvolutionLayout.Parse("nhwc", out _, out _, out var error));
        Assert.Equal("MCIR_MEMORY_FORMAT: expected 'channels_last', 'contiguous' or 'model=…,embedding=…', got 'nhwc'", error);
        Assert.False(ConvolutionLayout.Parse("model=contiguous,vgg=contiguous", out _, out _, out error));
        Assert.Contains("got 'vgg=contiguous'", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Contiguous_gives_dense_nchw_strides_except_where_the_channel_count_needs_channels_last()
    {
        using var scope = NewDisposeScope();
        var cl = ChannelsLast.Of(randn(2, 64, 5, 7));
        var nchw = ConvolutionLayout.For(cl, MemoryFormat.Contiguous);
        Assert.True(ConvolutionLayout.IsDenseContiguous(nchw));
        Assert.True(nchw.equal(cl).all().item<bool>());
        // 60 channels (SwinIR): channels-last whatever the setting where oneDNN's cache sizes could not be corrected
        // (the oneDNN padding fault of contiguous inputs), contiguous where they were.
        var sixty = randn(1, 60, 4, 4);
        Assert.Equal(ConvolutionLayout.GuardContiguous, ChannelsLast.IsChannelsLast(ConvolutionLayout.For(sixty, MemoryFormat.Contiguous)));
        bool saved = ConvolutionLayout.GuardContiguous;
        try
        {
            ConvolutionLayout.GuardContiguous = true;
            Assert.True(ChannelsLast.IsChannelsLast(ConvolutionLayout.For(sixty, MemoryFormat.Contiguous)));
            ConvolutionLayout.GuardContiguous = false;
            Assert.Same(sixty, ConvolutionLayout.For(sixty, MemoryFormat.Contiguous));
        }
        finally
        {
            ConvolutionLayout.GuardContiguous = saved;
        }
        // A size-1 batch with an odd batch stride (a transpose, then a view) is copied to dense strides.
        var odd = randn(3, 1, 16, 4).permute(1, 0, 2, 3);
        Assert.False(ConvolutionLayout.IsDenseContiguous(odd));
        var dense = ConvolutionLayout.For(odd, MemoryFormat.Contiguous);
        Assert.True(ConvolutionLayout.IsDenseContiguous(dense));
        Assert.True(dense.equal(odd).all().item<bool>());
        // Already dense: the same tensor.
        var ready = randn(1, 16, 3, 3);
        Assert.Same(ready, ConvolutionLayout.For(ready, MemoryFormat.Contiguous));
    }

    [Fact]
    public void The_model_hook_follows_the_applied_format_and_values_do_not_change()
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        var conv = ChannelsLast.ForConvolutions(nn.Conv2d(32, 32, 3, padding: 1));
        var x = randn(2, 32, 9, 9);
        Tensor? seen = null;
        conv.register_forward_pre_hook((_, input) => { seen = input; return input; });
        try
        {
            var yLast = conv.call(x);
            Assert.True(ChannelsLast.IsChannelsLast(seen!));
            ConvolutionLayout.Apply(MemoryFormat.Contiguous, MemoryFormat.ChannelsLast);
            Assert.Equal(MemoryFormat.Contiguous, ConvolutionLayout.Model);
            var yContiguous = conv.call(ChannelsLast.Of(x));
            Assert.True(ConvolutionLayout.IsDenseContiguous(seen!));
            // Another kernel's summation order: equal to float32 rounding.
            Assert.True(yContiguous.allclose(yLast, rtol: 1e-4, atol: 1e-5));
            Assert.Contains("model contiguous", ConvolutionLayout.Note, StringComparison.Ordinal);
        }
        finally
        {
            ConvolutionLayout.Apply(MemoryFormat.ChannelsLast, MemoryFormat.ChannelsLast);
        }
    }

    [Fact]
    public void Where_oneDNNs_cache_sizes_are_not_corrected_a_convolution_whose_output_channels_are_not_a_multiple_of_16_takes_channels_last()
    {
        using var scope = NewDisposeScope();
        var x = randn(1, 64, 4, 4);
        // The guard is on exactly where this process could not correct oneDNN's cache sizes.
        Assert.Equal(!OneDnnCacheSizes.Corrected, ConvolutionLayout.GuardContiguous);
        bool saved = ConvolutionLayout.GuardContiguous;
        try
        {
            ConvolutionLayout.GuardContiguous = true;
            Assert.True(ChannelsLast.IsChannelsLast(ConvolutionLayout.For(x, MemoryFormat.Contiguous, outChannels: 3)));
            Assert.True(ChannelsLast.IsChannelsLast(ConvolutionLayout.For(x, MemoryFormat.Contiguous, outChannels: 8)));
            Assert.Same(x, ConvolutionLayout.For(x, MemoryFormat.Contiguous, outChannels: 256));
            Assert.Same(x, ConvolutionLayout.For(x, MemoryFormat.Contiguous)); // a network's input: output unknown
            // With the sizes corrected the rule is not applied: EDSR's conv_last stays NCHW, as in PyTorch.
            ConvolutionLayout.GuardContiguous = false;
            Assert.Same(x, ConvolutionLayout.For(x, MemoryFormat.Contiguous, outChannels: 3));
            Assert.True(ChannelsLast.IsChannelsLast(ConvolutionLayout.For(x, MemoryFormat.ChannelsLast, outChannels: 3)));
        }
        finally
        {
            ConvolutionLayout.GuardContiguous = saved;
        }
        Assert.True(ConvolutionLayout.ContiguousIsCorrect(3, 64));   // an RGB input into 64 features
        Assert.False(ConvolutionLayout.ContiguousIsCorrect(60, 64)); // SwinIR's 60 features
        Assert.False(ConvolutionLayout.ContiguousIsCorrect(64, 3));  // EDSR's conv_last
    }

    [Fact]
    public void Under_contiguous_an_rgb_tails_input_gradient_agrees_with_channels_last()
    {
        // EDSR's tail (64 features → pixel shuffle → 3 channels): oneDNN's blocked NCHW input gradient of the 64 → 3
        // convolution was wrong or NaN under its AVX2 / AVX-512 kernels while it believed in 1-byte caches; there the
        // hook gives that convolution channels-last, and where the sizes are corrected the NCHW one is right. Either
        // way both settings agree to float32 rounding on every CPU.
        using var scope = NewDisposeScope();
        var x = rand(2, 64, 12, 12, generator: new Generator(3));
        var y = rand(2, 3, 24, 24, generator: new Generator(4));
        (Tensor Output, Tensor Grad) Run(MemoryFormat format)
        {
            manual_seed(5);
            var tail = ChannelsLast.ForConvolutions(nn.Sequential(
                ("0", nn.Conv2d(64, 256, 3, padding: 1)), ("1", nn.PixelShuffle(2)), ("2", nn.Conv2d(64, 3, 3, padding: 1))));
            ConvolutionLayout.Apply(format, MemoryFormat.ChannelsLast);
            var input = x.clone().requires_grad_(true);
            var output = tail.call(ConvolutionLayout.ForModel(input));
            (output - y).abs().mean().backward();
            return (output.detach(), input.grad!.clone());
        }
        try
        {
            var (outLast, gradLast) = Run(MemoryFormat.ChannelsLast);
            var (outContiguous, gradContiguous) = Run(MemoryFormat.Contiguous);
            Assert.True(outContiguous.allclose(outLast, rtol: 1e-4, atol: 1e-5));
            // Other kernels' summation orders: float32 rounding relative to the gradient's largest entry.
            double scale = gradLast.abs().max().item<float>();
            Assert.True(gradContiguous.isfinite().all().item<bool>());
            Assert.True((gradContiguous - gradLast).abs().max().item<float>() <= 1e-4 * scale);
        }
        finally
        {
            ConvolutionLayout.Apply(MemoryFormat.ChannelsLast, MemoryFormat.ChannelsLast);
        }
    }

    [Fact]
    public void A_measured_auto_precision_overrides_the_cpu_rule()
    {
        try
        {
            NegativePrecisionExtensions.ApplyAuto(NegativePrecision.Float32);
            Assert.Equal(NegativePrecision.Float32, NegativePrecision.Auto.Resolve());
            Assert.Contains("chosen by measurement", NegativePrecision.Auto.Describe(), StringComparison.Ordinal);
            NegativePrecisionExtensions.ApplyAuto(NegativePrecision.BFloat16);
            Assert.Equal(NegativePrecision.BFloat16, NegativePrecision.Auto.Resolve());
            Assert.Equal(NegativePrecision.Float32, NegativePrecision.Float32.Resolve());
            Assert.Throws<ArgumentException>(() => NegativePrecisionExtensions.ApplyAuto(NegativePrecision.Auto));
        }
        finally
        {
            NegativePrecisionExtensions.ResetAuto();
        }
    }
    [Fact]
    public void Bench_times_each_step_under_its_own_workloads_memory_format_and_threads()
    {
        if (ConvolutionLayout.SetByUser || IsaProbe.ThreadsSetByUser) return; // the user's settings are never switched
        int threads = get_num_threads();
        var seen = new List<(string Step, MemoryFormat Model, MemoryFormat Embedding, int Threads)>();
        int made = 0;
        nn.Module<Tensor, Tensor> Create()
        {
            string step = made++ == 0 ? "plain" : "spn"; // StepBenchmark builds the plain step's network first
            nn.Module<Tensor, Tensor> net = ChannelsLast.ForConvolutions(new Training.TrainerLoop.TrainerTestNet(width: 16));
            net.register_forward_pre_hook((_, x) => { seen.Add((step, ConvolutionLayout.Model, ConvolutionLayout.Embedding, get_num_threads())); return x; });
            return net;
        }
        try
        {
            ConvolutionLayout.Apply(MemoryFormat.ChannelsLast, MemoryFormat.Contiguous); // the SPN workload's choice, applied
            // The plain workload's choice: contiguous, one thread; the SPN workload's: channels-last, the default threads.
            var plain = IsaProbe.Switcher(new ComputeSetting(ComputeSetting.DefaultIsa, MemoryFormat.Contiguous, Threads: 1), threads);
            var spn = IsaProbe.Switcher(new ComputeSetting(ComputeSetting.DefaultIsa, Embedding: MemoryFormat.Contiguous), threads);
            var options = new Mcir.Core.ModelContrast.SpnLossOptions { EmbeddingType = "vgg", Embedding = new Mcir.Core.Embeddings.VggEmbeddingOptions { AllowRandomWeights = true } };
            var result = Mcir.Core.Runs.StepBenchmark.Run(Create, options, negatives: 1, batch: 1, lrSize: 8, scale: 1, warmup: 1, rounds: 2,
                beforePlain: plain, beforeSpn: spn);

            Assert.Equal(2, result.PlainSteps.Count); // the timed rounds; with the warm-up step, 3 plain steps ran
            Assert.Equal(3, seen.Count(s => s.Step == "plain"));
            Assert.All(seen.Where(s => s.Step == "plain"), s => Assert.Equal((MemoryFormat.Contiguous, MemoryFormat.Contiguous, 1), (s.Model, s.Embedding, s.Threads)));
            // The target's forward and the negative's (a clone with the same hook) in every SPN step.
            Assert.True(seen.Count(s => s.Step == "spn") >= 3);
            Assert.All(seen.Where(s => s.Step == "spn"), s => Assert.Equal((MemoryFormat.ChannelsLast, MemoryFormat.Contiguous, threads), (s.Model, s.Embedding, s.Threads)));
            // The steps alternate: plain, SPN, plain, … (the switch happens before every step, warm-up included).
            var order = seen.Select(s => s.Step).Where((s, i) => i == 0 || seen[i - 1].Step != s).ToList();
            Assert.Equal(["plain", "spn", "plain", "spn", "plain", "spn"], order);
        }
        finally
        {
            ConvolutionLayout.Apply(MemoryFormat.ChannelsLast, MemoryFormat.ChannelsLast);
            set_num_threads(threads);
        }
    }
}
