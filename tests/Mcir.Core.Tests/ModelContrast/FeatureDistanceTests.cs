using Mcir.Core.Compute;
using Mcir.Core.ModelContrast;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.ModelContrast;

/// <summary>
/// The in-place per-negative mean absolute distance (<see cref="FeatureDistances.MeanAbsPerNegative"/>) against
/// autograd's (a.unsqueeze(0) − b).abs().mean(1..): values and gradients for any upstream gradient over the K
/// distances (the ratio forms divide by them), for channels-last and contiguous layouts alike; SPN's mean over the
/// negatives (<see cref="FeatureDistances.MeanAbsOverNegatives"/>) against autograd's, through the one-pass CPU kernel
/// (<see cref="MeanAbsKernel"/>) and through ATen where the kernel does not apply.
/// </summary>
public class FeatureDistanceTests
{
    [Theory]
    [InlineData(true, true)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(false, false)]
    public void ValuesAndGradients_MatchAutograd(bool featuresChannelsLast, bool negativesChannelsLast)
    {
        using var scope = NewDisposeScope();
        using var gen = new Generator(3);
        const int k = 3, b = 2, c = 5, h = 7, w = 6;
        var a0 = randn([b, c, h, w], generator: gen);
        var negFlat = randn([k * b, c, h, w], generator: gen);
        // Some exact ties: sign(0) = 0 in both formulations.
        negFlat[0, 0, 0, 0] = a0[0, 0, 0, 0];
        var upstream = tensor(new float[] { 0.7f, -1.3f, 2.1f });    // dL/dd_j, unequal as in the ratio forms

        var aRef = (featuresChannelsLast ? ChannelsLast.Of(a0) : a0.contiguous()).detach().requires_grad_(true);
        var negRef = negFlat.view(k, b, c, h, w);
        var expected = (aRef.unsqueeze(0) - negRef).abs().mean([1, 2, 3, 4]);
        (expected * upstream).sum().backward();

        var a = (featuresChannelsLast ? ChannelsLast.Of(a0) : a0.contiguous()).detach().requires_grad_(true);
        var consumed = (negativesChannelsLast ? ChannelsLast.Of(negFlat) : negFlat.clone()).view(k, b, c, h, w);
        var actual = FeatureDistances.MeanAbsPerNegative(a, consumed);
        (actual * upstream).sum().backward();

        Assert.Equal(new long[] { k }, actual.shape);
        // float32 sums in another order: agreement to a few ulps of the values.
        Assert.True(actual.detach().allclose(expected.detach(), rtol: 1e-6, atol: 1e-7), $"values {Str(actual)} vs {Str(expected)}");
        Assert.True(a.grad!.allclose(aRef.grad!, rtol: 1e-6, atol: 1e-9), $"gradients differ by {(a.grad! - aRef.grad!).abs().max().item<float>()}");
    }

    [Fact]
    public void NegativesAreConsumed_AndNoGradientReachesThem()
    {
        using var scope = NewDisposeScope();
        var a = ones(1, 2, 2, 2).requires_grad_(true);
        var negatives = full(new long[] { 2, 1, 2, 2, 2 }, 3f);
        var d = FeatureDistances.MeanAbsPerNegative(a, negatives);
        Assert.Equal(new[] { 2f, 2f }, d.detach().data<float>().ToArray());
        // The documented contract: the negatives' storage now holds sign(b_j − a).
        Assert.True(negatives.eq(1f).all().item<bool>());
        Assert.False(negatives.requires_grad);
    }

    [Theory]
    [InlineData(true, true, 3)]
    [InlineData(false, false, 3)]
    [InlineData(true, false, 2)]      // layouts differ: ATen's formulation
    [InlineData(false, true, 1)]
    [InlineData(true, true, 1)]
    public void MeanOverNegatives_MatchesAutograd(bool featuresChannelsLast, bool negativesChannelsLast, int k)
    {
        using var scope = NewDisposeScope();
        using var gen = new Generator(11);
        // M = 2·7·101·97 = 137 158 values: two kernel blocks, the second ragged, and a tail shorter than a vector; B = 2,
        // so the batch axis's stride matters.
        const int b = 2, c = 7, h = 101, w = 97;
        Assert.True(b * c * h * w > MeanAbsKernel.BlockElements);
        var a0 = randn([b, c, h, w], generator: gen);
        var negFlat = randn([k * b, c, h, w], generator: gen);
        // Exact ties with every negative at one element: sign(0) = 0, so that element gets no gradient.
        for (int j = 0; j < k; j++) negFlat[j * b + 1, 3, 100, 96] = a0[1, 3, 100, 96];

        var aRef = (featuresChannelsLast ? ChannelsLast.Of(a0) : a0.contiguous()).detach().requires_grad_(true);
        var expectedPerNegative = (aRef.unsqueeze(0) - negFlat.view(k, b, c, h, w)).abs().mean([1, 2, 3, 4]);
        var expected = expectedPerNegative.mean();
        (expected * 1.7).backward();

        var a = (featuresChannelsLast ? ChannelsLast.Of(a0) : a0.contiguous()).detach().requires_grad_(true);
        var consumed = (negativesChannelsLast ? ChannelsLast.Of(negFlat) : negFlat.clone()).view(k, b, c, h, w);
        Assert.Equal(featuresChannelsLast == negativesChannelsLast, MeanAbsKernel.Applies(a, consumed));
        var (mean, perNegative) = FeatureDistances.MeanAbsOverNegatives(a, consumed);
        (mean * 1.7).backward();

        Assert.Empty(mean.shape);
        Assert.Equal(new long[] { k }, perNegative.shape);
        Assert.False(perNegative.requires_grad);
        // The kernel sums in float64 and ATen in a float32 cascade: agreement to float32 rounding of 1.5·10⁵ terms.
        Assert.True(perNegative.allclose(expectedPerNegative.detach(), rtol: 2e-6, atol: 0), $"values {Str(perNegative)} vs {Str(expectedPerNegative)}");
        Assert.True(mean.detach().allclose(expected.detach(), rtol: 2e-6, atol: 0));
        // Gradient: 1.7·Σ_j sign(a − b_j)/(K·M), one rounding of the scale apart from autograd's (1.7/K)/M.
        Assert.True(a.grad!.allclose(aRef.grad!, rtol: 1e-6, atol: 0), $"gradients differ by {(a.grad! - aRef.grad!).abs().max().item<float>()}");
        Assert.Equal(0f, a.grad![1, 3, 100, 96].item<float>());
        Assert.True(a.grad!.ne(0).sum().item<long>() > a.numel() / 2, "gradient mostly zero");
    }

    [Fact]
    public void MeanOverNegatives_NegativesInsideALargerBuffer()
    {
        // The negatives start at a storage offset (here after one block of other features), as a split of a batch does;
        // the sign sum is written over the first negative only, and the values before it stay.
        using var scope = NewDisposeScope();
        using var gen = new Generator(13);
        const int k = 2;
        var a0 = randn(new long[] { 2, 3, 5, 7 }, generator: gen);
        var buffer = ChannelsLast.Of(randn(new long[] { 2 + k * 2, 3, 5, 7 }, generator: gen));
        var before = buffer[..2].clone();
        var negatives = buffer[2..].view(k, 2, 3, 5, 7);
        Assert.Equal(a0.numel(), negatives.storage_offset());
        var expectedPerNegative = (ChannelsLast.Of(a0).unsqueeze(0) - negatives).abs().mean([1, 2, 3, 4]);
        var aRef = ChannelsLast.Of(a0).requires_grad_(true);
        (aRef.unsqueeze(0) - negatives.clone()).abs().mean([1, 2, 3, 4]).mean().backward();

        var a = ChannelsLast.Of(a0).requires_grad_(true);
        Assert.True(MeanAbsKernel.Applies(a, negatives));
        var (mean, perNegative) = FeatureDistances.MeanAbsOverNegatives(a, negatives);
        mean.backward();

        Assert.True(perNegative.allclose(expectedPerNegative, rtol: 1e-6, atol: 0), $"values {Str(perNegative)} vs {Str(expectedPerNegative)}");
        Assert.True(a.grad!.allclose(aRef.grad!, rtol: 1e-6, atol: 0));
        Assert.True(buffer[..2].eq(before).all().item<bool>(), "values before the negatives were overwritten");
    }

    [Fact]
    public void Kernel_RefusesWhatItCannotReadAsFlatMemory()
    {
        using var scope = NewDisposeScope();
        var a = randn(2, 3, 4, 5);
        Assert.True(MeanAbsKernel.Applies(a, randn(new long[] { 3, 2, 3, 4, 5 })));
        Assert.True(MeanAbsKernel.Applies(ChannelsLast.Of(a), ChannelsLast.Of(randn(6, 3, 4, 5)).view(3, 2, 3, 4, 5)));
        Assert.False(MeanAbsKernel.Applies(a.to(ScalarType.Float64), randn(new long[] { 3, 2, 3, 4, 5 }, dtype: ScalarType.Float64)));
        // Each negative laid out like a, but not back to back (a gap of 120 values after each): only the K stride tells.
        Assert.False(MeanAbsKernel.Applies(a, randn(new long[] { 3, 240 })[.., ..120].view(3, 2, 3, 4, 5)));
        Assert.False(MeanAbsKernel.Applies(a, a.unsqueeze(0).expand(3, 2, 3, 4, 5)));                           // K stride 0
        Assert.False(MeanAbsKernel.Applies(a.transpose(2, 3).contiguous().transpose(2, 3), randn(new long[] { 3, 2, 3, 4, 5 })));
        // a not dense, the negatives with a's very strides and back to back: only the density check tells.
        var sparse = a[.., .., 1..];
        Assert.Equal(new long[] { 60, 20, 5, 1 }, sparse.stride());
        Assert.False(MeanAbsKernel.Applies(sparse, empty(3 * 90 + 30).as_strided(new long[] { 3, 2, 3, 3, 5 }, new long[] { 90, 60, 20, 5, 1 })));
        Assert.False(MeanAbsKernel.Applies(a, randn(new long[] { 3, 2, 3, 4, 4 })));                            // shapes differ
        // What is allowed: any stride on a size-1 axis, any K stride for K = 1.
        var single = randn(new long[] { 1, 3, 4, 5 });
        Assert.True(MeanAbsKernel.Applies(single, randn(new long[] { 2, 60 }).as_strided(new long[] { 2, 1, 3, 4, 5 }, new long[] { 60, 7, 20, 5, 1 })));
        Assert.True(MeanAbsKernel.Applies(a, randn(new long[] { 5, 120 })[..1].view(1, 2, 3, 4, 5).as_strided(new long[] { 1, 2, 3, 4, 5 }, new long[] { 999, 60, 20, 5, 1 })));
    }

    [Fact]
    public void Kernel_ReadsTheEmbeddingsOwnFeatures()
    {
        // What SPN passes: φ(o) with gradient, and the K·B negatives' features from one batched no-grad forward, split.
        using var scope = NewDisposeScope();
        using var embedding = new Core.Embeddings.VggEmbedding(new Core.Embeddings.VggEmbeddingOptions { AllowRandomWeights = true, RandomSeed = 2 });
        const int k = 3, b = 2;
        var output = rand(new long[] { b, 3, 24, 24 }).requires_grad_(true);
        var fo = embedding.Extract(output);
        var chunks = FeatureDistances.NoGradFeatures(embedding, [rand(new long[] { k * b, 3, 24, 24 })]);
        Assert.Equal(3, fo.Count);
        for (int p = 0; p < fo.Count; p++)
        {
            Assert.True(MeanAbsKernel.Applies(fo[p], chunks[p][0].view([k, b, .. chunks[p][0].shape.Skip(1)])), $"layer {embedding.Layers[p]}");
            // The bfloat16 negatives' features come back to float32 with .to(Float32), which keeps the layout.
            var back = chunks[p][0].to(ScalarType.BFloat16).to(ScalarType.Float32);
            Assert.True(MeanAbsKernel.Applies(fo[p], back.view([k, b, .. back.shape.Skip(1)])), $"layer {embedding.Layers[p]} from bfloat16");
        }
    }

    [Fact]
    public void LayerPositions_RefuseTwoNamesOfOneLayer()
    {
        // The distances consume a layer's negative features, so a layer named twice (names compare without case) is an error.
        using var embedding = new Core.Embeddings.VggEmbedding(new Core.Embeddings.VggEmbeddingOptions { Layers = ["relu1_2", "relu2_2"], AllowRandomWeights = true });
        Assert.Equal(new[] { 1, 0 }, FeatureDistances.LayerPositions(embedding, ["relu2_2", "relu1_2"], "spn"));
        var e = Assert.Throws<ArgumentException>(() => FeatureDistances.LayerPositions(embedding, ["relu1_2", "relu2_2", "RELU1_2"], "spn"));
        Assert.Equal("spn: layers 'relu1_2' and 'RELU1_2' name the same layer of embedding 'vgg16'; give each layer once.", e.Message);
    }

    [Fact]
    public unsafe void Kernel_SameResultOnAnyThreadCount()
    {
        using var scope = NewDisposeScope();
        using var gen = new Generator(5);
        long m = 3 * MeanAbsKernel.BlockElements + 13;
        const int k = 4;
        var a = randn([m], generator: gen);
        var negatives = randn([k, m], generator: gen);
        var one = empty(m);
        var two = empty(m);
        var sumsOne = MeanAbsKernel.Run((float*)TensorData.Pointer(a), (float*)TensorData.Pointer(negatives), m, k, (float*)TensorData.Pointer(one), 1);
        var sumsTwo = MeanAbsKernel.Run((float*)TensorData.Pointer(a), (float*)TensorData.Pointer(negatives), m, k, (float*)TensorData.Pointer(two), 2);
        Assert.Equal(sumsOne, sumsTwo);
        Assert.True(one.eq(two).all().item<bool>());
        // Against float64 arithmetic in ATen: Σ|a − b_j| and Σ_j sign(a − b_j).
        var a64 = a.to(ScalarType.Float64);
        var n64 = negatives.to(ScalarType.Float64);
        var exact = (n64 - a64).abs().sum(1).data<double>().ToArray();
        for (int j = 0; j < k; j++) Assert.Equal(exact[j], sumsOne[j], exact[j] * 1e-6);
        Assert.True(one.eq((a.unsqueeze(0) - negatives).sign().sum([0L])).all().item<bool>());
        // The sign sum written over the first negative's own memory: the same sums and signs.
        var consumed = negatives.clone();
        var sumsInPlace = MeanAbsKernel.Run((float*)TensorData.Pointer(a), (float*)TensorData.Pointer(consumed), m, k, (float*)TensorData.Pointer(consumed), 2);
        Assert.Equal(sumsOne, sumsInPlace);
        Assert.True(consumed[0].eq(one).all().item<bool>());
        Assert.True(consumed[1..].eq(negatives[1..]).all().item<bool>(), "the other negatives were written");
    }

    private static string Str(Tensor t) => string.Join(", ", t.detach().data<float>().ToArray());
}
