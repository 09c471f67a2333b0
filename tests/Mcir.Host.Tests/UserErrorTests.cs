using Mcir.Core;
using Mcir.Core.Data;
using Mcir.Core.Weights;
using Mcir.Host.Tests.Weights;

namespace Mcir.Host.Tests;

/// <summary>
/// No VGG weights can be found while these tests run: $MCIR_VGG16_WEIGHTS is cleared and the weights cache points at an
/// empty folder (restored afterwards). The environment is process-wide, so the collection runs alone.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class OfflineVggCollection : ICollectionFixture<OfflineVggFixture>
{
    public const string Name = "Offline VGG";
}

/// <summary>The environment without VGG weights, and a tiny trained run (EDSR-light x2, plain L1) for test/restore/export.</summary>
public sealed class OfflineVggFixture : IDisposable
{
    private readonly TempDir _tmp = new();
    private readonly Dictionary<string, string?> _saved = new();

    public OfflineVggFixture()
    {
        Cache = _tmp.Sub("empty-weights-cache");
        Set(WeightsLocations.CacheVariable, Cache);
        Set(KnownWeights.Vgg16.EnvironmentVariable, null);
        Set(KnownWeights.Vgg19.EnvironmentVariable, null);

        Config = TinyRun.Write(_tmp);
        var (code, _, stderr) = HostRunner.Run("run", "--config", Config, "--set", "loss.spn=null", "train.total_iter=2");
        if (code != 0) throw new InvalidOperationException($"training the tiny run failed: {stderr}");
        Run = Path.Combine(_tmp.Path, "runs", "tiny");
        TestImages = Path.Combine(_tmp.Path, "test");
    }

    /// <summary>The (empty) weights cache folder the tests see.</summary>
    public string Cache { get; }

    /// <summary>The tiny run's configuration (EDSR-light x2, SPN with the default embedding).</summary>
    public string Config { get; }

    /// <summary>The trained run folder (x2).</summary>
    public string Run { get; }

    /// <summary>A folder with one image.</summary>
    public string TestImages { get; }

    private void Set(string name, string? value)
    {
        _saved[name] = Environment.GetEnvironmentVariable(name);
        Environment.SetEnvironmentVariable(name, value);
    }

    public void Dispose()
    {
        foreach (var (name, value) in _saved) Environment.SetEnvironmentVariable(name, value);
        _tmp.Dispose();
    }
}

/// <summary>
/// Every command against bad inputs: exit code 1, one <c>error: …</c> message naming the key or file, no stack trace,
/// and nothing written where the command would have written.
/// </summary>
[Collection(OfflineVggCollection.Name)]
public class UserErrorTests(OfflineVggFixture fixture)
{
    /// <summary>A bad input: the command line ({placeholders} filled in per test), what the message must contain, paths that must not appear.</summary>
    private sealed record BadInput(string[] Args, string[] Expect, string[] Absent);

    private static BadInput Case(string[] args, string[] expect, params string[] absent) => new(args, expect, absent);

    // Placeholders: {config} the tiny run's configuration, {run} its trained run folder, {test} a folder of images,
    // {out} a path that does not exist (every output goes below it), {missing} a path that does not exist,
    // {corrupt} a folder whose v0.png is not an image, {folder} an existing folder, {port} a closed 127.0.0.1 port.
    private static readonly string[] Run = ["run", "--config", "{config}", "--set", "output_root={out}", "name=bad"];

    private static readonly Dictionary<string, BadInput> Cases = new()
    {
        // run: files
        ["run: missing config"] = Case(["run", "--config", "{missing}/run.json"], ["{missing}/run.json: configuration file not found"]),
        ["run: config is a folder"] = Case(["run", "--config", "{folder}"], ["{folder}: configuration file cannot be read"]),
        ["run: missing data folder"] = Case([.. Run, "data.train.dataroot_gt={missing}"], ["{missing}"], "{out}"),
        // Training images are decoded when first drawn, so this one fails in iteration 1: the run folder stays (its log
        // says what happened) but holds no checkpoint.
        ["run: corrupt training image"] = Case([.. Run, "data.train.dataroot_gt={corrupt}", "data.train.cache_images=false", "data.test=[]"], ["v0.png"], "{out}/bad/checkpoints"),
        // run: wrong types
        ["run: total_iter abc"] = Case([.. Run, "train.total_iter=abc"], ["train.total_iter: expected an integer, found \"abc\""], "{out}"),
        ["run: batch_size \"x\""] = Case([.. Run, "data.batch_size=\"x\""], ["data.batch_size: expected an integer, found \"x\""], "{out}"),
        ["run: steps not a list"] = Case([.. Run, "negatives.steps=[1,"], ["negatives.steps: expected a list of integers, found \"[1,\""], "{out}"),
        ["run: spn form unknown"] = Case([.. Run, "loss.spn.form=sideways"], ["loss.spn.form: expected one of subtract, ratio, found \"sideways\""], "{out}"),
        ["run: model options not an object"] = Case([.. Run, "model.options=5"], ["model.options: expected an object, found 5"], "{out}"),
        // run: nulls
        ["run: layer_weights null"] = Case([.. Run, "loss.spn.layer_weights=null"], ["loss.spn.layer_weights: null is not allowed"], "{out}"),
        ["run: model.options null"] = Case([.. Run, "model.options=null"], ["model.options: null is not allowed"], "{out}"),
        ["run: optimizer null"] = Case([.. Run, "train.optimizer=null"], ["train.optimizer: null is not allowed"], "{out}"),
        ["run: lr null"] = Case([.. Run, "train.optimizer.lr=null"], ["train.optimizer.lr: null is not allowed"], "{out}"),
        ["run: test sets null"] = Case([.. Run, "data.test=null"], ["data.test: null is not allowed"], "{out}"),
        ["run: a null decay"] = Case([.. Run, "negatives.decays=[null]"], ["negatives.decays[0]: null is not allowed"], "{out}"),
        ["run: a null test set"] = Case([.. Run, "data.test=[null]"], ["data.test[0]: null is not allowed"], "{out}"),
        ["run: a null model option"] = Case([.. Run, "model.options.rgb_mean=null"], ["model.options.rgb_mean: null is not allowed"], "{out}"),
        // run: empty lists and bad values
        ["run: layer_weights empty"] = Case([.. Run, "loss.spn.layer_weights={}"], ["loss.spn.layer_weights: must not be empty"], "{out}"),
        ["run: steps empty"] = Case([.. Run, "negatives.steps=[]"], ["negatives.steps:"], "{out}"),
        ["run: batch size 0"] = Case([.. Run, "data.batch_size=0"], ["data.batch_size: must be 1 or more, got 0"], "{out}"),
        ["run: total_iter 0"] = Case([.. Run, "train.total_iter=0"], ["total_iter"], "{out}"),
        ["run: negative lambda"] = Case([.. Run, "loss.spn.lambda=-1"], ["loss.spn.lambda:"], "{out}"),
        ["run: model option out of range"] = Case([.. Run, "model.options.num_feat=0"], ["model.options", "num_feat"], "{out}"),
        ["run: unknown key"] = Case([.. Run, "train.totl_iter=3"], ["unknown configuration key 'train.totl_iter'"], "{out}"),
        // run: unknown names
        ["run: unknown model"] = Case([.. Run, "model.name=nope"], ["model.name 'nope' is not a registered model"], "{out}"),
        ["run: unknown loss term"] = Case([.. Run, "loss.reconstruction=nope"], ["loss.reconstruction 'nope' is not a registered loss term"], "{out}"),
        ["run: unknown degradation"] = Case([.. Run, "data.train.type=degraded-folder", "data.train.degradation={\"name\": \"nope\"}"],
            ["data.train.degradation.name 'nope' is not a registered degradation"], "{out}"),
        ["run: unknown embedding type"] = Case([.. Run, "loss.spn.embedding_type=nope"], ["loss.spn.embedding_type: 'nope' is not a known embedding type"], "{out}"),
        ["run: unknown data set type"] = Case([.. Run, "data.train.type=nope"], ["data.train.type 'nope'"], "{out}"),
        // run: VGG asked for, none installed
        ["run: vgg without weights"] = Case([.. Run, "loss.spn.embedding_type=vgg"], ["vgg16-397923af.pth", "weights fetch vgg16"], "{out}"),
        ["run: vgg layers without weights"] = Case([.. Run, "loss.spn.layer_weights={\"relu2_2\": 1}"], ["names vgg16 layers (relu2_2)", "vgg16-397923af.pth"], "{out}"),
        ["run: resnet layers with vgg"] = Case([.. Run, "loss.spn.embedding_type=vgg", "loss.spn.embedding.allow_random_weights=true", "loss.spn.layer_weights={\"stem\": 1}"],
            ["loss.spn.layer_weights: 'stem' is not a vgg16 layer"], "{out}"),
        // run: model and data disagree (found by one forward pass on the first training sample, before anything is written)
        ["run: scale disagrees with the model"] = Case([.. Run, "data.train.scale=4", "data.test=[]"],
            ["model 'edsr-light' turns the LQ [1, 3, 8, 8] of", "into [1, 3, 16, 16], but its GT is [1, 3, 32, 32]"], "{out}"),
        ["run: channels disagree with the model"] = Case([.. Run, "model.options.num_in_channels=1", "model.options.num_out_channels=1", "model.options.rgb_mean=[0.5]"],
            ["model 'edsr-light' cannot take the training data", "[N, 1, H, W]"], "{out}"),
        // run, test, restore, export, bench: a device this build cannot use (CI has the CPU backend)
        ["run: cuda on a CPU build"] = Case([.. Run, "device=cuda"], ["device: 'cuda' needs the CUDA backend", "-p:McirTorchBackend=cuda"], "{out}"),
        ["run: unknown device"] = Case([.. Run, "device=gpu0"], ["device: 'gpu0' is not a device; expected auto, cpu, cuda or cuda:N"], "{out}"),
        // run: dist_backend (the gradient all-reduce of a data-parallel job)
        ["run: unknown dist_backend"] = Case([.. Run, "dist_backend=gloo"], ["dist_backend: 'gloo' is not a gradient backend; expected auto, nccl or mpi"], "{out}"),
        ["run: nccl on the cpu"] = Case([.. Run, "device=cpu", "dist_backend=nccl"], ["dist_backend: 'nccl' reduces CUDA tensors, but the device is cpu"], "{out}"),
        ["run: nccl with cuda on a CPU build"] = Case([.. Run, "device=cuda", "dist_backend=nccl"], ["device: 'cuda' needs the CUDA backend", "-p:McirTorchBackend=cuda"], "{out}"),
        ["bench: bad rank list"] = Case(["bench", "--ranks", "1,0"], ["--ranks: '1,0' is not a list of rank counts"]),
        ["bench: batch not split by the ranks"] = Case(["bench", "--ranks", "1,3", "--batch", "4"], ["--ranks: the global batch 4 (--batch) does not split evenly over 3 ranks"]),
        ["test: cuda on a CPU build"] = Case(["test", "--weights", "{run}", "--gt", "{test}", "--device", "cuda:0", "--json", "{out}/r.json"], ["--device: 'cuda:0' needs the CUDA backend"], "{out}"),
        ["restore: cuda on a CPU build"] = Case(["restore", "--weights", "{run}", "--input", "{test}", "--output", "{out}", "--device", "cuda"], ["--device: 'cuda' needs the CUDA backend"], "{out}"),
        ["export: cuda on a CPU build"] = Case(["export", "--weights", "{run}", "--output", "{out}/m.pth", "--device", "cuda"], ["--device: 'cuda' needs the CUDA backend"], "{out}"),
        ["bench: cuda on a CPU build"] = Case(["bench", "--device", "cuda"], ["--device: 'cuda' needs the CUDA backend"]),
        ["run: resume without checkpoint"] = Case([.. Run, "--resume", "{missing}"], ["{missing}"], "{out}"),

        // test
        ["test: unknown protocol"] = Case(["test", "--weights", "{run}", "--gt", "{test}", "--protocol", "FFA-Net", "--json", "{out}/r.json"], ["--protocol FFA-Net: unknown protocol 'FFA-Net'; known: basicsr, sr, ffa-net"], "{out}"),
        ["test: y channel with nafnet"] = Case(["test", "--weights", "{run}", "--gt", "{test}", "--protocol", "nafnet", "--y-channel", "--json", "{out}/r.json"], ["--y-channel: only protocol basicsr takes it"], "{out}"),
        ["test: missing gt"] = Case(["test", "--weights", "{run}", "--gt", "{missing}", "--json", "{out}/r.json"], ["--gt {missing}: folder not found"], "{out}"),
        ["test: missing weights"] = Case(["test", "--weights", "{missing}", "--gt", "{test}", "--json", "{out}/r.json"], ["--weights {missing}: no such file or folder"], "{out}"),
        ["test: scale disagrees with the model"] = Case(["test", "--weights", "{run}", "--gt", "{test}", "--scale", "4", "--json", "{out}/r.json", "--save-images", "{out}/images"],
            ["fit the model", "--scale"], "{out}"),
        ["test: corrupt lq"] = Case(["test", "--weights", "{run}", "--gt", "{test}", "--lq", "{corrupt}", "--save-images", "{out}/images", "--json", "{out}/r.json"], ["v0.png"], "{out}"),
        ["test: scale abc"] = Case(["test", "--weights", "{run}", "--gt", "{test}", "--scale", "abc"], ["error: Cannot parse argument 'abc' for option '--scale'", "see 'mcir-host test --help'"]),
        ["test: unknown layout"] = Case(["test", "--weights", "{run}", "--gt", "{test}", "--type", "rain100", "--json", "{out}/r.json"],
            ["--type rain100: not a data set layout (known: ", "reside", "gopro"], "{out}"),
        ["test: files that do not pair in the layout"] = Case(["test", "--weights", "{run}", "--gt", "{test}", "--type", "reside", "--json", "{out}/r.json"],
            ["--type reside: type reside: dataroot_gt {test}: dataroot_lq is not set and the folder does not hold hazy/ and clear/"], "{out}"),
        ["test: meta info file without a layout"] = Case(["test", "--weights", "{run}", "--gt", "{test}", "--meta-info-file", "{missing}"], ["--meta-info-file {missing}: only used with --type"]),
        ["test: model option of the wrong type"] = Case(["test", "--weights", "{run}", "--gt", "{test}", "--set", "num_feat=abc"], ["model.options.num_feat: expected an integer, found \"abc\""]),

        // restore
        ["restore: missing input"] = Case(["restore", "--weights", "{run}", "--input", "{missing}", "--output", "{out}"], ["--input {missing}: no such file or folder"], "{out}"),
        ["restore: corrupt image"] = Case(["restore", "--weights", "{run}", "--input", "{corrupt}", "--output", "{out}"], ["v0.png"], "{out}"),
        ["restore: null model option"] = Case(["restore", "--weights", "{run}", "--input", "{test}", "--output", "{out}", "--set", "rgb_mean=null"], ["model.options.rgb_mean: null is not allowed"], "{out}"),
        ["restore: unknown model"] = Case(["restore", "--model", "nope", "--weights", "{run}", "--input", "{test}", "--output", "{out}"], ["model 'nope' is not a registered model"], "{out}"),
        ["restore: scale disagrees with the model"] = Case(["restore", "--weights", "{run}", "--input", "{test}", "--output", "{out}", "--scale", "3"], ["fit the model"], "{out}"),

        // export
        ["export: missing weights"] = Case(["export", "--weights", "{missing}", "--output", "{out}/m.pth"], ["--weights {missing}: no such file or folder"], "{out}"),
        ["export: scale disagrees with the model"] = Case(["export", "--weights", "{run}", "--scale", "4", "--output", "{out}/m.pth"], ["fit the model"], "{out}"),
        ["export: null model option"] = Case(["export", "--weights", "{run}", "--set", "num_feat=null", "--output", "{out}/m.pth"], ["model.options.num_feat: null is not allowed"], "{out}"),
        ["export: unknown extension"] = Case(["export", "--weights", "{run}", "--output", "{out}/m.txt"], ["{out}/m.txt"], "{out}"),

        // metrics
        ["metrics: missing gt"] = Case(["metrics", "--gt", "{missing}", "--restored", "{test}", "--json", "{out}/m.json"], ["{missing}"], "{out}"),
        ["metrics: corrupt image"] = Case(["metrics", "--gt", "{test}", "--restored", "{corrupt}", "--json", "{out}/m.json"], ["v0.png"], "{out}"),
        ["metrics: crop border abc"] = Case(["metrics", "--gt", "{test}", "--restored", "{test}", "--crop-border", "abc"], ["--crop-border"]),
        ["metrics: negative crop border"] = Case(["metrics", "--gt", "{test}", "--restored", "{test}", "--crop-border", "-1"], ["--crop-border -1: expected 0 or more"]),
        ["metrics: unknown protocol"] = Case(["metrics", "--gt", "{test}", "--restored", "{test}", "--protocol", "matlab"], ["--protocol matlab: unknown protocol 'matlab'; known: basicsr, sr, ffa-net, dehazeformer, idt, nafnet"]),
        ["metrics: sr without scale"] = Case(["metrics", "--gt", "{test}", "--restored", "{test}", "--protocol", "sr"], ["--protocol sr: give --scale"]),
        ["metrics: crop border with idt"] = Case(["metrics", "--gt", "{test}", "--restored", "{test}", "--protocol", "idt", "--crop-border", "2"], ["--crop-border: only protocol basicsr takes it"]),

        // degrade
        ["degrade: missing input"] = Case(["degrade", "bicubic", "--scale", "2", "--input", "{missing}", "--output", "{out}"], ["{missing}"], "{out}"),
        ["degrade: scale 0"] = Case(["degrade", "bicubic", "--scale", "0", "--input", "{test}", "--output", "{out}"], ["--scale 0"], "{out}"),
        ["degrade: corrupt image"] = Case(["degrade", "bicubic", "--scale", "2", "--input", "{corrupt}", "--output", "{out}"], ["v0.png"], "{out}/v0.png"),

        // list, bench, weights
        ["list: missing plugin folder"] = Case(["list", "--plugin-dir", "{missing}"], ["--plugin-dir {missing}: folder not found"]),
        ["list: missing plugin file"] = Case(["list", "--plugins", "{missing}/p.dll"], ["{missing}/p.dll: plugin file not found"]),
        ["bench: unknown model"] = Case(["bench", "--model", "nope"], ["model.name 'nope' is not a registered model"]),
        ["bench: scale abc"] = Case(["bench", "--scale", "abc"], ["--scale"]),
        ["weights fetch: refused connection"] = Case(["weights", "fetch", "vgg16", "--cache", "{out}/cache", "--base-url", "http://127.0.0.1:{port}/"],
            ["cannot reach 127.0.0.1:{port}"], "{out}/cache/vgg16-397923af.pth", "{out}/cache/vgg16-397923af.pth.partial"),
    };

    public static TheoryData<string> CaseNames() => new(Cases.Keys);

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void IsOneErrorLineWithExitCode1AndWritesNothing(string name)
    {
        using var tmp = new TempDir();
        string corrupt = tmp.Sub("corrupt");
        File.WriteAllText(Path.Combine(corrupt, "v0.png"), "this is not a PNG file");
        var values = new Dictionary<string, string>
        {
            ["{config}"] = fixture.Config,
            ["{run}"] = fixture.Run,
            ["{test}"] = fixture.TestImages,
            ["{out}"] = Path.Combine(tmp.Path, "out"),
            ["{missing}"] = Path.Combine(tmp.Path, "missing"),
            ["{corrupt}"] = corrupt,
            ["{folder}"] = tmp.Sub("folder"),
            ["{port}"] = TinyHttpServer.ClosedPort().ToString(),
        };
        string Fill(string s) => values.Aggregate(s, (acc, p) => acc.Replace(p.Key, p.Value));
        var c = Cases[name];

        var (code, stdout, stderr) = HostRunner.Run(c.Args.Select(Fill).ToArray());

        AssertUserError(code, stdout, stderr, c.Expect.Select(Fill).ToArray());
        foreach (var path in c.Absent.Select(Fill))
            Assert.False(File.Exists(path) || Directory.Exists(path), $"{path} was written");
    }

    /// <summary>Exit code 1, an <c>error:</c> line holding every expected part, and no stack trace anywhere.</summary>
    internal static void AssertUserError(int code, string stdout, string stderr, params string[] expect)
    {
        string all = stdout + stderr;
        Assert.True(code == HostCommands.UserError, $"exit code {code}:\n{all}");
        Assert.DoesNotContain("Unhandled exception", all);
        Assert.DoesNotContain("internal error", all);
        Assert.DoesNotContain(all.Split('\n'), l => l.StartsWith("   at ", StringComparison.Ordinal));
        foreach (var e in expect) Assert.Contains(e, all);
        Assert.DoesNotContain("Description:", all); // a bad command line gets its error line, not the whole help text
    }

    [Fact]
    public void ABugKeepsItsStackTraceAndItsOwnExitCode()
    {
        var bug = Thrown(() => throw new InvalidOperationException("a broken invariant"));
        var error = new StringWriter();

        int code = HostCommands.Report(bug, error);

        Assert.Equal(HostCommands.InternalError, code);
        Assert.NotEqual(HostCommands.UserError, code);
        Assert.Contains("internal error", error.ToString());
        Assert.Contains("System.InvalidOperationException: a broken invariant", error.ToString());
        Assert.Contains(error.ToString().Split('\n'), l => l.StartsWith("   at ", StringComparison.Ordinal));

        var user = new StringWriter();
        Assert.Equal(HostCommands.UserError, HostCommands.Report(Thrown(() => throw new McirException("train.total_iter: expected an integer")), user));
        Assert.Equal("error: train.total_iter: expected an integer", user.ToString().TrimEnd());
    }

    private static Exception Thrown(Action a)
    {
        try { a(); }
        catch (Exception e) { return e; }
        throw new InvalidOperationException("nothing was thrown");
    }
}

/// <summary>
/// Field case C2-14: the shipped deblurring configuration (VGG16 layers) on a machine without VGG16 weights, on two
/// 64×64 blurred/sharp pairs.
/// </summary>
[Collection(OfflineVggCollection.Name)]
public class MissingVggWeightsTests(OfflineVggFixture fixture)
{
    private static string Pairs(string side) => Path.Combine(AppContext.BaseDirectory, "TestData", "c2-14", side);

    private static string[] Deblur(string outputRoot, params string[] extra) =>
    [
        "run", "--config", Path.Combine(AppContext.BaseDirectory, "configs", "deblur", "nafnet-width32-gopro-spn.json"),
        "--set", "model.name=nafnet-small",
        $"data.train.dataroot_gt={Pairs("target")}", $"data.train.dataroot_lq={Pairs("input")}",
        $"data.val.dataroot_gt={Pairs("target")}", $"data.val.dataroot_lq={Pairs("input")}",
        "data.test=[]", "data.batch_size=2", "data.train.gt_size=64", "train.total_iter=3", $"output_root={outputRoot}",
        .. extra,
    ];

    [Theory]
    [InlineData(new string[0], "loss.spn.layer_weights names vgg16 layers (relu1_2, relu2_2, relu3_3)")]
    [InlineData(new[] { "--set", "loss.spn.embedding_type=vgg" }, "loss.spn.embedding_type is vgg")]
    public void NamesTheMissingFileWhereItWasLookedForAndTheWaysOut(string[] extra, string why)
    {
        using var tmp = new TempDir();
        string runs = Path.Combine(tmp.Path, "runs");

        var (code, stdout, stderr) = HostRunner.Run(Deblur(runs, extra));

        UserErrorTests.AssertUserError(code, stdout, stderr,
            why,
            "vgg16-397923af.pth",
            "$MCIR_VGG16_WEIGHTS is not set",
            Path.Combine(fixture.Cache, "vgg16-397923af.pth") + " does not exist",
            "loss.spn.embedding.weights_path is not set",
            "`mcir-host weights fetch vgg16`",
            "embedding_type: resnet18-imagenet",
            "\"stem\"", "\"layer1\"", "\"layer2\"");
        Assert.DoesNotContain("unknown layer", stderr);
        Assert.Single(stderr.Split('\n'), l => l.StartsWith("error: ", StringComparison.Ordinal));
        Assert.False(Directory.Exists(runs), "a run folder was created");
    }

    [Fact]
    public void NullLayerWeightsAreAConfigurationError()
    {
        using var tmp = new TempDir();
        string runs = Path.Combine(tmp.Path, "runs");

        var (code, stdout, stderr) = HostRunner.Run(Deblur(runs, "--set", "loss.spn.layer_weights=null"));

        UserErrorTests.AssertUserError(code, stdout, stderr, "error: loss.spn.layer_weights: null is not allowed");
        Assert.False(Directory.Exists(runs), "a run folder was created");
    }

    [Fact]
    public void TheOfflineWayOutTrains()
    {
        using var tmp = new TempDir();
        string runs = Path.Combine(tmp.Path, "runs");

        var (code, _, stderr) = HostRunner.Run(Deblur(runs, "--set", "loss.spn.embedding_type=resnet18-imagenet",
            "loss.spn.layer_weights={\"stem\": 0.2, \"layer1\": 0.3, \"layer2\": 0.5}", "train.total_iter=1", "data.val=null"));

        Assert.True(code == 0, stderr);
        Assert.Contains("embedding resnet18-imagenet", stderr);
    }
}
