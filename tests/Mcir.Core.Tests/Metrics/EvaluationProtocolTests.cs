using System.Text.Json;
using System.Text.Json.Nodes;
using Mcir.Core.Data;
using Mcir.Core.Data.Datasets;
using Mcir.Core.IO;
using Mcir.Core.Metrics;
using Mcir.Core.Metrics.Protocols;
using Mcir.Core.Runs;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Metrics;

/// <summary>
/// The evaluation protocols against TestData/protocols/expected.json, computed by make_reference.py from each
/// protocol's official code (README.md there).
/// </summary>
/// <remarks>
/// Tolerances. The "*_f64" references run the official arithmetic in float64 from the same float32/uint8 inputs, as
/// the port does; only the summation order differs, so 1e-9. The official numbers of the torch-based protocols run in
/// float32 with float32 Gaussian windows (FFA-Net's conv2d, pytorch_msssim; NAFNet's conv3d): the SSIM map's
/// σ² = E[x²] − μ² loses about 1e-7 absolutely (and a float32 window's sum is not exactly 1) and is divided by
/// σ² + C2 (C2 = 9e-4 on [0, 1] data), which moved the mean SSIM by up to 4.9e-6 on these images — hence 3e-5 against
/// those (other CPUs' float32 kernels round differently); their float32 PSNR differs by &lt; 1.6e-6 dB — hence 1e-5.
/// </remarks>
public class EvaluationProtocolTests
{
    private const double F64 = 1e-9, SsimF32 = 3e-5, PsnrF32 = 1e-5;

    private static readonly string Dir = Path.Combine(AppContext.BaseDirectory, "TestData", "protocols");

    private static readonly Lazy<JsonElement> Expected = new(() =>
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, "expected.json")));
        return doc.RootElement.GetProperty("cases").Clone();
    });

    public static TheoryData<string> Cases => new(Expected.Value.EnumerateObject().Select(c => c.Name));

    private static double Value(string @case, string protocol, string key) =>
        Expected.Value.GetProperty(@case).GetProperty(protocol).GetProperty(key).GetDouble();

    /// <summary>The case's GT, its 8-bit restored image, and the float output clamped to [0, 1] as the evaluator keeps it.</summary>
    private static ScoringInput Input(string @case, bool withFloat = true)
    {
        var gt = ImageIO.Read(Path.Combine(Dir, $"gt_{@case}.png"));
        var restored = ImageIO.Read(Path.Combine(Dir, $"restored_{@case}.png"));
        return new ScoringInput(gt, restored, withFloat ? UnitOutput(@case) : null);
    }

    private static float[] UnitOutput(string @case)
    {
        using var t = Npy.Load(Path.Combine(Dir, $"restored_{@case}.npy"));   // float32 HWC, unclamped
        return t.data<float>().ToArray().Select(v => Math.Clamp(v, 0f, 1f)).ToArray();
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void TheRestoredPngIsTheFloatOutputRoundedAsTheEngineRounds(string @case)
    {
        var input = Input(@case);
        var quantised = ImageTensor.FromUnitFloat(input.RestoredUnit!, input.Gt.Height, input.Gt.Width);
        Assert.Equal(input.Restored.Pixels, quantised.Pixels);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void BasicSrAndSrMatchBasicSr(string @case)
    {
        var input = Input(@case);
        var (psnr, ssim) = new BasicSrProtocol(0, yChannel: false).Score(input);
        Assert.Equal(Value(@case, "basicsr", "psnr"), psnr, 1e-6);
        Assert.Equal(Value(@case, "basicsr", "ssim"), ssim, 1e-8);
        (psnr, ssim) = BasicSrProtocol.Sr(2).Score(input);
        Assert.Equal(Value(@case, "sr_x2", "psnr"), psnr, 1e-6);
        Assert.Equal(Value(@case, "sr_x2", "ssim"), ssim, 1e-8);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void FfaNetMatchesItsMetricsPy(string @case)
    {
        var (psnr, ssim) = FfaNetProtocol.Instance.Score(Input(@case));
        Assert.Equal(Value(@case, "ffa-net", "psnr_f64"), psnr, F64);
        Assert.Equal(Value(@case, "ffa-net", "ssim_f64"), ssim, F64);
        Assert.Equal(Value(@case, "ffa-net", "psnr"), psnr, PsnrF32);
        Assert.Equal(Value(@case, "ffa-net", "ssim"), ssim, SsimF32);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void DehazeFormerMatchesItsTestPy(string @case)
    {
        var input = Input(@case);
        Assert.Equal(Value(@case, "dehazeformer", "down_ratio"), DehazeFormerProtocol.DownRatio(input.Gt.Height, input.Gt.Width));
        var (psnr, ssim) = DehazeFormerProtocol.Instance.Score(input);
        Assert.Equal(Value(@case, "dehazeformer", "psnr_f64"), psnr, F64);
        Assert.Equal(Value(@case, "dehazeformer", "ssim_f64"), ssim, F64);
        Assert.Equal(Value(@case, "dehazeformer", "psnr"), psnr, PsnrF32);
        Assert.Equal(Value(@case, "dehazeformer", "ssim"), ssim, SsimF32);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void IdtMatchesRestormersMatlabScript(string @case)
    {
        var (psnr, ssim) = IdtProtocol.Instance.Score(Input(@case));
        Assert.Equal(Value(@case, "idt", "psnr"), psnr, F64);
        Assert.Equal(Value(@case, "idt", "ssim"), ssim, F64);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void NafNetMatchesItsPsnrSsimPy(string @case)
    {
        var (psnr, ssim) = NafNetProtocol.Instance.Score(Input(@case));
        Assert.Equal(Value(@case, "nafnet", "psnr"), psnr, F64);
        Assert.Equal(Value(@case, "nafnet", "ssim_f64"), ssim, F64);
        Assert.Equal(Value(@case, "nafnet", "ssim"), ssim, SsimF32);
    }

    [Fact]
    public void DehazeFormerDownRatioRoundsHalfToEvenAsPython()
    {
        Assert.Equal(1, DehazeFormerProtocol.DownRatio(48, 64));   // round(0.19) = 0 -> max(1, 0)
        Assert.Equal(1, DehazeFormerProtocol.DownRatio(383, 500)); // round(1.496) = 1
        Assert.Equal(2, DehazeFormerProtocol.DownRatio(384, 500)); // round(1.5) = 2
        Assert.Equal(2, DehazeFormerProtocol.DownRatio(460, 620)); // SOTS-indoor
        Assert.Equal(2, DehazeFormerProtocol.DownRatio(720, 640)); // round(2.5) = 2 (half to even)
    }

    [Fact]
    public void FloatProtocolsOnEightBitImagesScoreTheQuantisedValues()
    {
        // Without the float output, FFA-Net's PSNR on u8/255 equals BasicSR's RGB PSNR on u8 (same MSE up to 255²).
        const string c = "chelsea_48x64";
        var (psnr, _) = FfaNetProtocol.Instance.Score(Input(c, withFloat: false));
        Assert.Equal(Value(c, "basicsr", "psnr"), psnr, 1e-6);
        Assert.NotEqual(Value(c, "ffa-net", "psnr_f64"), psnr, 1e-4); // the float output scores differently
    }

    [Fact]
    public void IdenticalImagesScoreAsTheOriginalsDo()
    {
        var gt = ImageIO.Read(Path.Combine(Dir, "gt_chelsea_48x64.png"));
        var same = new ScoringInput(gt, gt);
        Assert.Equal((100.0, 1.0), Round(FfaNetProtocol.Instance.Score(same)));       // FFA-Net returns 100
        Assert.Equal((double.PositiveInfinity, 1.0), Round(DehazeFormerProtocol.Instance.Score(same)));
        Assert.Equal((double.PositiveInfinity, 1.0), Round(IdtProtocol.Instance.Score(same)));
        Assert.Equal((double.PositiveInfinity, 1.0), Round(NafNetProtocol.Instance.Score(same)));
        static (double, double) Round((double P, double S) v) => (v.P, Math.Round(v.S, 12));
    }

    [Fact]
    public void IdtOnGrayImagesScoresTheGrayValuesThemselves()
    {
        // MATLAB's script converts only 3-channel images: a gray pair is scored as it is, so its PSNR is the plain
        // 8-bit PSNR of the gray values (BasicSR's RGB PSNR of an R = G = B image).
        var gt = Gray(ImageIO.Read(Path.Combine(Dir, "gt_chelsea_48x64.png")));
        var restored = Gray(ImageIO.Read(Path.Combine(Dir, "restored_chelsea_48x64.png")));
        var (psnr, _) = IdtProtocol.Instance.Score(new ScoringInput(gt, restored, Gray: true));
        Assert.Equal(ImageQuality.Psnr(gt, restored, 0, testYChannel: false), psnr, 1e-9);
        Assert.NotEqual(psnr, IdtProtocol.Instance.Score(new ScoringInput(gt, restored)).Psnr, 1e-3);
        Assert.Equal("gray (uint8), no crop", IdtProtocol.Instance.Describe(gray: true, floatOutput: false).Summary);
    }

    private static RgbImage Gray(RgbImage img)
    {
        var p = new float[img.Pixels.Length];
        for (int i = 0; i < p.Length; i += 3) p[i] = p[i + 1] = p[i + 2] = img.Pixels[i + 1];
        return new RgbImage(img.Height, img.Width, p);
    }

    [Fact]
    public void MatlabYRoundsHalfAwayAndSpans16To235()
    {
        Assert.Equal(16, IdtProtocol.MatlabY(0, 0, 0));
        Assert.Equal(235, IdtProtocol.MatlabY(255, 255, 255));
        Assert.Equal(81, IdtProtocol.MatlabY(255, 0, 0));   // 16 + 65.481 = 81.481
        Assert.Equal(145, IdtProtocol.MatlabY(0, 255, 0));  // 16 + 128.553 = 144.553
    }

    [Fact]
    public void RegistryKnowsExactlyTheSixNamesAndNamesThemInErrors()
    {
        Assert.Equal(["basicsr", "sr", "ffa-net", "dehazeformer", "idt", "nafnet"], EvaluationProtocols.Names);
        foreach (var name in EvaluationProtocols.Names)
            Assert.Equal(name, EvaluationProtocols.Create(name, new MetricsProtocol(), 2, "x").Name);
        var e = Assert.Throws<McirException>(() => EvaluationProtocols.Create("ffanet", new MetricsProtocol(), 1, "data.test[0].protocol"));
        Assert.Equal("data.test[0].protocol: unknown protocol 'ffanet'; known: basicsr, sr, ffa-net, dehazeformer, idt, nafnet", e.Message);
        var sr = Assert.IsType<BasicSrProtocol>(EvaluationProtocols.Create("sr", new MetricsProtocol(CropBorder: 0, YChannel: false), 3, "x"));
        Assert.Equal((3, true), (sr.CropBorder, sr.YChannel));
        var basic = Assert.IsType<BasicSrProtocol>(EvaluationProtocols.Create("basicsr", new MetricsProtocol(CropBorder: 4, YChannel: true), 2, "x"));
        Assert.Equal((4, true), (basic.CropBorder, basic.YChannel));
    }

    [Theory]
    [InlineData("metrics", """{ "protocol": "matlab" }""", "metrics.protocol: unknown protocol 'matlab'; known: basicsr, sr, ffa-net, dehazeformer, idt, nafnet")]
    [InlineData("data", """{ "train": { "dataroot_gt": "x" }, "test": [ { "dataroot_gt": "y", "protocol": "IDT" } ] }""", "data.test[0].protocol: unknown protocol 'IDT'; known: basicsr")]
    [InlineData("data", """{ "train": { "dataroot_gt": "x" }, "val": { "dataroot_gt": "y", "protocol": "" } }""", "data.val.protocol: unknown protocol ''")]
    public void UnknownProtocolInTheConfigurationIsAnErrorNamingTheKey(string section, string json, string message)
    {
        var root = new JsonObject { ["model"] = new JsonObject { ["name"] = "edsr-light" }, [section] = JsonNode.Parse(json) };
        var e = Assert.Throws<McirException>(() => RunComposition.Bind(root));
        Assert.StartsWith(message, e.Message);
    }

    [Fact]
    public void ProtocolsAreChosenPerSetWithMetricsProtocolAsDefault()
    {
        var metrics = new MetricsProtocol(CropBorder: 4, YChannel: false) { Protocol = "nafnet" };
        Assert.Equal("nafnet", TrainingRun.Protocol(new DatasetSection(), metrics, "data.test[0]").Name);
        var sr = Assert.IsType<BasicSrProtocol>(TrainingRun.Protocol(new DatasetSection { Protocol = "sr", Scale = 4 }, metrics, "data.test[0]"));
        Assert.Equal((4, true), (sr.CropBorder, sr.YChannel));
        Assert.Equal("idt", TrainingRun.Protocol(new DatasetSection { Protocol = "idt" }, new MetricsProtocol(), "data.val").Name);
        Assert.Equal("basicsr", TrainingRun.Protocol(new DatasetSection(), new MetricsProtocol(), "data.val").Name);
    }

    /// <summary>A network that returns a fixed float tensor whatever its input.</summary>
    private sealed class FixedOutput(Tensor output) : nn.Module<Tensor, Tensor>("fixed")
    {
        public override Tensor forward(Tensor input) => output.alias();
    }

    [Fact]
    public void TheEvaluatorScoresTheFloatOutputForFloatProtocolsAndTheRoundedImageOtherwise()
    {
        const string c = "chelsea_48x64";
        string root = Path.Combine(Path.GetTempPath(), "mcir-protocols-" + Guid.NewGuid().ToString("N"));
        try
        {
            string gtDir = Path.Combine(root, "gt"), lqDir = Path.Combine(root, "lq");
            Directory.CreateDirectory(gtDir);
            Directory.CreateDirectory(lqDir);
            File.Copy(Path.Combine(Dir, $"gt_{c}.png"), Path.Combine(gtDir, "a.png"));
            File.Copy(Path.Combine(Dir, $"gt_{c}.png"), Path.Combine(lqDir, "a.png"));
            var data = new PairedFolderDataset(gtDir, lqDir, new PairedDatasetOptions { Scale = 1 });
            using var hwc = Npy.Load(Path.Combine(Dir, $"restored_{c}.npy"));
            using var chw = hwc.permute(2, 0, 1).unsqueeze(0).contiguous();
            using var net = new FixedOutput(chw);

            var ffa = RestorationEvaluator.Evaluate(net, data, FfaNetProtocol.Instance);
            Assert.Equal(Value(c, "ffa-net", "psnr_f64"), ffa.MeanPsnr, F64);
            Assert.Equal(Value(c, "ffa-net", "ssim_f64"), ffa.MeanSsim, F64);
            Assert.True(ffa.Protocol.FloatOutput);
            Assert.Equal("protocol ffa-net: float RGB in [0,1], no crop, SSIM zero-padded 'same'", ffa.Protocol.Header);

            var idt = RestorationEvaluator.Evaluate(net, data, IdtProtocol.Instance);
            Assert.Equal(Value(c, "idt", "psnr"), idt.MeanPsnr, F64);
            Assert.Equal("protocol idt: Y from uint8 rgb2ycbcr, no crop", idt.Protocol.Header);
            Assert.False(idt.Protocol.FloatOutput);

            var json = ffa.Protocol.ToJson();
            Assert.Equal("ffa-net", (string?)json["name"]);
            Assert.Equal(0, (int)json["crop_border"]!);
            Assert.False((bool)json["y_channel"]!);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
