using System.ComponentModel.DataAnnotations;
using System.Text.Json.Nodes;
using Mcir.Core.Config;

namespace Mcir.Core.Tests.Config;

public class ConfigBinderTests
{
    public enum Kind { Ema, FixedRandom }

    public sealed record Optimizer(string Type = "adam", double Lr = 2e-4, double[]? Betas = null);

    public sealed record Train
    {
        public int TotalIter { get; init; } = 1000;
        public Kind NegativeKind { get; init; } = Kind.Ema;
        public Optimizer Optimizer { get; init; } = new();
        public int[] Milestones { get; init; } = [500];
    }

    [Fact]
    public void BindsSnakeCaseKeysAndKebabCaseEnumsKeepingDefaults()
    {
        var node = JsonNode.Parse("""{ "total_iter": 20, "negative_kind": "fixed-random", "optimizer": { "lr": 0.001 } }""");
        var t = ConfigBinder.Bind<Train>(node, "train");
        Assert.Equal(20, t.TotalIter);
        Assert.Equal(Kind.FixedRandom, t.NegativeKind);
        Assert.Equal(0.001, t.Optimizer.Lr);
        Assert.Equal("adam", t.Optimizer.Type);
        Assert.Equal([500], t.Milestones);
    }

    [Fact]
    public void MisspelledKeyNamesTheKeyAndTheClosestValidOne()
    {
        var node = JsonNode.Parse("""{ "optimizer": { "lr": 0.001, "betass": [0.9, 0.99] } }""");
        var e = Assert.Throws<McirException>(() => ConfigBinder.Bind<Train>(node, "train"));
        Assert.Contains("'train.optimizer.betass'", e.Message);
        Assert.Contains("did you mean 'train.optimizer.betas'?", e.Message);
    }

    [Fact]
    public void UnrelatedKeyListsTheValidKeys()
    {
        var e = Assert.Throws<McirException>(() => ConfigBinder.Bind<Train>(JsonNode.Parse("""{ "colour": 1 }"""), "train"));
        Assert.Contains("'train.colour'", e.Message);
        Assert.Contains("total_iter", e.Message);
        Assert.Contains("negative_kind", e.Message);
    }

    [Fact]
    public void WrongValueTypeNamesThePath()
    {
        var e = Assert.Throws<McirException>(() => ConfigBinder.Bind<Train>(JsonNode.Parse("""{ "total_iter": "many" }"""), "train"));
        Assert.Contains("train.total_iter", e.Message);
    }

    [Fact]
    public void UnknownEnumValueNamesThePath()
    {
        var e = Assert.Throws<McirException>(() => ConfigBinder.Bind<Train>(JsonNode.Parse("""{ "negative_kind": "fixed-pretrain" }"""), "train"));
        Assert.Contains("train.negative_kind", e.Message);
    }

    [Fact]
    public void OverridesParseJsonValuesAndCreatePaths()
    {
        var root = new JsonObject { ["train"] = new JsonObject { ["total_iter"] = 5 } };
        ConfigBinder.ApplyOverride(root, "train.total_iter=300");
        ConfigBinder.ApplyOverride(root, "train.optimizer.betas=[0.9,0.999]");
        ConfigBinder.ApplyOverride(root, "train.optimizer.type=adamw");
        var t = ConfigBinder.Bind<Train>(root["train"], "train");
        Assert.Equal(300, t.TotalIter);
        Assert.Equal([0.9, 0.999], t.Optimizer.Betas!);
        Assert.Equal("adamw", t.Optimizer.Type);
    }

    [Fact]
    public void OverrideWithoutEqualsSignIsRefused()
    {
        var e = Assert.Throws<McirException>(() => ConfigBinder.ApplyOverride(new JsonObject(), "train.total_iter"));
        Assert.Contains("key.path=value", e.Message);
    }

    [Fact]
    public void OverrideOfAMisspelledKeyIsCaughtWhenBinding()
    {
        var root = new JsonObject();
        ConfigBinder.ApplyOverride(root, "train.total_iters=10");
        var e = Assert.Throws<McirException>(() => ConfigBinder.Bind<Train>(root["train"], "train"));
        Assert.Contains("did you mean 'train.total_iter'?", e.Message);
    }

    [Fact]
    public void ResolvedJsonRoundTripsWithEveryDefault()
    {
        var t = ConfigBinder.Bind<Train>(JsonNode.Parse("""{ "total_iter": 7 }"""), "train");
        var json = ConfigBinder.ToJson(t);
        Assert.Equal(7, json["total_iter"]!.GetValue<int>());
        Assert.Equal("ema", json["negative_kind"]!.GetValue<string>());
        Assert.Equal(2e-4, json["optimizer"]!["lr"]!.GetValue<double>());
        // Binding the resolved form again yields the same configuration.
        Assert.Equal(json.ToJsonString(), ConfigBinder.ToJson(ConfigBinder.Bind<Train>(json, "train")).ToJsonString());
    }

    // An options record with a computed member (as SwinIROptions.PatchesResolution) and a get-only member filled by the
    // constructor.
    public sealed record Windowed
    {
        public Windowed() { }

        [System.Text.Json.Serialization.JsonConstructor]
        public Windowed(int seed) => Seed = seed;

        public int Seed { get; }
        public int ImgSize { get; init; } = 64;
        public int PatchSize { get; init; } = 2;
        public int PatchesResolution => ImgSize / PatchSize;
    }

    [Fact]
    public void ComputedMembersAreNeitherWrittenNorAccepted()
    {
        var defaults = new Windowed(5);
        var json = (JsonObject)ConfigBinder.ToJson(defaults);
        Assert.Equal(new[] { "img_size", "patch_size", "seed" }, json.Select(p => p.Key).Order());
        Assert.Equal(json.Select(p => p.Key).Order(), ConfigBinder.KeysOf(typeof(Windowed)).Order());
        // what ToJson writes binds back to an equal record (the defaults round-trip, as the host merges overrides into them)
        Assert.Equal(defaults, ConfigBinder.Bind<Windowed>(json, "model.options"));
        // a computed member given as a key is an unknown key
        var e = Assert.Throws<McirException>(() => ConfigBinder.Bind<Windowed>(JsonNode.Parse("""{ "patches_resolution": 8 }"""), "model.options"));
        Assert.Contains("unknown configuration key 'model.options.patches_resolution'", e.Message);
        // the training options' serializer follows the same rule
        Assert.DoesNotContain("patches_resolution", System.Text.Json.JsonSerializer.Serialize(defaults, Mcir.Core.Training.TrainingOptions.JsonOptions));
    }

    [Fact]
    public void LoadNamesTheFileOnBadJson()
    {
        string path = Path.Combine(Path.GetTempPath(), $"mcir-bad-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, "{ \"train\": { \"total_iter\": 5, } ");
        try
        {
            var e = Assert.Throws<McirException>(() => ConfigBinder.Load(path));
            Assert.StartsWith(path, e.Message);
            Assert.Contains("not valid JSON", e.Message);
        }
        finally { File.Delete(path); }
        var missing = Assert.Throws<McirException>(() => ConfigBinder.Load(path));
        Assert.Contains("not found", missing.Message);
    }

    [Fact]
    public void LoadAcceptsCommentsAndAppliesOverrides()
    {
        string path = Path.Combine(Path.GetTempPath(), $"mcir-ok-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, "{ // a run\n \"train\": { \"total_iter\": 5 } }");
        try
        {
            var root = ConfigBinder.Load(path, ["train.total_iter=9"]);
            Assert.Equal(9, ConfigBinder.Bind<Train>(root["train"], "train").TotalIter);
        }
        finally { File.Delete(path); }
    }
}

public class ConfigBinderCheckTests
{
    public sealed record Checked
    {
        [MinLength(1)]
        public IReadOnlyDictionary<string, double> Weights { get; init; } = new Dictionary<string, double> { ["a"] = 1 };
        public IReadOnlyList<string> Names { get; init; } = ["x"];
        public IReadOnlyList<ConfigBinderTests.Train> Sections { get; init; } = [];
        public string? Note { get; init; }
        public int Size { get; init; } = 1;

        public void Validate()
        {
            if (Size < 1) throw new ArgumentException($"{nameof(Size)} must be 1 or more, got {Size}", nameof(Size));
        }
    }

    private static McirException Refused(string json) =>
        Assert.Throws<McirException>(() => ConfigBinder.Bind<Checked>(JsonNode.Parse(json), "checked"));

    [Fact]
    public void NullIsRefusedWhereTheMemberIsNotNullableAndNamesTheKey()
    {
        Assert.Equal("checked.weights: null is not allowed (expected an object of name: number pairs; leave the key out for the default)",
            Refused("""{ "weights": null }""").Message);
        Assert.Equal("checked.names[1]: null is not allowed (expected a string)", Refused("""{ "names": ["a", null] }""").Message);
        Assert.StartsWith("checked.sections[0].optimizer: null is not allowed", Refused("""{ "sections": [{ "optimizer": null }] }""").Message);
        Assert.StartsWith("checked.sections: null is not allowed (expected a list of objects (keys: total_iter, ", Refused("""{ "sections": null }""").Message);
        Assert.Null(ConfigBinder.Bind<Checked>(JsonNode.Parse("""{ "note": null }"""), "checked").Note); // nullable: null is a value
    }

    [Fact]
    public void EmptyCollectionsBelowTheirMinimumLengthAreRefused()
    {
        Assert.StartsWith("checked.weights: must not be empty", Refused("""{ "weights": {} }""").Message);
        Assert.Empty(ConfigBinder.Bind<Checked>(JsonNode.Parse("""{ "names": [] }"""), "checked").Names); // no minimum
    }

    [Fact]
    public void WrongJsonTypesSayWhatWasExpectedAndWhatWasFound()
    {
        Assert.Equal("checked.size: expected an integer, found \"many\"", Refused("""{ "size": "many" }""").Message);
        Assert.Equal("checked.weights.a: expected a number, found \"x\"", Refused("""{ "weights": { "a": "x" } }""").Message);
        Assert.Equal("checked.names: expected a list of strings, found 3", Refused("""{ "names": 3 }""").Message);
        Assert.Equal("checked.sections[0].negative_kind: expected one of ema, fixed-random, found \"x\"",
            Refused("""{ "sections": [{ "negative_kind": "x" }] }""").Message);
    }

    [Fact]
    public void TheOptionsOwnValidateIsRunAndItsErrorNamesTheKey()
    {
        Assert.Equal("checked.size: size must be 1 or more, got 0", Refused("""{ "size": 0 }""").Message);
    }
}

public class ConfigBinderEnumNameTests
{
    [Fact]
    public void PrecisionIsSpelledAsInPyTorch()
    {
        var bank = ConfigBinder.Bind<Mcir.Core.ModelContrast.NegativeBankOptions>(System.Text.Json.Nodes.JsonNode.Parse("""{ "precision": "bfloat16" }"""), "negatives");
        Assert.Equal(Mcir.Core.Compute.NegativePrecision.BFloat16, bank.Precision);
        Assert.Equal("float32", ConfigBinder.ToJson(new Mcir.Core.ModelContrast.NegativeBankOptions())["precision"]!.GetValue<string>());
    }
}
