using Mcir.Abstractions.Losses;
using Mcir.Core.Embeddings;
using Mcir.Core.Losses;
using Mcir.Core.ModelContrast;
using Mcir.Core.Tests.Embeddings;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.ModelContrast.Cr;

/// <summary>CR (AECR-Net contrastive regularisation) against the fixture's restricted CR-ratio check, and its options.</summary>
public class CrLossTests
{
    /// <summary>The fixture's CR check: VGG16 weights of the fixture, relu1_1/2_1/3_1 with 1/32, 1/16, 1/8, no normalisation, negatives = models.</summary>
    private static ContrastRegularizationOptions FixtureOptions() => new()
    {
        Weight = 1.0,
        Negatives = CrNegatives.Models,
        LayerWeights = new Dictionary<string, double> { ["relu1_1"] = 1.0 / 32, ["relu2_1"] = 1.0 / 16, ["relu3_1"] = 1.0 / 8 },
        Embedding = new VggEmbeddingOptions { Variant = VggVariant.Vgg16, Normalize = false, WeightsPath = SpnFixture.WeightsPath },
    };

    [Fact]
    public void ModelsVariant_ValueAndPerLayerDistances_MatchReference()
    {
        using var cr = new ContrastRegularizationLoss(FixtureOptions());
        Assert.True(cr.NeedsNegatives);
        using var scope = torch.NewDisposeScope();
        var o = SpnFixture.Load("out.npy");
        var gt = SpnFixture.Load("gt.npy");
        var negs = SpnFixture.Load("negs.npy");
        var r = cr.Compute(new LossContext(o, gt, gt, negs));
        var expected = SpnFixture.F32.GetProperty("cr");
        SpnFixture.AssertRel(expected.GetProperty("cr_mean").GetDouble(), r.Parts["cr"], 1e-5, "cr_mean");
        SpnFixture.AssertRel(SpnFixture.Root.GetProperty("float64_cr_mean").GetDouble(), r.Parts["cr/ratio"], 1e-5, "cr_mean (float64 ref)");
        var perNeg = expected.GetProperty("per_negative").EnumerateArray().ToArray();
        string[] layers = ["relu1_1", "relu2_1", "relu3_1"];
        for (int j = 0; j < 4; j++)
        {
            SpnFixture.AssertRel(perNeg[j].GetProperty("cr").GetDouble(), r.Parts[$"cr/neg{j}"], 1e-5, $"cr[{j}]");
            foreach (var l in layers)
            {
                double dAp = perNeg[j].GetProperty("layers").GetProperty(l).GetProperty("d_ap").GetDouble();
                SpnFixture.AssertRel(dAp, r.Parts[$"cr/layer/{l}/ap"], 1e-5, $"d_ap {l}");
            }
        }
        foreach (var l in layers)
        {
            double dAnMean = perNeg.Average(e => e.GetProperty("layers").GetProperty(l).GetProperty("d_an").GetDouble());
            SpnFixture.AssertRel(dAnMean, r.Parts[$"cr/layer/{l}/an"], 1e-5, $"mean_j d_an {l}");
        }
    }

    /// <summary>
    /// Tolerance, and why: the fixture README documents two near-ties (one relu3_1 element against gt, one relu1_1 element
    /// against negs[3]) where sign(F(out) − F(other)) differs between the reference's float32 and float64 runs, changing
    /// the L1 gradient on those elements' receptive fields: max |diff| 7.19e-6 (2.7 % of the largest element), 1354 of
    /// 13824 elements off by more than 1e-7. A plain 1e-5-relative comparison therefore cannot hold for an implementation
    /// that lands on the other side of a tie. We check that (1) our float32 gradient differs from the fixture by no more
    /// than that documented tie effect, (2) our gradient computed in float64 reproduces the documented float32-vs-float64
    /// difference (same maximum, same footprint), and (3) our float32 and float64 gradients agree to 1e-5 of the largest
    /// element — i.e. every deviation from the fixture is the documented tie flip, and nothing else.
    /// </summary>
    [Fact]
    public void ModelsVariant_Gradient_MatchesReferenceUpToTheDocumentedNearTies()
    {
        const double TieMaxDiff = 7.19463447250928e-06; // expected.json: max_abs_diff_grad_out_cr_float32_vs_float64
        const long TieFootprint = 1354;                 // expected.json: count_elements_grad_out_cr_diff_gt_1e-7_float32_vs_float64
        Assert.Equal(TieMaxDiff, SpnFixture.Root.GetProperty("max_abs_diff_grad_out_cr_float32_vs_float64").GetDouble());
        Assert.Equal(TieFootprint, SpnFixture.Root.GetProperty("count_elements_grad_out_cr_diff_gt_1e-7_float32_vs_float64").GetInt64());

        using var scope = torch.NewDisposeScope();
        var gt = SpnFixture.Load("gt.npy");
        var negs = SpnFixture.Load("negs.npy");
        var reference = SpnFixture.Load("grad_out_cr.npy").to(float64);

        Tensor Grad(ScalarType dtype)
        {
            using var cr = new ContrastRegularizationLoss(FixtureOptions());
            var emb = (VggEmbedding)cr.Embedding;
            if (dtype == float64) emb.Network.to(float64);
            var o = SpnFixture.Load("out.npy").to(dtype).requires_grad_(true);
            cr.Compute(new LossContext(o, gt.to(dtype), gt.to(dtype), negs.to(dtype))).Value.backward();
            return o.grad!.to(float64);
        }
        var g32 = Grad(float32);
        var g64 = Grad(float64);
        double maxRef = reference.abs().max().item<double>();

        var d32 = (g32 - reference).abs();
        Assert.True(d32.max().item<double>() <= 1.05 * TieMaxDiff, $"float32 vs fixture: max |diff| {d32.max().item<double>():E3} exceeds the tie effect {TieMaxDiff:E3}");
        // The footprint is counted above 1e-6, not the fixture's 1e-7: float32 rounding of the convolutions differs between
        // kernels (e.g. oneDNN's AVX kernels without FMA, under the engine's cap on some machines), which moves more
        // elements past 1e-7 without any tie; the tie flips (up to 7.2e-6) are what this bound is about.
        Assert.True(d32.gt(1e-6).sum().item<long>() <= TieFootprint, $"float32 vs fixture: {d32.gt(1e-6).sum().item<long>()} elements off by > 1e-6");

        var d64 = (g64 - reference).abs();
        SpnFixture.AssertRel(TieMaxDiff, d64.max().item<double>(), 0.02, "float64 vs fixture max |diff| (the documented tie effect)");
        long footprint = d64.gt(1e-7).sum().item<long>();
        Assert.True(Math.Abs(footprint - TieFootprint) <= TieFootprint / 20, $"float64 vs fixture: {footprint} elements off by > 1e-7, documented {TieFootprint}");

        // Our float32 run may fall on either side of the two near-ties (it depends on the convolution algorithm, e.g.
        // the memory layout): it then agrees with our float64 run either to 1e-5 or up to exactly the tie effect.
        var d = (g32 - g64).abs();
        double err = d.max().item<double>() / maxRef;
        Assert.True(err <= 1e-5 || (d.max().item<double>() <= 1.05 * TieMaxDiff && d.gt(1e-7).sum().item<long>() <= TieFootprint * 11 / 10),
            $"our float32 vs float64 gradient: {err:E2} of the largest element, {d.gt(1e-7).sum().item<long>()} elements off by > 1e-7");
    }

    [Fact]
    public void Defaults_AreAecrNets()
    {
        var o = new ContrastRegularizationOptions();
        Assert.Equal(CrNegatives.Input, o.Negatives);
        Assert.Equal(VggVariant.Vgg19, o.Embedding.Variant);
        Assert.False(o.Embedding.Normalize);
        Assert.Equal(1e-7, o.Epsilon);
        Assert.Equal(["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"], o.EmbeddingOptions().Layers);
        Assert.Equal([1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0], o.LayerWeights.Values);
        // no weights path and random weights not allowed → refused
        var ex = Assert.Throws<McirException>(() => new ContrastRegularizationLoss(o));
        Assert.Contains("vgg19-dcbb9e9d.pth", ex.Message);
    }

    [Fact]
    public void InputVariant_EqualsModelsVariantWithTheInputAsOnlyNegative_OnVgg19()
    {
        var options = new ContrastRegularizationOptions
        {
            Embedding = new VggEmbeddingOptions { Variant = VggVariant.Vgg19, Normalize = false, AllowRandomWeights = true, RandomSeed = 3 },
        };
        using var cr = new ContrastRegularizationLoss(options);
        Assert.False(cr.NeedsNegatives);
        Assert.Contains(VggEmbedding.RandomWeightsMarker, cr.Embedding.WeightsDescription);
        using var crModels = new ContrastRegularizationLoss(options with { Negatives = CrNegatives.Models }, cr.Embedding);
        using var scope = torch.NewDisposeScope();
        using var gen = new Generator(4);
        var o = torch.rand(new long[] { 2, 3, 32, 32 }, generator: gen);
        var y = torch.rand(new long[] { 2, 3, 32, 32 }, generator: gen);
        var x = torch.rand(new long[] { 2, 3, 32, 32 }, generator: gen);
        var a = o.clone().requires_grad_(true);
        var b = o.clone().requires_grad_(true);
        var ra = cr.Compute(new LossContext(a, y, x, null));
        var rb = crModels.Compute(new LossContext(b, y, x, x.unsqueeze(0)));
        Assert.Equal(rb.Parts["cr"], ra.Parts["cr"]);
        SpnFixture.AssertRel(0.1 * ra.Parts["cr/ratio"], ra.Parts["cr"], 1e-6, "cr = 0.1 · ratio");
        ra.Value.backward(); rb.Value.backward();
        Assert.True(a.grad!.equal(b.grad!).all().item<bool>());

        // total = L1 + β·CR is an ordinary sum of terms
        var l1 = new L1Loss().Compute(new LossContext(o, y, x, null));
        Assert.True(l1.Parts["l1"] > 0);

        // super-resolution: the input has another size → a clear error
        var lr = torch.rand(2, 3, 16, 16);
        var ex = Assert.Throws<ArgumentException>(() => cr.Compute(new LossContext(o, y, lr, null)));
        Assert.Contains("negatives: models", ex.Message);
    }
}
