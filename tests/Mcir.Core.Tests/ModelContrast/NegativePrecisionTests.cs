using Mcir.Abstractions.Losses;
using Mcir.Core.Compute;
using Mcir.Core.Embeddings;
using Mcir.Core.Losses;
using Mcir.Core.ModelContrast;
using Mcir.Core.Tests.ModelContrast.TestNetworks;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.ModelContrast.NegativePrecisionChecks;

/// <summary>bfloat16 negatives: close to the float32 ones, float32 masters stay exact, mirrors follow updates.</summary>
public class NegativePrecisionTests
{
    // Both banks start from the same target weights and copy them (no draw from the process-wide generator, which
    // tests running in parallel also use), so their float32 masters must be identical.
    private static readonly Dictionary<string, Tensor> TargetWeights = InitialWeights();

    private static Dictionary<string, Tensor> InitialWeights()
    {
        using var net = new NegativeBankTestEdsr(8, 1, 2);
        return net.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone().DetachFromDisposeScope());
    }

    private static (Mcir.Core.ModelContrast.NegativeBank Bank, NegativeBankTestEdsr Target) Bank(NegativePrecision p)
    {
        var target = new NegativeBankTestEdsr(8, 1, 2);
        target.load_state_dict(TargetWeights);
        return (Mcir.Core.ModelContrast.NegativeBank.Create(target, new NegativeBankOptions { Steps = [1, 2], Init = NegativeInit.Copy, Precision = p }), target);
    }

    [Fact]
    public void BFloat16NegativesAreCloseToFloat32OnesAndFollowUpdates()
    {
        var (b32, t32) = Bank(NegativePrecision.Float32);
        var (b16, t16) = Bank(NegativePrecision.BFloat16);
        using (b32) using (t32) using (b16) using (t16)
        using (var scope = NewDisposeScope())
        {
            var x = rand(2, 3, 12, 12, generator: new Generator(3));
            var n32 = b32.Produce(x);
            var n16 = b16.Produce(x);
            Assert.Equal(ScalarType.Float32, n16.dtype);
            Assert.Equal(n32.shape, n16.shape);
            double err = (n32 - n16).abs().max().item<float>();
            Assert.InRange(err, 1e-7, 0.02); // bfloat16 really was used, and stays close

            // The float32 masters are identical in both banks; the update moves both the same way.
            foreach (var (a, b) in b32.Negatives.Zip(b16.Negatives))
                foreach (var ((name, p), (_, q)) in a.named_parameters().Zip(b.named_parameters()))
                {
                    Assert.Equal(ScalarType.Float32, q.dtype);
                    Assert.True(NegativeBankTestData.Equal(p, q), name);
                }
            using (no_grad()) foreach (var p in t32.parameters().Concat(t16.parameters())) p.add_(0.02);
            b32.OnIterationEnd(1, t32);
            b16.OnIterationEnd(1, t16);
            var after32 = b32.Produce(x);
            var after16 = b16.Produce(x);
            Assert.True((after16 - n16).abs().max().item<float>() > 0.01, "the bfloat16 mirror did not follow the update");
            double relAfter = (after32 - after16).abs().max().item<float>() / after32.abs().max().item<float>();
            Assert.InRange(relAfter, 1e-7, 0.02);
        }
    }

    [Fact]
    public void BFloat16NegativeFeaturesGiveCloseSpnValueAndGradient()
    {
        string weights = Path.Combine(AppContext.BaseDirectory, "TestData", "spn", "vgg16_features_to_relu3_3.pth");
        var options = new SpnLossOptions { EmbeddingType = "vgg", Embedding = new VggEmbeddingOptions { WeightsPath = weights } };
        using var spn32 = SpnLoss.FromOptions(options);
        using var spn16 = SpnLoss.FromOptions(options with { NegativePrecision = NegativePrecision.BFloat16 });
        using var scope = NewDisposeScope();
        var gen = new Generator(9);
        var gt = rand(2, 3, 32, 32, generator: gen);
        var negs = rand(new long[] { 3, 2, 3, 32, 32 }, generator: gen);
        var o32 = rand(2, 3, 32, 32, generator: new Generator(10)).requires_grad_(true);
        var o16 = o32.detach().clone().requires_grad_(true);
        var v32 = spn32.Compute(new LossContext(o32, gt, gt, negs)).Value;
        var v16 = spn16.Compute(new LossContext(o16, gt, gt, negs)).Value;
        v32.backward();
        v16.backward();
        double rel = Math.Abs(v16.item<float>() - v32.item<float>()) / Math.Abs(v32.item<float>());
        Assert.InRange(rel, 0, 0.02);
        Assert.NotEqual(v32.item<float>(), v16.item<float>()); // the bfloat16 copy was really used
        double gradErr = (o16.grad! - o32.grad!).abs().max().item<float>() / o32.grad!.abs().max().item<float>();
        Assert.InRange(gradErr, 0, 0.1); // sign flips of near-equal features only
    }

    [Fact]
    public void BFloat16FeaturesAreRefusedForOnnxEmbeddings()
    {
        var e = Assert.Throws<McirException>(() => SpnLoss.FromOptions(new SpnLossOptions { EmbeddingType = "resnet18-imagenet", NegativePrecision = NegativePrecision.BFloat16 }));
        Assert.Contains("negative_precision", e.Message);
    }
}
