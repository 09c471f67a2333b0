using Mcir.Core.Embeddings;
using Mcir.Core.Embeddings.Onnx;
using Mcir.Core.ModelContrast;
using Mcir.Core.Weights;

namespace Mcir.Core.Tests.ModelContrast.SpnEmbeddingSelection;

public class SpnEmbeddingSelectionTests
{
    [Fact]
    public void AutoWithoutVggWeightsUsesThePretrainedResNet18AndItsDefaultLayers()
    {
        var (embedding, options) = Core.ModelContrast.SpnEmbeddingSelection.Create(new SpnLossOptions());
        using var _ = embedding;
        if (WeightsLocations.LocateInstalled(KnownWeights.Vgg16) is not null)
        {
            // This machine has torchvision's VGG16 installed: auto must take it.
            Assert.IsType<VggEmbedding>(embedding);
            return;
        }
        Assert.Equal(ResNet18ImageNet.Name, embedding.Name);
        Assert.Equal(["stem", "layer1", "layer2"], embedding.Layers);
        Assert.Equal(ResNet18ImageNet.DefaultLayerWeights, options.LayerWeights);
        Assert.Contains("ResNet18.onnx", embedding.WeightsDescription);
        Assert.DoesNotContain("RANDOM", embedding.WeightsDescription);
    }

    [Fact]
    public void AutoTakesVggWhenItsWeightsAreConfigured()
    {
        string weights = Path.Combine(AppContext.BaseDirectory, "TestData", "spn", "vgg16_features_to_relu3_3.pth");
        var (embedding, options) = Core.ModelContrast.SpnEmbeddingSelection.Create(new SpnLossOptions { Embedding = new VggEmbeddingOptions { WeightsPath = weights } });
        using var _ = embedding;
        Assert.IsType<VggEmbedding>(embedding);
        Assert.Equal(["relu1_2", "relu2_2", "relu3_3"], embedding.Layers);
        Assert.Same(SpnLossOptions.VggDefaultLayerWeights, options.LayerWeights);
        Assert.Contains(weights, embedding.WeightsDescription);
    }

    [Fact]
    public void ExplicitLayerWeightsAreKeptForResNet18()
    {
        var weights = new Dictionary<string, double> { ["stem"] = 1.0, ["layer1.0"] = 0.5 };
        var (embedding, options) = Core.ModelContrast.SpnEmbeddingSelection.Create(new SpnLossOptions { EmbeddingType = "resnet18-imagenet", LayerWeights = weights });
        using var _ = embedding;
        Assert.Equal(["stem", "layer1.0"], embedding.Layers);
        Assert.Same(weights, options.LayerWeights);
    }

    [Fact]
    public void VggWithoutWeightsIsRefusedUnlessRandomWeightsAreAllowed()
    {
        if (WeightsLocations.LocateInstalled(KnownWeights.Vgg16) is not null) return; // an installed copy would be used
        var e = Assert.Throws<McirException>(() => Core.ModelContrast.SpnEmbeddingSelection.Create(new SpnLossOptions { EmbeddingType = "vgg" }));
        Assert.Contains("loss.spn.embedding_type is vgg", e.Message);
        Assert.Contains("vgg16-397923af.pth", e.Message);
        var (embedding, _) = Core.ModelContrast.SpnEmbeddingSelection.Create(new SpnLossOptions { EmbeddingType = "vgg", Embedding = new VggEmbeddingOptions { AllowRandomWeights = true } });
        using (embedding) Assert.Contains("RANDOM", embedding.WeightsDescription);
    }

    [Fact]
    public void AutoWithVggLayerNamesOrAVggSectionButNoVggWeightsSaysSo()
    {
        if (WeightsLocations.LocateInstalled(KnownWeights.Vgg16) is not null) return; // an installed copy would be used
        var layers = new Dictionary<string, double> { ["relu1_2"] = 0.5, ["relu2_2"] = 0.5 };
        var named = Assert.Throws<McirException>(() => Core.ModelContrast.SpnEmbeddingSelection.Create(new SpnLossOptions { LayerWeights = layers }));
        Assert.StartsWith("loss.spn.layer_weights names vgg16 layers (relu1_2, relu2_2), but torchvision's vgg16 weights 'vgg16-397923af.pth' were not found", named.Message);
        Assert.Contains("$MCIR_VGG16_WEIGHTS is not set", named.Message);
        Assert.Contains(WeightsLocations.ResolveCacheDirectory(null), named.Message);
        Assert.Contains("mcir-host weights fetch vgg16", named.Message);
        Assert.Contains("embedding_type: resnet18-imagenet", named.Message);
        Assert.DoesNotContain('\n', named.Message);

        var section = Assert.Throws<McirException>(() => Core.ModelContrast.SpnEmbeddingSelection.Create(
            new SpnLossOptions { Embedding = new VggEmbeddingOptions { Variant = VggVariant.Vgg19 } }));
        Assert.StartsWith("loss.spn.embedding configures a VGG embedding, but torchvision's vgg19 weights 'vgg19-dcbb9e9d.pth'", section.Message);

        // ResNet18 layer names under auto are not a request for VGG.
        var (embedding, _) = Core.ModelContrast.SpnEmbeddingSelection.Create(new SpnLossOptions { LayerWeights = new Dictionary<string, double> { ["stem"] = 1 } });
        using (embedding) Assert.Equal(ResNet18ImageNet.Name, embedding.Name);
    }

    [Fact]
    public void UnknownTypeAndOnnxWithoutLayersAreClearErrors()
    {
        var e = Assert.Throws<McirException>(() => Core.ModelContrast.SpnEmbeddingSelection.Create(new SpnLossOptions { EmbeddingType = "resnet50" }));
        Assert.Contains("'resnet50'", e.Message);
        Assert.Contains("resnet18-imagenet", e.Message);
        var onnx = Assert.Throws<McirException>(() => Core.ModelContrast.SpnEmbeddingSelection.Create(new SpnLossOptions { EmbeddingType = "onnx" }));
        Assert.Contains("layer_weights", onnx.Message);
    }

    [Fact]
    public void SpnLossFromOptionsOwnsAndUsesTheSelectedEmbedding()
    {
        using var spn = SpnLoss.FromOptions(new SpnLossOptions { EmbeddingType = "resnet18-imagenet" });
        Assert.Equal(ResNet18ImageNet.Name, spn.Embedding.Name);
        Assert.Contains("stem:0.2", spn.Describe());
    }
}
