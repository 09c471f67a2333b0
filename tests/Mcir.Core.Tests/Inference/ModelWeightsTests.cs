using System.Collections;
using System.Text.Json.Nodes;
using Mcir.Abstractions.Models;
using Mcir.Core.Inference;
using Mcir.Core.Runs;
using Mcir.Core.Training;
using Mcir.Core.Weights;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Inference;

/// <summary>Options of <see cref="TinyNet"/> (no <c>upscale</c>).</summary>
public sealed record TinyOptions
{
    public int NumFeat { get; init; } = 4;
}

/// <summary>Options of <see cref="TinyUpNet"/> (with <c>upscale</c>).</summary>
public sealed record TinyUpOptions
{
    public int NumFeat { get; init; } = 4;
    public int Upscale { get; init; } = 2;
}

internal sealed class TinyNet : nn.Module<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> conv_first, conv_last;

    public TinyNet(int numFeat, int upscale = 1) : base(nameof(TinyNet))
    {
        conv_first = nn.Conv2d(3, numFeat, 3, padding: 1);
        conv_last = nn.Conv2d(numFeat, 3 * upscale * upscale, 3, padding: 1);
        Upscale = upscale;
        RegisterComponents();
    }

    public int Upscale { get; }

    public override Tensor forward(Tensor x)
    {
        var y = conv_last.call(conv_first.call(x));
        return Upscale == 1 ? y : nn.functional.pixel_shuffle(y, Upscale);
    }
}

public class ModelWeightsTests
{
    private static ModelRegistry Registry() => new([
        ModelDescriptor.Of<TinyNet, TinyOptions>("tiny", ["denoise"], "", new TinyOptions(), o => new TinyNet(o.NumFeat)),
        ModelDescriptor.Of<TinyNet, TinyUpOptions>("tiny-up", ["sr"], "", new TinyUpOptions(), o => new TinyNet(o.NumFeat, o.Upscale)),
    ]);

    private static bool SameWeights(nn.Module a, nn.Module b)
    {
        var sb = b.state_dict();
        foreach (var (k, t) in a.state_dict())
        {
            using var eq = t.eq(sb[k]).all();
            if (!eq.item<bool>()) return false;
        }
        return true;
    }

    private static string WriteRun(string root, TinyNet target, TinyNet? ema, long iteration, string model = "tiny-up", int numFeat = 4)
    {
        var files = new List<(string, Action<Stream>)> { ("model.safetensors", s => ModuleStateFile.Write(s, target, "target")) };
        if (ema is not null) files.Add(("ema.safetensors", s => ModuleStateFile.Write(s, ema, "ema")));
        string ckpt = CheckpointStore.Write(root, iteration, files);
        File.WriteAllText(Path.Combine(root, "config.resolved.json"),
            $$"""{ "name": "r", "model": { "name": "{{model}}", "options": { "num_feat": {{numFeat}}, "upscale": 2 } } }""");
        return ckpt;
    }

    [Fact]
    public void TheModelScaleIsItsIntegerUpscaleOption()
    {
        Assert.Equal(3, RunComposition.ModelUpscale(new TinyUpOptions { Upscale = 3 }));
        Assert.Null(RunComposition.ModelUpscale(new TinyOptions()));
        Assert.Equal(4, RunComposition.ModelUpscale(new JsonObject { ["upscale"] = 4 }));
        Assert.Null(RunComposition.ModelUpscale(new JsonObject { ["upscale"] = "x4" }));
        Assert.True(RunComposition.HasUpscale(new JsonObject { ["upscale"] = null }));
        Assert.False(RunComposition.HasUpscale(new TinyOptions()));
    }

    [Fact]
    public void RunFolderGivesTheNewestCompleteCheckpointItsEmaAndTheModel()
    {
        using var scope = NewDisposeScope();
        var dir = Directory.CreateTempSubdirectory("mcir-weights-").FullName;
        try
        {
            manual_seed(1);
            using var oldNet = new TinyNet(6, 2);
            using var target = new TinyNet(6, 2);
            using var ema = new TinyNet(6, 2);
            WriteRun(dir, oldNet, oldNet, 2, numFeat: 6);
            WriteRun(dir, target, ema, 4, numFeat: 6);
            // a newer, damaged checkpoint is skipped
            string broken = CheckpointStore.Write(dir, 6, [("model.safetensors", s => ModuleStateFile.Write(s, oldNet, "target"))]);
            File.AppendAllText(Path.Combine(broken, "model.safetensors"), "x");

            var source = ModelWeights.Resolve(dir);
            Assert.Equal(WeightsKind.Run, source.Kind);
            Assert.True(source.Ema);
            Assert.EndsWith(Path.Combine("iter_000004", "ema.safetensors"), source.File);
            Assert.Contains("target EMA, iteration 4", source.Description);
            Assert.Equal("tiny-up", source.Model!.Name);
            Assert.Equal("r", (string?)source.ResolvedConfig!["name"]); // the run's configuration, read once, travels with the weights

            using var model = ModelWeights.Open(Registry(), new InferenceModelRequest { Weights = dir });
            Assert.Equal("tiny-up", model.Descriptor.Name);
            Assert.Equal(new TinyUpOptions { NumFeat = 6, Upscale = 2 }, model.Options);
            Assert.Equal(2, model.Upscale);
            Assert.True(SameWeights(model.Network, ema));
            Assert.False(model.Network.training);

            using var plain = ModelWeights.Open(Registry(), new InferenceModelRequest { Weights = dir, Ema = EmaChoice.Off });
            Assert.True(SameWeights(plain.Network, target));
            Assert.Contains("EMA weights not used", plain.Weights.Description);

            // a checkpoint folder inside the run finds the run's model too
            var ckpt = ModelWeights.Resolve(Path.Combine(dir, "checkpoints", "iter_000002"), EmaChoice.Off);
            Assert.Equal(WeightsKind.Checkpoint, ckpt.Kind);
            Assert.Equal("tiny-up", ckpt.Model!.Name);
            Assert.EndsWith("model.safetensors", ckpt.File);

            var e = Assert.Throws<McirException>(() => ModelWeights.Resolve(broken));
            Assert.Contains("not complete", e.Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void EmaOnWithoutEmaIsAnError()
    {
        var dir = Directory.CreateTempSubdirectory("mcir-weights-").FullName;
        try
        {
            using var net = new TinyNet(4, 2);
            WriteRun(dir, net, null, 1);
            Assert.False(ModelWeights.Resolve(dir).Ema);
            Assert.Contains("has no EMA", ModelWeights.Resolve(dir).Description);
            var e = Assert.Throws<McirException>(() => ModelWeights.Resolve(dir, EmaChoice.On));
            Assert.Contains("no ema.safetensors", e.Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void OfficialPthPrefersParamsEmaStripsModuleAndHonoursParamKey()
    {
        using var scope = NewDisposeScope();
        var dir = Directory.CreateTempSubdirectory("mcir-weights-").FullName;
        try
        {
            manual_seed(2);
            using var plain = new TinyNet(4);
            using var ema = new TinyNet(4);
            static Hashtable Prefixed(nn.Module m)
            {
                var h = new Hashtable();
                foreach (var (k, t) in m.state_dict()) h["module." + k] = t;
                return h;
            }
            string both = Path.Combine(dir, "net_g_1000.pth");
            PyTorchPickler.PickleStateDict(both, new Hashtable { ["params"] = Prefixed(plain), ["params_ema"] = Prefixed(ema) });
            string onlyParams = Path.Combine(dir, "net_g.pth");
            PyTorchPickler.PickleStateDict(onlyParams, new Hashtable { ["params"] = Prefixed(plain) });

            var registry = Registry();
            using (var m = ModelWeights.Open(registry, new InferenceModelRequest { Weights = both, Model = "tiny" }))
            {
                Assert.Equal("params_ema", m.Weights.ParamKey);
                Assert.True(SameWeights(m.Network, ema));
            }
            using (var m = ModelWeights.Open(registry, new InferenceModelRequest { Weights = both, Model = "tiny", ParamKey = "params" }))
                Assert.True(SameWeights(m.Network, plain));
            using (var m = ModelWeights.Open(registry, new InferenceModelRequest { Weights = both, Model = "tiny", Ema = EmaChoice.Off }))
                Assert.True(SameWeights(m.Network, plain));
            using (var m = ModelWeights.Open(registry, new InferenceModelRequest { Weights = onlyParams, Model = "tiny" }))
            {
                Assert.Equal("params", m.Weights.ParamKey);
                Assert.True(SameWeights(m.Network, plain));
            }
            var e = Assert.Throws<McirException>(() => ModelWeights.Open(registry, new InferenceModelRequest { Weights = onlyParams, Model = "tiny", ParamKey = "params_ema" }));
            Assert.Contains("net_g.pth", e.Message);
            Assert.Contains("'params_ema'", e.Message);
            Assert.DoesNotContain("negative", e.Message);
            e = Assert.Throws<McirException>(() => ModelWeights.Open(registry, new InferenceModelRequest { Weights = onlyParams }));
            Assert.Contains("--model is required", e.Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void StrictLoadingListsMissingUnexpectedAndShapeMismatches()
    {
        using var scope = NewDisposeScope();
        using var net = new TinyNet(4);
        var state = net.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        state.Remove("conv_first.bias");
        state["conv_last.weight"] = zeros(3, 5, 3, 3);
        state["body.0.weight"] = zeros(1);
        var before = net.state_dict()["conv_first.weight"].clone();

        var e = Assert.Throws<StateDictMismatchException>(() => StateDictLoader.Load(net, state, "weights 'x.pth'"));

        Assert.Contains("weights 'x.pth'", e.Message);
        Assert.Contains("missing keys (1): conv_first.bias", e.Message);
        Assert.Contains("unexpected keys (1): body.0.weight", e.Message);
        Assert.Contains("conv_last.weight: file [3, 5, 3, 3], model [3, 4, 3, 3]", e.Message);
        using var same = net.state_dict()["conv_first.weight"].eq(before).all();
        Assert.True(same.item<bool>()); // nothing was changed
    }

    [Fact]
    public void UnreadableWeightsNameTheFileNotNegatives()
    {
        var dir = Directory.CreateTempSubdirectory("mcir-weights-").FullName;
        try
        {
            string bad = Path.Combine(dir, "broken.safetensors");
            File.WriteAllBytes(bad, [1, 2, 3]);
            var e = Assert.Throws<McirException>(() => ModelWeights.Open(Registry(), new InferenceModelRequest { Weights = bad, Model = "tiny" }));
            Assert.Contains($"weights '{bad}' cannot be read", e.Message);
            Assert.DoesNotContain("negative", e.Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void ScaleSetsUpscaleAndIsRefusedForModelsWithoutIt()
    {
        var registry = Registry();
        var up = ModelWeights.ComposeOptions(registry.Get("tiny-up"), null, ["num_feat=8"], 4);
        Assert.Equal(new TinyUpOptions { NumFeat = 8, Upscale = 4 }, up);

        var e = Assert.Throws<McirException>(() => ModelWeights.ComposeOptions(registry.Get("tiny"), null, [], 2));
        Assert.Contains("--scale 2: model 'tiny' has no 'upscale' option", e.Message);
        e = Assert.Throws<McirException>(() => ModelWeights.ComposeOptions(registry.Get("tiny-up"), null, ["upscale=3"], 2));
        Assert.Contains("contradicts", e.Message);
        e = Assert.Throws<McirException>(() => ModelWeights.ComposeOptions(registry.Get("tiny"), null, ["num_fet=8"], null));
        Assert.Contains("did you mean 'model.options.num_feat'", e.Message);
        // the run's options are the base, --set overrides them
        var fromRun = ModelWeights.ComposeOptions(registry.Get("tiny-up"), new JsonObject { ["num_feat"] = 6, ["upscale"] = 3 }, ["num_feat=5"], null);
        Assert.Equal(new TinyUpOptions { NumFeat = 5, Upscale = 3 }, fromRun);
    }

    [Fact]
    public void UnknownModelListsTheKnownOnes()
    {
        var dir = Directory.CreateTempSubdirectory("mcir-weights-").FullName;
        try
        {
            using var net = new TinyNet(4);
            string file = Path.Combine(dir, "w.pth");
            PyTorchPickler.PickleStateDict(file, new Hashtable(net.state_dict()));
            var e = Assert.Throws<McirException>(() => ModelWeights.Open(Registry(), new InferenceModelRequest { Weights = file, Model = "nope" }));
            Assert.Contains("'nope' is not a registered model (known: tiny, tiny-up)", e.Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
