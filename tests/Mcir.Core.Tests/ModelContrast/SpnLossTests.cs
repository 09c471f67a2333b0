using Mcir.Abstractions.Losses;
using Mcir.Core.Embeddings;
using Mcir.Core.Losses;
using Mcir.Core.ModelContrast;
using Mcir.Core.Tests.Embeddings;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.ModelContrast.Spn;

/// <summary>Parity of the SPN loss with the MCLIR reference (TestData/spn), plus its invariants.</summary>
public class SpnLossTests
{
    /// <summary>The fixture's configuration: VGG16 relu1_2/2_2/3_3 (0.2/0.3/0.5), ImageNet normalisation, λ = 0.001.</summary>
    internal static SpnLossOptions FixtureOptions(SpnForm form = SpnForm.Subtract, double lambda = 1e-3) => new()
    {
        Lambda = lambda,
        Form = form,
        Embedding = new VggEmbeddingOptions { Variant = VggVariant.Vgg16, Normalize = true, WeightsPath = SpnFixture.WeightsPath },
    };

    private sealed record Run(double Total, double L1, double Spn, IReadOnlyDictionary<string, double> Parts, Tensor Grad);

    /// <summary>L = L1 + SPN on the fixture, with dL/d out (only terms selected by flags enter the backward pass).</summary>
    private static Run Evaluate(SpnLoss spn, Tensor outT, Tensor gt, Tensor negs, bool withL1 = true)
    {
        using var scope = torch.NewDisposeScope();
        var o = outT.detach().clone().requires_grad_(true);
        var ctx = new LossContext(o, gt, gt, negs);
        var l1 = new L1Loss().Compute(ctx);
        var s = spn.Compute(ctx);
        var total = withL1 ? l1.Value + s.Value : s.Value;
        total.backward();
        var grad = o.grad!.detach().clone().DetachFromDisposeScope();
        return new Run(total.to(float64).item<double>(), l1.Parts["l1"], s.Parts["spn"], s.Parts, grad);
    }

    private static (Tensor o, Tensor gt, Tensor negs) Arrays() =>
        (SpnFixture.Load("out.npy"), SpnFixture.Load("gt.npy"), SpnFixture.Load("negs.npy"));

    [Fact]
    public void PerLayerDistances_PerNegativeLPercep_AndTotal_MatchReference()
    {
        using var spn = new SpnLoss(FixtureOptions());
        var (o, gt, negs) = Arrays();
        using var _o = o; using var _g = gt; using var _n = negs;
        var r = Evaluate(spn, o, gt, negs);
        using var _gr = r.Grad;
        var f32 = SpnFixture.F32;

        // per-layer, per-negative distances (unweighted means), recomputed per negative from the batched features
        var perLayer = f32.GetProperty("per_layer_l1").EnumerateArray().ToArray();
        using (var scope = torch.NewDisposeScope())
        using (var emb = SpnFixture.SpnEmbedding())
        {
            var fo = emb.Extract(o);
            for (int j = 0; j < 4; j++)
            {
                var fn = emb.Extract(negs[j]);
                for (int l = 0; l < 3; l++)
                {
                    double d = (fo[l] - fn[l]).abs().mean().to(float64).item<double>();
                    SpnFixture.AssertRel(perLayer[j].GetProperty(SpnFixture.SpnLayers[l]).GetDouble(), d, 1e-5, $"per_layer_l1[{j}][{SpnFixture.SpnLayers[l]}]");
                }
            }
        }
        // "spn/layer/{name}" = mean over j of those distances
        for (int l = 0; l < 3; l++)
        {
            double mean = perLayer.Average(e => e.GetProperty(SpnFixture.SpnLayers[l]).GetDouble());
            SpnFixture.AssertRel(mean, r.Parts[$"spn/layer/{SpnFixture.SpnLayers[l]}"], 1e-5, $"spn/layer/{SpnFixture.SpnLayers[l]}");
        }
        // per-negative l_percep_j = λ · Σ_l w_l d_lj  (the part "spn/neg{j}" is the weighted distance without λ)
        var lPercep = f32.GetProperty("l_percep_per_negative").EnumerateArray().Select(e => e.GetDouble()).ToArray();
        for (int j = 0; j < 4; j++)
            SpnFixture.AssertRel(lPercep[j], 1e-3 * r.Parts[$"spn/neg{j}"], 1e-5, $"l_percep[{j}]");

        SpnFixture.AssertRel(f32.GetProperty("l_pix").GetDouble(), r.L1, 1e-6, "l_pix");
        SpnFixture.AssertRel(-f32.GetProperty("l_neg_mean").GetDouble(), r.Spn, 1e-5, "spn = -l_neg_mean");
        // L = L1 − mean_j l_percep_j, to 1e-6 relative (float32 reference; its float64 recomputation differs by 1e-8 relative)
        SpnFixture.AssertRel(f32.GetProperty("l_total").GetDouble(), r.Total, 1e-6, "l_total");
        SpnFixture.AssertRel(SpnFixture.Root.GetProperty("float64_reference").GetProperty("l_total").GetDouble(), r.Total, 1e-6, "l_total (float64 ref)");
    }

    [Fact]
    public void Gradient_OfTotalAndOfSpnAlone_MatchReference()
    {
        using var spn = new SpnLoss(FixtureOptions());
        var (o, gt, negs) = Arrays();
        using var _o = o; using var _g = gt; using var _n = negs;
        using var refTotal = SpnFixture.Load("grad_out.npy");
        using var refSpn = SpnFixture.Load("grad_out_spn_only.npy");

        var total = Evaluate(spn, o, gt, negs);
        using var _t = total.Grad;
        double errTotal = SpnFixture.MaxRelToLargest(total.Grad, refTotal);
        Assert.True(errTotal <= 1e-5, $"dL/d out: max |diff| / max |ref| = {errTotal:E2}");

        var spnOnly = Evaluate(spn, o, gt, negs, withL1: false);
        using var _s = spnOnly.Grad;
        double errSpn = SpnFixture.MaxRelToLargest(spnOnly.Grad, refSpn);
        Assert.True(errSpn <= 1e-5, $"dSPN/d out: max |diff| / max |ref| = {errSpn:E2}");
    }

    [Fact]
    public void LambdaZero_LossAndGradientEqualL1()
    {
        using var emb = SpnFixture.SpnEmbedding();
        using var spn = new SpnLoss(FixtureOptions(lambda: 0), emb);
        var (o, gt, negs) = Arrays();
        using var _o = o; using var _g = gt; using var _n = negs;
        var withSpn = Evaluate(spn, o, gt, negs);
        using var _a = withSpn.Grad;
        using var scope = torch.NewDisposeScope();
        var oo = o.clone().requires_grad_(true);
        var l1 = new L1Loss().Compute(new LossContext(oo, gt, gt, null));
        l1.Value.backward();
        Assert.Equal(l1.Value.to(float64).item<double>(), withSpn.Total);
        Assert.Equal(0.0, withSpn.Spn);
        Assert.True(withSpn.Grad.equal(oo.grad!).all().item<bool>(), "gradient with lambda 0 differs from the L1 gradient");
        Assert.True(withSpn.Parts["spn/neg0"] > 0); // distances are still reported
    }

    [Theory]
    [InlineData(SpnForm.Subtract)]
    [InlineData(SpnForm.Ratio)]
    public void NegativesEqualToOutput_GiveZeroNegativeDistance(SpnForm form)
    {
        using var emb = SpnFixture.SpnEmbedding();
        using var spn = new SpnLoss(FixtureOptions(form), emb);
        using var scope = torch.NewDisposeScope();
        var o = SpnFixture.Load("out.npy");
        var gt = SpnFixture.Load("gt.npy");
        var negs = o.unsqueeze(0).expand(3, -1, -1, -1, -1).contiguous();
        var oo = o.clone().requires_grad_(true);
        var r = spn.Compute(new LossContext(oo, gt, gt, negs));
        for (int j = 0; j < 3; j++) Assert.Equal(0.0, r.Parts[$"spn/neg{j}"]);
        if (form == SpnForm.Subtract)
        {
            Assert.Equal(0.0, r.Parts["spn"]);
            r.Value.backward();
            Assert.Equal(0f, oo.grad!.abs().max().item<float>());
        }
        else
        {
            // ratio: d_an = 0, so each layer's ratio is d_ap / ε — large but finite (the bounded form's worst case)
            Assert.True(double.IsFinite(r.Parts["spn"]) && r.Parts["spn"] > 0);
        }
    }

    [Theory]
    [InlineData(SpnForm.Subtract)]
    [InlineData(SpnForm.Ratio)]
    public void Batched_EqualsPerNegativeComputation(SpnForm form)
    {
        using var emb = SpnFixture.SpnEmbedding();
        var options = FixtureOptions(form);
        using var spn = new SpnLoss(options, emb);
        using var scope = torch.NewDisposeScope();
        var o = SpnFixture.Load("out.npy");
        var gt = SpnFixture.Load("gt.npy");
        var negs = SpnFixture.Load("negs.npy");
        var oo = o.clone().requires_grad_(true);
        var r = spn.Compute(new LossContext(oo, gt, gt, negs));
        r.Value.backward();

        // reference: one negative at a time, φ(o) recomputed for each (as MCLIR does)
        var o2 = o.clone().requires_grad_(true);
        double[] w = [0.2, 0.3, 0.5];
        Tensor? value = null;
        var dan = new Tensor[3];
        var perNeg = new double[4];
        for (int j = 0; j < 4; j++)
        {
            var fo = emb.Extract(o2);
            IReadOnlyList<Tensor> fn;
            using (torch.no_grad()) fn = emb.Extract(negs[j]);
            Tensor? dj = null;
            for (int l = 0; l < 3; l++)
            {
                var d = (fo[l] - fn[l]).abs().mean();
                dan[l] = dan[l] is null ? d / 4 : dan[l] + d / 4;
                dj = dj is null ? d * w[l] : dj + d * w[l];
            }
            perNeg[j] = dj!.item<float>();
            value = value is null ? dj : value + dj;
        }
        if (form == SpnForm.Subtract) value = -1e-3 * value! / 4;
        else
        {
            var fo = emb.Extract(o2);
            IReadOnlyList<Tensor> fy;
            using (torch.no_grad()) fy = emb.Extract(gt);
            value = null;
            for (int l = 0; l < 3; l++)
            {
                var t = (fo[l] - fy[l]).abs().mean() * w[l] / (dan[l] + options.Epsilon);
                value = value is null ? t : value + t;
            }
            value = value! * 1e-3;
        }
        value.backward();
        SpnFixture.AssertRel(value.to(float64).item<double>(), r.Parts["spn"], 1e-5, "spn value");
        for (int j = 0; j < 4; j++) SpnFixture.AssertRel(perNeg[j], r.Parts[$"spn/neg{j}"], 1e-5, $"spn/neg{j}");
        double err = SpnFixture.MaxRelToLargest(oo.grad!, o2.grad!);
        Assert.True(err <= 1e-5, $"gradient batched vs per-negative: {err:E2}");
    }

    [Fact]
    public void RatioForm_IsBoundedAndReportsPositive()
    {
        using var emb = SpnFixture.SpnEmbedding();
        using var spn = new SpnLoss(FixtureOptions(SpnForm.Ratio, lambda: 1), emb);
        using var scope = torch.NewDisposeScope();
        var o = SpnFixture.Load("out.npy");
        var gt = SpnFixture.Load("gt.npy");
        var negs = SpnFixture.Load("negs.npy");
        var r = spn.Compute(new LossContext(o, gt, gt, negs));
        Assert.True(r.Parts["spn"] > 0 && r.Parts["spn/pos"] > 0);
        // output = target → numerator 0 → term 0
        var r0 = spn.Compute(new LossContext(gt, gt, gt, negs));
        Assert.Equal(0.0, r0.Parts["spn"]);
    }

    [Fact]
    public void MissingOrMisshapenNegatives_AreClearErrors()
    {
        using var emb = SpnFixture.SpnEmbedding();
        using var spn = new SpnLoss(FixtureOptions(), emb);
        Assert.True(spn.NeedsNegatives);
        using var scope = torch.NewDisposeScope();
        var o = torch.rand(1, 3, 16, 16);
        var ex = Assert.Throws<InvalidOperationException>(() => spn.Compute(new LossContext(o, o, o, null)));
        Assert.Contains("negatives", ex.Message);
        var ex2 = Assert.Throws<ArgumentException>(() => spn.Compute(new LossContext(o, o, o, torch.rand(new long[] { 2, 1, 3, 8, 8 }))));
        Assert.Contains("[K, B, C, H, W]", ex2.Message);
        Assert.Throws<ArgumentException>(() => new SpnLoss(FixtureOptions() with
        {
            LayerWeights = new Dictionary<string, double> { ["relu4_3"] = 1 },
        }, emb));
        Assert.Contains("lambda 0.001", spn.Describe());
    }
}

/// <summary>Memory growth is measured process-wide (RSS), so this runs alone, not beside other test classes.</summary>
[Collection(NativeMemoryCollection.Name)]
public class SpnLossMemoryTests
{
    private static SpnLossOptions FixtureOptions() => SpnLossTests.FixtureOptions();

    [Fact]
    public void RepeatedEvaluations_DoNotGrowNativeMemory()
    {
        using var emb = SpnFixture.SpnEmbedding();
        using var spn = new SpnLoss(FixtureOptions(), emb);
        var l1 = new L1Loss();
        using var gen = new Generator(11);
        using var o = torch.rand(new long[] { 1, 3, 16, 16 }, generator: gen).requires_grad_(true);
        using var gt = torch.rand(new long[] { 1, 3, 16, 16 }, generator: gen);
        using var negs = torch.rand(new long[] { 2, 1, 3, 16, 16 }, generator: gen);

        void Step()
        {
            using var scope = torch.NewDisposeScope();
            var ctx = new LossContext(o, gt, gt, negs);
            var total = l1.Compute(ctx).Value + spn.Compute(ctx).Value;
            total.backward();
            o.grad!.zero_();
        }
        for (int i = 0; i < 10; i++) Step(); // warm up allocator and autograd caches
        GC.Collect(); GC.WaitForPendingFinalizers();
        long live0 = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        long rss0 = SpnFixture.RssBytes();
        for (int i = 0; i < 200; i++) Step();
        GC.Collect(); GC.WaitForPendingFinalizers();
        long live1 = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        long rss1 = SpnFixture.RssBytes();
        // A single leaked feature set here is ~100 kB per step (20 MB over 200 steps) and ~25 handles per step.
        Assert.True(live1 - live0 <= 2, $"live tensors grew from {live0} to {live1} over 200 evaluations");
        Assert.True(rss1 - rss0 < 64L << 20, $"RSS grew by {(rss1 - rss0) >> 20} MB over 200 evaluations");
    }
}
