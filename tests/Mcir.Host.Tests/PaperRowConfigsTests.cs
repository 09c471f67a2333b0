using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mcir.Core.Data;
using Mcir.Core.Embeddings;
using Mcir.Core.Weights;
using TorchSharp;

namespace Mcir.Host.Tests;

/// <summary>
/// One random VGG16 weights file (torchvision's <c>features.N.weight/bias</c> names and shapes, kaiming-normal
/// like torchvision's init) for the SPN configurations of <see cref="PaperRowConfigsTests"/>: the ImageNet file cannot be
/// downloaded here. The engine does not check a hash of a local weights file (only <c>weights fetch</c> checks the
/// SHA-256 prefix of what it downloads), so the file is accepted by name and shape, which is what these tests rely on;
/// it is passed as <c>loss.spn.embedding.weights_path</c>, not <c>$MCIR_VGG16_WEIGHTS</c>, so tests running in parallel
/// that expect no VGG file (UserErrorTests) are not affected.
/// </summary>
public sealed class RandomVgg16File : IDisposable
{
    public RandomVgg16File()
    {
        Directory.CreateDirectory(Dir);
        var tensors = new List<KeyValuePair<string, torch.Tensor>>();
        var g = new torch.Generator(7);
        foreach (var (key, shape) in VggLayout.ExpectedKeys(VggVariant.Vgg16, int.MaxValue))
        {
            // kaiming_normal_(fan_out, relu): std = sqrt(2 / (out_channels · 3 · 3)); biases 0.
            var t = key.EndsWith(".weight", StringComparison.Ordinal)
                ? torch.randn(shape, generator: g) * Math.Sqrt(2.0 / (shape[0] * shape[2] * shape[3]))
                : torch.zeros(shape);
            tensors.Add(new(key, t));
        }
        using var file = new TensorFile(tensors, new Dictionary<string, string>());
        SafetensorsFile.Write(Path, file);
    }

    private string Dir { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "mcir-vgg16-random-" + Guid.NewGuid().ToString("N"));

    /// <summary>The file: <c>vgg16-random.safetensors</c>.</summary>
    public string Path => System.IO.Path.Combine(Dir, "vgg16-random.safetensors");

    public void Dispose()
    {
        try { Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}

/// <summary>
/// Every paper-row configuration (<c>configs/{sr,dehaze,derain,deblur}/*-{spn,baseline}.json</c>) runs as shipped on a
/// tiny data set written in that row's real on-disk layout and file names (DIV2K + EDSR benchmark, RESIDE ITS/SOTS,
/// RESIDE-6K, Rain200 as downloaded, DID side by side, DDN, SPA with its list, GOPRO_Large sequences): only the data
/// roots, the patch size, the batch size, the iteration count and the frequencies are overridden (and, for SPN, the VGG16
/// file). Two iterations of <c>mcir-host run</c> (training, validation, every test set), then <c>mcir-host test</c> on
/// the trained run with the row's metrics.
/// </summary>
public class PaperRowConfigsTests : IClassFixture<RandomVgg16File>
{
    private static readonly string[] Tasks = ["sr", "dehaze", "derain", "deblur"];
    private readonly RandomVgg16File _vgg;

    public PaperRowConfigsTests(RandomVgg16File vgg) => _vgg = vgg;

    public static TheoryData<string> RowConfigs()
    {
        var data = new TheoryData<string>();
        foreach (var task in Tasks)
            foreach (var f in Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "configs", task), "*.json").Order(StringComparer.Ordinal))
                data.Add(Path.GetRelativePath(AppContext.BaseDirectory, f));
        return data;
    }

    internal static JsonObject Load(string relativePath) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, relativePath)), null,
            new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true })!.AsObject();

    [Fact]
    public void EveryRowHasItsSpnConfigAndABaselineTwinThatDiffersOnlyInSpn()
    {
        var files = new List<string>();
        foreach (var task in Tasks)
            foreach (var f in Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "configs", task), "*.json"))
                files.Add(Path.GetRelativePath(AppContext.BaseDirectory, f));
        Assert.Equal(40, files.Count);
        foreach (var spnFile in files.Where(f => f.EndsWith("-spn.json", StringComparison.Ordinal)))
        {
            string baseFile = spnFile[..^"-spn.json".Length] + "-baseline.json";
            Assert.Contains(baseFile, files);
            var spn = Load(spnFile);
            var baseline = Load(baseFile);
            Assert.NotNull(spn["loss"]!["spn"]);
            Assert.NotNull(spn["negatives"]);
            Assert.Null(baseline["loss"]!["spn"]);
            Assert.Null(baseline["negatives"]);
            Assert.Null(baseline["loss"]!["cr"]);
            spn["loss"]!.AsObject().Remove("spn");
            spn.Remove("negatives");
            spn["name"] = baseline["name"]!.GetValue<string>();
            // EDSR x3/x4 start from the x2 run of the same kind: the path names the twin's own x2 run.
            if (spn["path"]?["pretrain_network_g"] is { } pretrain)
                spn["path"]!["pretrain_network_g"] = pretrain.GetValue<string>().Replace("-spn/", "-baseline/", StringComparison.Ordinal);
            Assert.True(JsonNode.DeepEquals(spn, baseline), $"{baseFile} differs from {spnFile} beyond loss.spn / negatives");
        }
        Assert.Equal(files.Count / 2, files.Count(f => f.EndsWith("-baseline.json", StringComparison.Ordinal)));
    }

    [Theory]
    [MemberData(nameof(RowConfigs))]
    public void RunsTwoIterationsOnItsLayoutAndTests(string relativePath)
    {
        var watch = Stopwatch.StartNew();
        using var tmp = new TempDir();
        var config = Load(relativePath);
        string name = config["name"]!.GetValue<string>();
        string model = config["model"]!["name"]!.GetValue<string>();
        var data = config["data"]!.AsObject();
        var layouts = new TinyLayouts(tmp, model);

        var train = layouts.Rewrite(data["train"]!.AsObject(), training: true);
        var tests = new JsonArray(data["test"]!.AsArray().Select(t => (JsonNode)layouts.Rewrite(t!.AsObject(), training: false)).ToArray());
        var val = data["val"] is JsonObject v ? layouts.Rewrite(v, training: false) : null;
        var args = new List<string>
        {
            "run", "--config", Path.Combine(AppContext.BaseDirectory, relativePath), "--set",
            $"output_root={tmp.Path}/runs", $"data.train={train.ToJsonString()}", $"data.test={tests.ToJsonString()}",
            $"data.batch_size={layouts.BatchSize}", "train.total_iter=2", "train.print_freq=1", "train.checkpoint_freq=2",
            $"train.val_freq={(val is null ? 0 : 2)}",
        };
        if (val is not null) args.Add($"data.val={val.ToJsonString()}");
        bool spn = config["loss"]!["spn"] is not null;
        if (spn) args.Add($"loss.spn.embedding.weights_path={_vgg.Path}");
        // The full IDT (fixed 128×128 input, so no image can be tiny) takes 1–3 minutes for these two iterations and the
        // windowed tests on 2 CPU cores; its rows run the same pipeline with the idt-small preset (same architecture,
        // embed_dim 4, same 128×128 input). That `idt` itself binds is checked by ShippedConfigsTests.
        if (model == "idt") args.Add("model.name=idt-small");
        // EDSR x3/x4 start from the x2 run's final checkpoint (BasicSR's recipe); that run does not exist here.
        if (config["path"]?["pretrain_network_g"] is not null) args.Add("path.pretrain_network_g=null");

        var (code, stdout, stderr) = HostRunner.Run([.. args]);
        Assert.True(code == 0, $"{relativePath}: exit {code}\n{stderr}");
        string run = Path.Combine(tmp.Path, "runs", name);
        // Every row names the protocol its published numbers were computed with (docs/configuration.md).
        string protocolName = config["metrics"]!["protocol"]!.GetValue<string>();
        string protocol = $"(protocol {protocolName}";
        var results = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "results.json")))!.AsArray();
        Assert.Equal(tests.Count, results.Count);
        foreach (var (t, i) in tests.Select((t, i) => (t!, i)))
        {
            Assert.Contains($"test set {t["name"]} {protocol}", stdout);
            Assert.Equal(layouts.TestPairs[i], results[i]!["images"]!.AsArray().Count);
        }
        if (spn)
            Assert.Contains(_vgg.Path, stderr + stdout + File.ReadAllText(Path.Combine(run, "config.resolved.json")));

        // mcir-host test on the trained run, the first test set read through its layout, with the row's metrics.
        var first = tests[0]!.AsObject();
        // No --protocol: a run is scored with its own metrics.protocol.
        var testArgs = new List<string> { "test", "--weights", run, "--gt", first["dataroot_gt"]!.GetValue<string>() };
        if (config["model"]!["eval_name"] is { } evalName) testArgs.AddRange(["--model", evalName.GetValue<string>()]);
        string type = first["type"]!.GetValue<string>();
        if (first["dataroot_lq"] is { } lq) testArgs.AddRange(["--lq", lq.GetValue<string>()]);
        if (type == "paired-folder") testArgs.AddRange(["--filename-tmpl", first["filename_tmpl"]?.GetValue<string>() ?? "{}"]);
        else testArgs.AddRange(["--type", type]);
        string json = Path.Combine(tmp.Path, "test.json");
        testArgs.AddRange(["--json", json]);
        (code, stdout, stderr) = HostRunner.Run([.. testArgs]);
        Assert.True(code == 0, $"{relativePath}: test exit {code}\n{stderr}");
        Assert.Contains(protocol, stdout);
        var scored = JsonNode.Parse(File.ReadAllText(json))!;
        Assert.Equal(layouts.TestPairs[0], scored["images"]!.AsArray().Count);
        Assert.Equal(protocolName, scored["protocol"]!["name"]!.GetValue<string>());
        Console.WriteLine($"{relativePath}: {watch.Elapsed.TotalSeconds:F1} s");
    }
}

/// <summary>
/// Writes tiny data sets (a few images of a few dozen pixels; IDT's fixed 128×128 input needs 128 pixels) with the real
/// folder and file names of each layout, and rewrites a data set section to point at them.
/// </summary>
internal sealed class TinyLayouts
{
    private readonly TempDir _tmp;
    private readonly Random _rng = new(5);
    private readonly string _model;
    private int _sets;

    public TinyLayouts(TempDir tmp, string model)
    {
        _tmp = tmp;
        _model = model;
    }

    /// <summary>Batch size of the tiny run (two training pairs are written).</summary>
    public int BatchSize => 2;

    /// <summary>Pairs written per test set, in order.</summary>
    public List<int> TestPairs { get; } = [];

    // Training patch (GT side) and test image size per model: multiples the networks accept without changing their options.
    private int Patch(int scale) => _model switch
    {
        "idt" => 128,
        "ffa-net" => 16,
        _ when _model.StartsWith("dehazeformer", StringComparison.Ordinal) => 32,
        _ when _model.StartsWith("nafnet", StringComparison.Ordinal) => 32,
        _ => 8 * scale,
    };

    private (int H, int W) Size(bool training, int scale)
    {
        int p = Patch(scale);
        if (_model == "idt") return (128, 128);
        return training ? (p + 2 * scale, p + 4 * scale) : (p + 4 * scale, p + 2 * scale);
    }

    private void Img(string path, int h, int w)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        ImageIO.Write(path, TinyRun.Smooth(h, w, _rng));
    }

    /// <summary>A copy of <paramref name="section"/> with its roots (and, for training, gt_size) pointed at a tiny set in its layout.</summary>
    public JsonObject Rewrite(JsonObject section, bool training)
    {
        var s = section.DeepClone().AsObject();
        string type = s["type"]!.GetValue<string>();
        int scale = s["scale"]?.GetValue<int>() ?? 1;
        string root = _tmp.Sub($"set{_sets++}");
        var (h, w) = Size(training, scale);
        int pairs;
        switch (type)
        {
            case "paired-folder":
            {
                // DIV2K as downloaded (DIV2K_train_HR/0001.png ↔ DIV2K_train_LR_bicubic/X2/0001x2.png) or the EDSR benchmark
                // layout (Set14/HR/baboon.png ↔ Set14/LR_bicubic/X4/baboonx4.png).
                string tmpl = s["filename_tmpl"]?.GetValue<string>() ?? "{}";
                string[] names = training ? ["0001", "0002"] : ["baboon", "comic"];
                string gt = training ? Path.Combine(root, "DIV2K_train_HR") : Path.Combine(root, "HR");
                string lq = training ? Path.Combine(root, "DIV2K_train_LR_bicubic", $"X{scale}") : Path.Combine(root, "LR_bicubic", $"X{scale}");
                int lh = h / scale + 1, lw = w / scale + 1;
                foreach (var n in names)
                {
                    Img(Path.Combine(gt, n + ".png"), lh * scale, lw * scale);
                    Img(Path.Combine(lq, tmpl.Replace("{}", n) + ".png"), lh, lw);
                }
                s["dataroot_gt"] = gt;
                s["dataroot_lq"] = lq;
                pairs = names.Length;
                break;
            }
            case "reside":
            {
                bool sameName = (s["dataroot_gt"]!.GetValue<string>()).Contains("RESIDE-6K", StringComparison.Ordinal);
                if (sameName)
                {
                    // DehazeFormer's RESIDE-6K copy: {train,test}/{GT,hazy} with equal names.
                    string[] names = training ? ["1_1_0.90179.png", "0021_0.8_0.2.png"] : ["1400_1.png", "0001_0.8_0.2.png"];
                    foreach (var n in names)
                    {
                        Img(Path.Combine(root, "GT", n), h, w);
                        Img(Path.Combine(root, "hazy", n), h, w);
                    }
                    if (training) { s["dataroot_gt"] = Path.Combine(root, "GT"); s["dataroot_lq"] = Path.Combine(root, "hazy"); }
                    else { s["dataroot_gt"] = root; s.Remove("dataroot_lq"); }
                    pairs = names.Length;
                }
                else if (training)
                {
                    // ITS: hazy/<id>_<k>_<beta>.png ↔ clear/<id>.png.
                    Img(Path.Combine(root, "clear", "1.png"), h, w);
                    Img(Path.Combine(root, "clear", "2.png"), h, w);
                    foreach (var n in new[] { "1_1_0.90179.png", "1_2_0.81273.png", "2_1_0.99082.png" })
                        Img(Path.Combine(root, "hazy", n), h, w);
                    s["dataroot_gt"] = Path.Combine(root, "clear");
                    s["dataroot_lq"] = Path.Combine(root, "hazy");
                    pairs = 3;
                }
                else
                {
                    // SOTS indoor as downloaded: hazy/1400_1.png ↔ gt/1400.png, the clear image 20 px larger each way.
                    Img(Path.Combine(root, "gt", "1400.png"), h + 20, w + 20);
                    foreach (var n in new[] { "1400_1.png", "1400_2.png" })
                        Img(Path.Combine(root, "hazy", n), h, w);
                    s["dataroot_gt"] = root;
                    s.Remove("dataroot_lq");
                    pairs = 2;
                }
                break;
            }
            case "rain200":
                // JORDER's release: rain/X2/norain-{i}x2.png ↔ norain/norain-{i}.png.
                foreach (var i in new[] { 1, 2 })
                {
                    Img(Path.Combine(root, "rain", "X2", $"norain-{i}x2.png"), h, w);
                    Img(Path.Combine(root, "norain", $"norain-{i}.png"), h, w);
                }
                s["dataroot_gt"] = root;
                s.Remove("dataroot_lq");
                pairs = 2;
                break;
            case "did":
                // DID-MDN: one JPEG per pair, rainy left half, clean right half.
                if (training)
                {
                    Img(Path.Combine(root, "Rain_Heavy", "train2018new", "0.jpg"), h, 2 * w);
                    Img(Path.Combine(root, "Rain_Light", "train2018new", "0.jpg"), h, 2 * w);
                }
                else
                {
                    Img(Path.Combine(root, "1.jpg"), h, 2 * w);
                    Img(Path.Combine(root, "2.jpg"), h, 2 * w);
                }
                s["dataroot_gt"] = root;
                pairs = 2;
                break;
            case "ddn":
            {
                // DDN-Data: rainy_image/{i}_{j}.jpg ↔ ground_truth/{i}.jpg.
                int i = training ? 1 : 901;
                Img(Path.Combine(root, "ground_truth", $"{i}.jpg"), h, w);
                foreach (var j in new[] { 1, 2 })
                    Img(Path.Combine(root, "rainy_image", $"{i}_{j}.jpg"), h, w);
                s["dataroot_gt"] = root;
                s.Remove("dataroot_lq");
                pairs = 2;
                break;
            }
            case "spa":
                if (s["meta_info_file"] is not null)
                {
                    // SPA's real_world.txt: "./real_world/<video>/<video>-<frame>/<...>_<x>_<y>.png ./real_world_gt/<video>/<...>_<x>_<y>.png".
                    var lines = new List<string>();
                    foreach (var (x, yy) in new[] { (0, 0), (256, 0) })
                    {
                        string rainy = $"real_world/000/000-1/000-1_{x}_{yy}.png", clean = $"real_world_gt/000/000_{x}_{yy}.png";
                        Img(Path.Combine(root, rainy), h, w);
                        Img(Path.Combine(root, clean), h, w);
                        lines.Add($"./{rainy} ./{clean}");
                    }
                    File.WriteAllLines(Path.Combine(root, "real_world.txt"), lines);
                    s["meta_info_file"] = Path.Combine(root, "real_world.txt");
                }
                else
                {
                    // real_test_1000: rain/{n}.png ↔ gt/{n}gt.png.
                    foreach (var n in new[] { "000", "001" })
                    {
                        Img(Path.Combine(root, "rain", n + ".png"), h, w);
                        Img(Path.Combine(root, "gt", n + "gt.png"), h, w);
                    }
                }
                s["dataroot_gt"] = root;
                pairs = 2;
                break;
            case "gopro":
                // GOPRO_Large/<split>/<sequence>/{blur,blur_gamma,sharp}/<frame>.png; blur_gamma is not read.
                foreach (var (seq, frame) in new[] { ("GOPR0372_07_00", "000047"), ("GOPR0374_11_00", "000001") })
                {
                    Img(Path.Combine(root, seq, "blur", frame + ".png"), h, w);
                    Img(Path.Combine(root, seq, "blur_gamma", frame + ".png"), h, w);
                    Img(Path.Combine(root, seq, "sharp", frame + ".png"), h, w);
                }
                s["dataroot_gt"] = root;
                pairs = 2;
                break;
            default:
                throw new InvalidOperationException($"no tiny layout for data set type '{type}'");
        }
        if (training) s["gt_size"] = Patch(scale);
        else TestPairs.Add(pairs);
        return s;
    }
}
