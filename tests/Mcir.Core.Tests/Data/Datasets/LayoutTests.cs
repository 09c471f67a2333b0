using Mcir.Abstractions.Components;
using Mcir.Core.Data;
using Mcir.Core.Data.Datasets;
using Mcir.Core.Runs;
using Microsoft.Extensions.DependencyInjection;

namespace Mcir.Core.Tests.Data.Datasets;

/// <summary>
/// Each data set layout on a tiny tree with the data set's real file names (DATASETS.md): the pairs it finds, the
/// images it reads for them, and errors that name the unmatched files and the rule.
/// </summary>
public class LayoutTests
{
    // A file whose every pixel holds (value, value / 2, 255 - value): the value identifies the file after a load.
    private static string Img(string path, int value, int h = 8, int w = 8)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var px = new float[h * w * 3];
        for (int i = 0; i < px.Length; i += 3) (px[i], px[i + 1], px[i + 2]) = (value, value / 2, 255 - value);
        ImageIO.Write(path, new RgbImage(h, w, px), new ImageWriteOptions { JpegQuality = 100 });
        return path;
    }

    private static IReadOnlyList<(string Name, string Gt, string Lq)> Pairs(IDatasetLayout layout, DatasetRoots roots, string root) =>
        layout.Pair(roots).Select(p => (p.Name, Path.GetRelativePath(root, p.Gt), Path.GetRelativePath(root, p.Lq))).ToList();

    private static float Value(RgbImage img) => img[0, 0, 0];

    [Fact]
    public void PairedFolderPairsDiv2kNamesWithTheTemplate()
    {
        using var tmp = new TempDir();
        string hr = Path.Combine(tmp.Path, "DIV2K_train_HR"), lr = Path.Combine(tmp.Path, "DIV2K_train_LR_bicubic", "X2");
        Img(Path.Combine(hr, "0001.png"), 10, 16, 16); Img(Path.Combine(hr, "0002.png"), 20, 16, 16);
        Img(Path.Combine(lr, "0001x2.png"), 11); Img(Path.Combine(lr, "0002x2.png"), 21);
        Assert.Equal(
            [("0001", "DIV2K_train_HR/0001.png", "DIV2K_train_LR_bicubic/X2/0001x2.png"), ("0002", "DIV2K_train_HR/0002.png", "DIV2K_train_LR_bicubic/X2/0002x2.png")],
            Pairs(new PairedFolderLayout(), new DatasetRoots(hr, lr, "{}x2"), tmp.Path));

        var ds = new PairedFolderDataset(hr, lr, new PairedDatasetOptions { Scale = 2 }, "{}x2");
        var pair = ds.Load(1, new Random(0));
        Assert.Equal((20f, 21f), (Value(pair.Gt), Value(pair.Lq)));
        Assert.Equal((16, 8), (pair.Gt.Height, pair.Lq.Height));
    }

    [Fact]
    public void PairedFolderWithoutTheTemplateNamesTheFilesAndTheRule()
    {
        using var tmp = new TempDir();
        string hr = tmp.Sub("HR"), lr = tmp.Sub("X2");
        Img(Path.Combine(hr, "0001.png"), 10, 16, 16);
        Img(Path.Combine(lr, "0001x2.png"), 11);
        var e = Assert.Throws<DatasetLayoutException>(() => new PairedFolderLayout().Pair(new DatasetRoots(hr, lr)));
        Assert.Contains("0001.png (looked for '0001.*')", e.Message);
        Assert.Contains("LQ file(s) without a GT file: 0001x2.png", e.Message);
        Assert.Contains("filename_tmpl '{}'", e.Message);

        File.Delete(Path.Combine(lr, "0001x2.png"));
        Img(Path.Combine(hr, "0002.png"), 20, 16, 16);
        Img(Path.Combine(lr, "0002x2.png"), 21);
        var m = Assert.Throws<McirException>(() => new PairedFolderDataset(hr, lr, new PairedDatasetOptions { Scale = 2 }, "{}x2"));
        Assert.Contains("1 GT file(s) without a LQ file: 0001.png (looked for '0001x2.*')", m.Message);
        Assert.Contains("filename_tmpl '{}x2'", m.Message);
    }

    [Fact]
    public void PairedFolderReadsBothBenchmarkLayoutsAndAnyInputExtension()
    {
        using var tmp = new TempDir();
        // BasicSR's pack: Set5/GTmod12/baby.png <-> Set5/LRbicx4/baby.png (same stem).
        Img(Path.Combine(tmp.Path, "Set5", "GTmod12", "baby.png"), 1, 16, 16);
        Img(Path.Combine(tmp.Path, "Set5", "LRbicx4", "baby.png"), 2, 4, 4);
        Assert.Equal([("baby", "Set5/GTmod12/baby.png", "Set5/LRbicx4/baby.png")],
            Pairs(new PairedFolderLayout(), new DatasetRoots(Path.Combine(tmp.Path, "Set5", "GTmod12"), Path.Combine(tmp.Path, "Set5", "LRbicx4")), tmp.Path));
        // EDSR's benchmark.tar: benchmark/Set5/HR/baby.png <-> LR_bicubic/X4/babyx4.png; Urban100 spelled both ways; a .bmp input.
        string hr = Path.Combine(tmp.Path, "benchmark", "Set5", "HR"), lr = Path.Combine(tmp.Path, "benchmark", "Set5", "LR_bicubic", "X4");
        Img(Path.Combine(hr, "baby.png"), 1, 16, 16); Img(Path.Combine(lr, "babyx4.png"), 2, 4, 4);
        Img(Path.Combine(hr, "img_001.png"), 3, 16, 16); Img(Path.Combine(lr, "img_001x4.bmp"), 4, 4, 4);
        Img(Path.Combine(hr, "img004.png"), 5, 16, 16); Img(Path.Combine(lr, "img004x4.png"), 6, 4, 4);
        var pairs = Pairs(new PairedFolderLayout(), new DatasetRoots(hr, lr, "{}x4"), Path.Combine(tmp.Path, "benchmark", "Set5"));
        Assert.Equal([("baby", "HR/baby.png", "LR_bicubic/X4/babyx4.png"), ("img004", "HR/img004.png", "LR_bicubic/X4/img004x4.png"),
            ("img_001", "HR/img_001.png", "LR_bicubic/X4/img_001x4.bmp")], pairs);
        // With both extensions present the GT's (BasicSR's rule) is paired and the other is an extra input file.
        Img(Path.Combine(lr, "babyx4.bmp"), 7, 4, 4);
        var e = Assert.Throws<DatasetLayoutException>(() => new PairedFolderLayout().Pair(new DatasetRoots(hr, lr, "{}x4")));
        Assert.Contains("1 LQ file(s) without a GT file: babyx4.bmp", e.Message);
    }

    [Fact]
    public void PairedFolderReadsBasicSrMetaInfo()
    {
        using var tmp = new TempDir();
        string gt = tmp.Sub("DIV2K_train_HR_sub"), lq = tmp.Sub("X2_sub");
        Img(Path.Combine(gt, "0001_s001.png"), 1, 16, 16); Img(Path.Combine(gt, "0001_s002.png"), 2, 16, 16);
        Img(Path.Combine(gt, "unlisted.png"), 3, 16, 16);
        Img(Path.Combine(lq, "0001_s001.png"), 4); Img(Path.Combine(lq, "0001_s002.png"), 5); Img(Path.Combine(lq, "unlisted.png"), 6);
        string meta = Path.Combine(tmp.Path, "meta_info_DIV2K800sub_GT.txt");
        File.WriteAllText(meta, "0001_s001.png (480,480,3)\n\n0001_s002.png (480,480,3)\n");
        Assert.Equal([("0001_s001", "DIV2K_train_HR_sub/0001_s001.png", "X2_sub/0001_s001.png"), ("0001_s002", "DIV2K_train_HR_sub/0001_s002.png", "X2_sub/0001_s002.png")],
            Pairs(new PairedFolderLayout(), new DatasetRoots(gt, lq, "{}", meta), tmp.Path));

        File.AppendAllText(meta, "0001_s003.png (480,480,3)\n");
        var e = Assert.Throws<DatasetLayoutException>(() => new PairedFolderLayout().Pair(new DatasetRoots(gt, lq, "{}", meta)));
        Assert.Contains("line 4: 0001_s003.png", e.Message);
    }

    [Fact]
    public void ResidePairsItsAndSotsByPrefixAndCentreCropsTheClearImage()
    {
        using var tmp = new TempDir();
        // ITS: hazy/<id>_<k>_<beta>.png <-> clear/<id>.png.
        string its = Path.Combine(tmp.Path, "ITS");
        Img(Path.Combine(its, "clear", "1.png"), 10); Img(Path.Combine(its, "clear", "2.png"), 20);
        Img(Path.Combine(its, "hazy", "1_1_0.90179.png"), 11); Img(Path.Combine(its, "hazy", "1_10_0.98796.png"), 12); Img(Path.Combine(its, "hazy", "2_1_0.99082.png"), 21);
        Assert.Equal([("1_10_0.98796", "clear/1.png", "hazy/1_10_0.98796.png"), ("1_1_0.90179", "clear/1.png", "hazy/1_1_0.90179.png"), ("2_1_0.99082", "clear/2.png", "hazy/2_1_0.99082.png")],
            Pairs(new ResideLayout(), new DatasetRoots(Path.Combine(its, "clear"), Path.Combine(its, "hazy")), its));

        // SOTS outdoor as downloaded (the root holds hazy/ and gt/): 0001_0.8_0.2.jpg <-> 0001.png.
        string outdoor = Path.Combine(tmp.Path, "SOTS", "outdoor");
        Img(Path.Combine(outdoor, "gt", "0001.png"), 30); Img(Path.Combine(outdoor, "hazy", "0001_0.8_0.2.jpg"), 31);
        Assert.Equal([("0001_0.8_0.2", "gt/0001.png", "hazy/0001_0.8_0.2.jpg")], Pairs(new ResideLayout(), new DatasetRoots(outdoor), outdoor));

        // SOTS indoor: the 12x12 GT (640x480 in the real set) is centre-cropped to the 8x8 hazy size (620x460), 2 px per side.
        string indoor = Path.Combine(tmp.Path, "SOTS", "indoor");
        Img(Path.Combine(indoor, "hazy", "1400_1.png"), 40);
        var gtPx = new float[12 * 12 * 3];
        for (int y = 0; y < 12; y++) for (int x = 0; x < 12; x++) gtPx[(y * 12 + x) * 3] = y * 12 + x;
        ImageIO.Write(Path.Combine(indoor, "gt", "1400.png"), new RgbImage(12, 12, gtPx));
        var ds = new LayoutDataset(new ResideLayout(), new DatasetRoots(indoor), new PairedDatasetOptions());
        var pair = ds.Load(0, new Random(0));
        Assert.Equal((8, 8), (pair.Gt.Height, pair.Gt.Width));
        Assert.Equal(2 * 12 + 2, pair.Gt[0, 0, 0]);
        Assert.Equal(9 * 12 + 9, pair.Gt[7, 7, 0]);
    }

    [Fact]
    public void ResidePairsReside6kSameNamesAndNamesUnmatchedFiles()
    {
        using var tmp = new TempDir();
        // RESIDE-6K (DehazeFormer's copy): hazy/ and GT/ with identical names.
        string test = Path.Combine(tmp.Path, "RESIDE-6K", "test");
        Img(Path.Combine(test, "GT", "0001_0.8_0.2.jpg"), 10); Img(Path.Combine(test, "hazy", "0001_0.8_0.2.jpg"), 11);
        Img(Path.Combine(test, "GT", "1400_3.png"), 20); Img(Path.Combine(test, "hazy", "1400_3.png"), 21);
        Assert.Equal([("0001_0.8_0.2", "GT/0001_0.8_0.2.jpg", "hazy/0001_0.8_0.2.jpg"), ("1400_3", "GT/1400_3.png", "hazy/1400_3.png")],
            Pairs(new ResideLayout(), new DatasetRoots(test), test));

        Img(Path.Combine(test, "hazy", "3_1.png"), 30);
        Img(Path.Combine(test, "GT", "4.png"), 40);
        var e = Assert.Throws<DatasetLayoutException>(() => new ResideLayout().Pair(new DatasetRoots(test)));
        Assert.Contains("1 hazy file(s) without a clear file: 3_1.png (looked for '3_1.*' or '3.*')", e.Message);
        Assert.Contains("1 clear file(s) without a hazy file: 4.png", e.Message);
        Assert.Contains("<hazy stem up to the first '_'>", e.Message);
    }

    [Fact]
    public void Rain200PairsTheDownloadAndIdtsCopy()
    {
        using var tmp = new TempDir();
        string train = Path.Combine(tmp.Path, "rain_data_train_Heavy");
        foreach (int i in new[] { 1, 2, 10 })
        {
            Img(Path.Combine(train, "rain", "X2", $"norain-{i}x2.png"), i);
            Img(Path.Combine(train, "norain", $"norain-{i}.png"), 100 + i);
        }
        var pairs = Pairs(new Rain200Layout(), new DatasetRoots(train), train);
        Assert.Equal([("norain-1", "norain/norain-1.png", "rain/X2/norain-1x2.png"), ("norain-10", "norain/norain-10.png", "rain/X2/norain-10x2.png"),
            ("norain-2", "norain/norain-2.png", "rain/X2/norain-2x2.png")], pairs);

        string idt = Path.Combine(tmp.Path, "Rain200H", "train");
        Img(Path.Combine(idt, "input", "rain-1.png"), 1); Img(Path.Combine(idt, "groundtruth", "norain-1.png"), 101);
        Img(Path.Combine(idt, "input", "rain-2.png"), 2);
        var e = Assert.Throws<DatasetLayoutException>(() => new Rain200Layout().Pair(new DatasetRoots(idt)));
        Assert.Contains("rain-2.png (looked for 'rain-2.*' or 'norain-2.*')", e.Message);
        Img(Path.Combine(idt, "groundtruth", "norain-2.png"), 102);
        var ds = new LayoutDataset(new Rain200Layout(), new DatasetRoots(idt), new PairedDatasetOptions());
        Assert.Equal(["norain-1", "norain-2"], Enumerable.Range(0, ds.Count).Select(ds.NameOf));
        var pair = ds.Load(1, new Random(0));
        Assert.Equal((102f, 2f), (Value(pair.Gt), Value(pair.Lq)));
    }

    [Fact]
    public void DdnPairsFourteenRainyImagesPerCleanOne()
    {
        using var tmp = new TempDir();
        string root = Path.Combine(tmp.Path, "Rain1400");
        for (int i = 901; i <= 902; i++)
        {
            Img(Path.Combine(root, "ground_truth", $"{i}.jpg"), i - 800);
            for (int j = 1; j <= 14; j++) Img(Path.Combine(root, "rainy_image", $"{i}_{j}.jpg"), j);
        }
        var pairs = new DdnLayout().Pair(new DatasetRoots(root));
        Assert.Equal(28, pairs.Count);
        Assert.All(pairs, p => Assert.Equal(p.Name[..3] + ".jpg", Path.GetFileName(p.Gt)));
        Assert.Equal(14, pairs.Count(p => p.Gt.EndsWith("902.jpg")));

        Img(Path.Combine(root, "rainy_image", "903_1.jpg"), 1);
        var e = Assert.Throws<DatasetLayoutException>(() => new DdnLayout().Pair(new DatasetRoots(root)));
        Assert.Contains("903_1.jpg (looked for '903.*')", e.Message);
        Assert.Contains("{i}_{j} → {i}", e.Message);
    }

    [Fact]
    public void DidSplitsEachFileLeftRainyRightClean()
    {
        using var tmp = new TempDir();
        string root = Path.Combine(tmp.Path, "DID-MDN-training");
        foreach (var (density, n) in new[] { ("Rain_Heavy", 0), ("Rain_Light", 0) })
        {
            // 8 x 17: left half = columns 0..7 (value 50), right half = columns 8..16 (value 200).
            var px = new float[8 * 17 * 3];
            for (int y = 0; y < 8; y++) for (int x = 0; x < 17; x++) px[(y * 17 + x) * 3] = x < 8 ? 50 : 200 + (density == "Rain_Light" ? 1 : 0);
            string f = Path.Combine(root, density, "train2018new", $"{n}.png");
            Directory.CreateDirectory(Path.GetDirectoryName(f)!);
            ImageIO.Write(f, new RgbImage(8, 17, px));
        }
        var ds = new LayoutDataset(new DidLayout(), new DatasetRoots(root), new PairedDatasetOptions());
        Assert.Equal(["Rain_Heavy_train2018new_0", "Rain_Light_train2018new_0"], Enumerable.Range(0, ds.Count).Select(ds.NameOf));
        var layoutPairs = ds.Pairs;
        Assert.Equal((ImageRegion.LeftHalf, ImageRegion.RightHalf), (layoutPairs[0].LqRegion, layoutPairs[0].GtRegion));
        var rainy = LayoutDataset.Region(ImageIO.Read(layoutPairs[1].Lq), ImageRegion.LeftHalf, "f");
        var clean = LayoutDataset.Region(ImageIO.Read(layoutPairs[1].Gt), ImageRegion.RightHalf, "f");
        Assert.Equal((8, 8, 50f), (rainy.Width, rainy.Height, rainy[7, 7, 0]));
        Assert.Equal((9, 201f), (clean.Width, clean[0, 0, 0])); // PIL's crop: the right half keeps the odd column
        // An odd width makes the halves differ: the load names the file's halves.
        var e = Assert.Throws<McirException>(() => ds.Load(0, new Random(0)));
        Assert.Contains("0.png (right half)", e.Message);
    }

    [Fact]
    public void SpaReadsThePairListAndTheExtractedTestSet()
    {
        using var tmp = new TempDir();
        Img(Path.Combine(tmp.Path, "real_world", "001", "001-1", "001-1_0_0.png"), 1);
        Img(Path.Combine(tmp.Path, "real_world", "001", "001-1", "001-1_0_1.png"), 2);
        Img(Path.Combine(tmp.Path, "real_world_gt", "001", "001_0_0.png"), 11);
        Img(Path.Combine(tmp.Path, "real_world_gt", "001", "001_0_1.png"), 12);
        string list = Path.Combine(tmp.Path, "real_world.txt");
        File.WriteAllText(list, "./real_world/001/001-1/001-1_0_0.png ./real_world_gt/001/001_0_0.png\n/real_world/001/001-1/001-1_0_1.png /real_world_gt/001/001_0_1.png\n");
        Assert.Equal([("001-1_0_0", "real_world_gt/001/001_0_0.png", "real_world/001/001-1/001-1_0_0.png"), ("001-1_0_1", "real_world_gt/001/001_0_1.png", "real_world/001/001-1/001-1_0_1.png")],
            Pairs(new SpaLayout(), new DatasetRoots(tmp.Path, null, "{}", list), tmp.Path));
        File.AppendAllText(list, "./real_world/001/001-1/001-1_0_2.png ./real_world_gt/001/001_0_2.png\n");
        var e = Assert.Throws<DatasetLayoutException>(() => new SpaLayout().Pair(new DatasetRoots(tmp.Path, null, "{}", list)));
        Assert.Contains("line 3:", e.Message);
        Assert.Contains("001-1_0_2.png", e.Message);

        string test = Path.Combine(tmp.Path, "real_test_1000");
        Img(Path.Combine(test, "rain", "000.png"), 1); Img(Path.Combine(test, "gt", "000gt.png"), 11);
        Img(Path.Combine(test, "rain", "001.png"), 2); Img(Path.Combine(test, "gt", "001gt.png"), 12);
        Assert.Equal([("000", "gt/000gt.png", "rain/000.png"), ("001", "gt/001gt.png", "rain/001.png")], Pairs(new SpaLayout(), new DatasetRoots(test), test));
    }

    [Fact]
    public void GoProPairsBlurAndSharpPerSequenceAndNafnetsCopy()
    {
        using var tmp = new TempDir();
        string train = Path.Combine(tmp.Path, "GOPRO_Large", "train");
        foreach (var seq in new[] { "GOPR0372_07_00", "GOPR0372_07_01" })
            foreach (var frame in new[] { "000047", "000048" })
            {
                Img(Path.Combine(train, seq, "blur", frame + ".png"), 1);
                Img(Path.Combine(train, seq, "blur_gamma", frame + ".png"), 2);
                Img(Path.Combine(train, seq, "sharp", frame + ".png"), 3);
            }
        var pairs = Pairs(new GoProLayout(), new DatasetRoots(train), train);
        Assert.Equal(4, pairs.Count);
        Assert.Equal(("GOPR0372_07_00-000047", "GOPR0372_07_00/sharp/000047.png", "GOPR0372_07_00/blur/000047.png"), pairs[0]);
        Assert.DoesNotContain(pairs, p => p.Lq.Contains("blur_gamma"));

        File.Delete(Path.Combine(train, "GOPR0372_07_01", "sharp", "000048.png"));
        var e = Assert.Throws<DatasetLayoutException>(() => new GoProLayout().Pair(new DatasetRoots(train)));
        Assert.Contains("blurred file(s) without a sharp file: 000048.png (looked for '000048.*')", e.Message);
        Assert.Contains("GOPR0372_07_01", e.Message);

        string nafnet = Path.Combine(tmp.Path, "GoPro", "test");
        Img(Path.Combine(nafnet, "input", "GOPR0384_11_00-000001.png"), 1); Img(Path.Combine(nafnet, "target", "GOPR0384_11_00-000001.png"), 2);
        Assert.Equal([("GOPR0384_11_00-000001", "target/GOPR0384_11_00-000001.png", "input/GOPR0384_11_00-000001.png")], Pairs(new GoProLayout(), new DatasetRoots(nafnet), nafnet));
    }

    private sealed record EveryOtherOptions(int Keep = 2);

    // A plugin's layout: the files of one folder, every Keep-th one as input and the next as its ground truth.
    private sealed class EveryOtherLayout(EveryOtherOptions options) : IDatasetLayout
    {
        public string Name => "every-other";
        public string Rule => "alternate files";
        public IReadOnlyList<PairedFiles> Pair(DatasetRoots roots)
        {
            var files = FilePairing.ListImages(roots.DatarootGt, "dataroot_gt");
            return Enumerable.Range(0, files.Count / options.Keep).Select(i => new PairedFiles($"p{i}", files[i * options.Keep + 1], files[i * options.Keep])).ToList();
        }
    }

    [Fact]
    public void APluginLayoutIsADataSetTypeWithItsOwnOptions()
    {
        using var tmp = new TempDir();
        for (int i = 0; i < 4; i++) Img(Path.Combine(tmp.Path, $"f{i}.png"), 10 * i);
        // What the host's registry holds once a plugin called services.AddMcirDatasetLayout(descriptor).
        var layouts = new DatasetLayoutRegistry(McirEngineServiceCollectionExtensions.Layouts.Append(
            DatasetLayoutDescriptor.Of<EveryOtherLayout, EveryOtherOptions>("every-other", "test", new EveryOtherOptions(), o => new EveryOtherLayout(o))));
        var degradations = new DegradationRegistry([]);
        Assert.Equal(["ddn", "did", "every-other", "gopro", "paired-folder", "rain200", "reside", "spa"], layouts.All.Select(l => l.Name));

        var section = new DatasetSection { Type = "every-other", DatarootGt = tmp.Path };
        var data = RunComposition.CreateDataset(section, "data.val", training: false, degradations, layouts, channels: 3);
        Assert.Equal(2, data.Count);
        var pair = data.Load(1, new Random(0));
        Assert.Equal((30f, 20f), (Value(pair.Gt), Value(pair.Lq)));

        var options = System.Text.Json.Nodes.JsonNode.Parse("""{"keep": 4}""")!.AsObject();
        Assert.Equal(1, RunComposition.CreateDataset(section with { Options = options }, "data.val", false, degradations, layouts, 3).Count);
        var bad = System.Text.Json.Nodes.JsonNode.Parse("""{"kep": 4}""")!.AsObject();
        var e = Assert.Throws<McirException>(() => RunComposition.CreateDataset(section with { Options = bad }, "data.val", false, degradations, layouts, 3));
        Assert.Contains("data.val.options.kep", e.Message);

        var unknown = Assert.Throws<McirException>(() => RunComposition.CreateDataset(section with { Type = "gopr" }, "data.val", false, degradations, layouts, 3));
        Assert.Contains("data.val.type 'gopr'", unknown.Message);
        Assert.Contains("every-other", unknown.Message);
    }

    [Fact]
    public void ConfiguredPairingErrorsNameTheKey()
    {
        using var tmp = new TempDir();
        string hr = tmp.Sub("HR"), lr = tmp.Sub("X2");
        Img(Path.Combine(hr, "0001.png"), 10, 16, 16);
        Img(Path.Combine(lr, "0001x2.png"), 11);
        var section = new DatasetSection { Type = "paired-folder", DatarootGt = hr, DatarootLq = lr, Scale = 2 };
        var registry = new Mcir.Abstractions.Components.DegradationRegistry([]);
        var e = Assert.Throws<McirException>(() => RunComposition.CreateDataset(section, "data.train", true, registry));
        Assert.StartsWith("data.train: type paired-folder: ", e.Message);
        Assert.Contains("0001x2.png", e.Message);
        Assert.Equal(1, RunComposition.CreateDataset(section with { FilenameTmpl = "{}x2" }, "data.train", true, registry).Count);
        var t = Assert.Throws<McirException>(() => RunComposition.CreateDataset(section with { FilenameTmpl = "x2" }, "data.train", true, registry));
        Assert.Contains("filename_tmpl 'x2'", t.Message);
        var h = Assert.Throws<McirException>(() => RunComposition.CreateDataset(section with { Type = "hr-folder", FilenameTmpl = "{}x2" }, "data.train", true, registry));
        Assert.Contains("data.train.filename_tmpl is not used by type hr-folder", h.Message);
    }
}
