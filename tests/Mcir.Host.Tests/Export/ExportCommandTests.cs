using System.Collections;
using Mcir.Core.Weights;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Mcir.Host.Tests.Export;

/// <summary>A tiny trained run (plain L1, target EMA), trained once for the export tests.</summary>
public sealed class ExportRunFixture : IDisposable
{
    private readonly TempDir _tmp = new();

    public ExportRunFixture()
    {
        var (code, _, stderr) = HostRunner.Run("run", "--config", TinyRun.Write(_tmp), "--set", "loss.spn=null", "train.ema_decay=0.9");
        if (code != 0) throw new InvalidOperationException($"training the tiny run failed: {stderr}");
        Run = Path.Combine(_tmp.Path, "runs", "tiny");
        TestImages = Path.Combine(_tmp.Path, "test");
    }

    /// <summary>The run folder (checkpoints at iterations 2 and 4).</summary>
    public string Run { get; }

    /// <summary>A folder with one small image.</summary>
    public string TestImages { get; }

    /// <summary>The newest checkpoint of the run.</summary>
    public string Checkpoint => Path.Combine(Run, "checkpoints", "iter_000004");

    public void Dispose() => _tmp.Dispose();
}

/// <summary>mcir-host export: trained weights back to PyTorch (.pth in BasicSR's layout) and safetensors.</summary>
public class ExportCommandTests(ExportRunFixture run) : IClassFixture<ExportRunFixture>
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "TestData", "archs", name, "state_dict.pth");

    // The tiny run's model as restore needs it without the run folder.
    private static readonly string[] TinyModel = ["--model", "edsr-light", "--set", "num_feat=8", "num_block=1", "--scale", "2"];

    private static void AssertSameTensors(Dictionary<string, Tensor> expected, Dictionary<string, Tensor> actual)
    {
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, e) in expected)
        {
            var a = actual[key];
            Assert.Equal(e.dtype, a.dtype);
            Assert.Equal(e.shape, a.shape);
            Assert.True(e.bytes.SequenceEqual(a.bytes), $"{key}: values differ");
        }
    }

    private static void AssertSameFiles(string expectedFile, string actualFile, string? actualKey = null)
    {
        var expected = StateDictFile.Read(expectedFile);
        var actual = StateDictFile.Read(actualFile, actualKey);
        try { AssertSameTensors(expected, actual); }
        finally
        {
            foreach (var t in expected.Values.Concat(actual.Values)) t.Dispose();
        }
    }

    // The top level of a torch.save file: {key: {name: tensor}} as torch.load sees it.
    private static Hashtable TopLevel(string pth)
    {
        var table = PyTorchUnpickler.UnpickleStateDict(pth);
        foreach (var inner in table.Values.OfType<Hashtable>())
            foreach (var t in inner.Values.OfType<Tensor>()) t.Dispose();
        return table;
    }

    [Fact]
    public void RunExportsBitIdenticalPthAndSafetensors()
    {
        using var tmp = new TempDir();
        string pth = Path.Combine(tmp.Path, "out", "tiny_net_g.pth"), st = Path.Combine(tmp.Path, "tiny.safetensors");

        var p = HostRunner.Run("export", "--weights", run.Run, "--output", pth);
        Assert.True(p.Code == 0, p.Err);
        Assert.Contains($"wrote {pth}: 12 tensors of edsr-light (under 'params')", p.Out);
        Assert.Contains("target EMA, iteration 4", p.Out);
        Assert.Contains("ema.safetensors", p.Out);
        // BasicSR's layout: one wrapper key holding the state dict; the values are the checkpoint's EMA weights
        var top = TopLevel(pth);
        Assert.Equal(["params"], top.Keys.Cast<string>());
        Assert.Equal(12, ((Hashtable)top["params"]!).Count);
        AssertSameFiles(Path.Combine(run.Checkpoint, "ema.safetensors"), pth);

        var s = HostRunner.Run("export", "--weights", run.Run, "--output", st);
        Assert.True(s.Code == 0, s.Err);
        Assert.Contains($"wrote {st}: 12 tensors of edsr-light (bare state dict)", s.Out);
        AssertSameFiles(Path.Combine(run.Checkpoint, "ema.safetensors"), st);
        using (var state = SafetensorsFile.Read(st))
        {
            Assert.Equal("pt", state.Metadata["format"]);
            Assert.Equal("edsr-light", state.Metadata["model"]);
            Assert.Contains("ema.safetensors (target EMA, iteration 4)", state.Metadata["source"]);
            var options = System.Text.Json.Nodes.JsonNode.Parse(state.Metadata["model_options"])!.AsObject();
            Assert.Equal((8, 1, 2), ((int)options["num_feat"]!, (int)options["num_block"]!, (int)options["upscale"]!));
            Assert.Equal(4, state.Metadata.Count);
        }

        // the plain weights of an explicit checkpoint, under params_ema
        string plain = Path.Combine(tmp.Path, "plain.pth");
        var o = HostRunner.Run("export", "--weights", run.Checkpoint, "--ema", "off", "--output", plain, "--param-key", "params_ema");
        Assert.True(o.Code == 0, o.Err);
        Assert.Contains("under 'params_ema'", o.Out);
        Assert.Equal(["params_ema"], TopLevel(plain).Keys.Cast<string>());
        AssertSameFiles(Path.Combine(run.Checkpoint, "model.safetensors"), plain, "params_ema");

        Assert.Equal(new[] { "tiny.safetensors", "plain.pth" }.Order(), Directory.GetFiles(tmp.Path).Select(Path.GetFileName).Order()); // no temporary files left
        Assert.Single(Directory.GetFiles(Path.Combine(tmp.Path, "out")));
    }

    [Fact]
    public void RestoreWithTheExportedPthGivesTheSameImagesAsTheRun()
    {
        using var tmp = new TempDir();
        string pth = Path.Combine(tmp.Path, "tiny.pth"), st = Path.Combine(tmp.Path, "tiny.safetensors");
        Assert.Equal(0, HostRunner.Run("export", "--weights", run.Run, "--output", pth).Code);
        Assert.Equal(0, HostRunner.Run("export", "--weights", run.Run, "--output", st).Code);
        string fromRun = Path.Combine(tmp.Path, "run"), fromPth = Path.Combine(tmp.Path, "pth"), fromSt = Path.Combine(tmp.Path, "st"),
            fromStAlone = Path.Combine(tmp.Path, "st-alone");

        var a = HostRunner.Run("restore", "--weights", run.Run, "--input", run.TestImages, "--output", fromRun);
        var b = HostRunner.Run(["restore", .. TinyModel, "--weights", pth, "--input", run.TestImages, "--output", fromPth]);
        var c = HostRunner.Run(["restore", .. TinyModel, "--weights", st, "--input", run.TestImages, "--output", fromSt]);
        // The exported safetensors names its model and options in its metadata: no --model, --set or --scale needed.
        var d = HostRunner.Run("restore", "--weights", st, "--input", run.TestImages, "--output", fromStAlone);

        Assert.True(a.Code == 0, a.Err);
        Assert.True(b.Code == 0, b.Err);
        Assert.True(c.Code == 0, c.Err);
        Assert.True(d.Code == 0, d.Err);
        Assert.Contains($"model edsr-light and its options from the metadata of {st}", d.Out + d.Err);
        var images = Directory.GetFiles(fromRun).Select(Path.GetFileName).Order().ToList();
        Assert.NotEmpty(images);
        foreach (var name in images)
        {
            byte[] expected = File.ReadAllBytes(Path.Combine(fromRun, name!));
            Assert.Equal(expected, File.ReadAllBytes(Path.Combine(fromPth, name!)));
            Assert.Equal(expected, File.ReadAllBytes(Path.Combine(fromSt, name!)));
            Assert.Equal(expected, File.ReadAllBytes(Path.Combine(fromStAlone, name!)));
        }
    }

    [Theory]
    [InlineData("edsr", "num_block=2", null)]
    [InlineData("edsr_x2", "num_block=4", "2")]
    public void BasicSrFixtureRoundTripsUnchanged(string fixture, string set, string? scale)
    {
        using var tmp = new TempDir();
        string pth = Path.Combine(tmp.Path, "exported.pth"), st = Path.Combine(tmp.Path, "exported.safetensors");
        string[] model = ["--model", "edsr-light", "--set", set, .. scale is null ? Array.Empty<string>() : ["--scale", scale]];

        var p = HostRunner.Run(["export", .. model, "--weights", Fixture(fixture), "--output", pth]);
        var s = HostRunner.Run(["export", .. model, "--weights", Fixture(fixture), "--output", st]);

        Assert.True(p.Code == 0, p.Err);
        Assert.True(s.Code == 0, s.Err);
        Assert.Contains("bare state dict", p.Out); // the source: the fixture is a bare state dict
        List<string> fixtureKeys;
        using (var stream = File.OpenRead(Fixture(fixture)))
            fixtureKeys = PyTorchUnpickler.UnpickleStateDict(stream, leaveOpen: true, skipTensorRead: true).Keys.Cast<string>().Order(StringComparer.Ordinal).ToList();
        Assert.Equal(fixtureKeys, ((Hashtable)TopLevel(pth)["params"]!).Keys.Cast<string>().Order(StringComparer.Ordinal));
        Assert.Contains($": {fixtureKeys.Count} tensors", p.Out);
        AssertSameFiles(Fixture(fixture), pth);
        AssertSameFiles(Fixture(fixture), st);
    }

    [Fact]
    public void UnknownExtensionIsAnErrorNamingTheAcceptedOnes()
    {
        using var tmp = new TempDir();
        string bin = Path.Combine(tmp.Path, "weights.bin");

        var (code, stdout, stderr) = HostRunner.Run("export", "--weights", run.Run, "--output", bin);

        Assert.Equal(HostCommands.UserError, code);
        Assert.Contains("unknown extension '.bin'", stderr);
        Assert.Contains(".pth", stderr);
        Assert.Contains(".safetensors", stderr);
        Assert.Empty(stdout);
        Assert.Empty(Directory.GetFileSystemEntries(tmp.Path));

        var none = HostRunner.Run("export", "--weights", run.Run, "--output", Path.Combine(tmp.Path, "weights"));
        Assert.Equal(HostCommands.UserError, none.Code);
        Assert.Contains("no file extension", none.Err);
    }

    [Fact]
    public void OutputMustNotBeTheWeightsFile()
    {
        using var tmp = new TempDir();
        string pth = Path.Combine(tmp.Path, "edsr.pth");
        File.Copy(Fixture("edsr"), pth);
        byte[] before = File.ReadAllBytes(pth);

        var (code, _, stderr) = HostRunner.Run("export", "--model", "edsr-light", "--set", "num_block=2", "--weights", pth, "--output", Path.Combine(tmp.Path, ".", "edsr.pth"));

        Assert.Equal(HostCommands.UserError, code);
        Assert.Contains("that is the weights file being exported", stderr);
        Assert.Equal(before, File.ReadAllBytes(pth));
        Assert.Single(Directory.GetFiles(tmp.Path));

        // the resolved file of a run counts too
        string ema = Path.Combine(run.Checkpoint, "ema.safetensors");
        byte[] emaBefore = File.ReadAllBytes(ema);
        var fromRun = HostRunner.Run("export", "--weights", run.Run, "--output", ema);
        Assert.Equal(HostCommands.UserError, fromRun.Code);
        Assert.Contains("that is the weights file being exported", fromRun.Err);
        Assert.Equal(emaBefore, File.ReadAllBytes(ema));
    }

    [Fact]
    public void MissingWeightsAreAnErrorAndAnExistingOutputIsReplacedOnlyOnSuccess()
    {
        using var tmp = new TempDir();
        string output = Path.Combine(tmp.Path, "out.pth");
        File.WriteAllText(output, "previous export");

        var missing = HostRunner.Run("export", "--model", "edsr-light", "--weights", Path.Combine(tmp.Path, "nope.pth"), "--output", output);
        Assert.Equal(HostCommands.UserError, missing.Code);
        Assert.Contains("no such file or folder", missing.Err);
        Assert.Equal("previous export", File.ReadAllText(output));

        // weights that do not fit the model: nothing is written either
        var misfit = HostRunner.Run("export", "--model", "edsr-light", "--set", "num_block=3", "--weights", Fixture("edsr"), "--output", output);
        Assert.Equal(HostCommands.UserError, misfit.Code);
        Assert.Contains("missing keys", misfit.Err);
        Assert.Equal("previous export", File.ReadAllText(output));

        var ok = HostRunner.Run("export", "--weights", run.Run, "--output", output);
        Assert.True(ok.Code == 0, ok.Err);
        AssertSameFiles(Path.Combine(run.Checkpoint, "ema.safetensors"), output);
        Assert.Single(Directory.GetFiles(tmp.Path));
    }

    [Fact]
    public void ParamKeyIsCheckedAgainstTheOutputFormat()
    {
        using var tmp = new TempDir();
        var st = HostRunner.Run("export", "--weights", run.Run, "--output", Path.Combine(tmp.Path, "a.safetensors"), "--param-key", "params");
        Assert.Equal(HostCommands.UserError, st.Code);
        Assert.Contains("only for .pth output", st.Err);

        var other = HostRunner.Run("export", "--weights", run.Run, "--output", Path.Combine(tmp.Path, "a.pth"), "--param-key", "state_dict");
        Assert.Equal(HostCommands.UserError, other.Code);
        Assert.Contains("expected params or params_ema", other.Err);
        Assert.Empty(Directory.GetFileSystemEntries(tmp.Path));
    }
}
