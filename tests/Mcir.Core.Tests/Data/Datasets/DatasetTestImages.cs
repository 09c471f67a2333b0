using Mcir.Core.Data;

namespace Mcir.Core.Tests.Data.Datasets;

/// <summary>Synthetic images and temporary folders for the data set tests.</summary>
internal static class DatasetTestImages
{
    /// <summary>
    /// An LQ image whose pixel (y, x) holds R = y, G = x, B = 7 (its own coordinate), and the matching GT at
    /// <paramref name="scale"/>: pixel (Y, X) holds R = Y / scale, G = X / scale (the LQ pixel it belongs to) and
    /// B = (Y % scale)·scale + X % scale (its place inside that block). Sizes must stay ≤ 256 LQ pixels.
    /// </summary>
    public static (RgbImage Lq, RgbImage Gt) CoordinatePair(int lqHeight, int lqWidth, int scale)
    {
        var lq = new float[lqHeight * lqWidth * 3];
        for (int y = 0; y < lqHeight; y++)
            for (int x = 0; x < lqWidth; x++)
            {
                int i = (y * lqWidth + x) * 3;
                lq[i] = y;
                lq[i + 1] = x;
                lq[i + 2] = 7;
            }

        int h = lqHeight * scale, w = lqWidth * scale;
        var gt = new float[h * w * 3];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int i = (y * w + x) * 3;
                gt[i] = y / scale;
                gt[i + 1] = x / scale;
                gt[i + 2] = (y % scale) * scale + x % scale;
            }

        return (new RgbImage(lqHeight, lqWidth, lq), new RgbImage(h, w, gt));
    }

    /// <summary>Asserts that GT pixel (Y, X) lies in the block of LQ pixel (Y / scale, X / scale), for every pixel.</summary>
    public static void AssertAligned(RgbImage lq, RgbImage gt, int scale)
    {
        Assert.Equal(lq.Height * scale, gt.Height);
        Assert.Equal(lq.Width * scale, gt.Width);
        for (int y = 0; y < gt.Height; y++)
            for (int x = 0; x < gt.Width; x++)
            {
                int ly = y / scale, lx = x / scale;
                if (gt[y, x, 0] != lq[ly, lx, 0] || gt[y, x, 1] != lq[ly, lx, 1])
                    Assert.Fail($"GT ({y},{x}) comes from LQ block ({gt[y, x, 0]},{gt[y, x, 1]}) but sits under LQ pixel ({ly},{lx}) = ({lq[ly, lx, 0]},{lq[ly, lx, 1]})");
            }
    }

    /// <summary>A random 8-bit image (deterministic for a seed).</summary>
    public static RgbImage Random(int height, int width, int seed)
    {
        var rng = new System.Random(seed);
        var px = new float[height * width * 3];
        for (int i = 0; i < px.Length; i++) px[i] = rng.Next(256);
        return new RgbImage(height, width, px);
    }

    public static void AssertSameImage(RgbImage expected, RgbImage actual)
    {
        Assert.Equal((expected.Height, expected.Width), (actual.Height, actual.Width));
        Assert.Equal(expected.Pixels, actual.Pixels);
    }
}

/// <summary>A temporary folder deleted at dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "mcir-datasets-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string Sub(string name)
    {
        var p = System.IO.Path.Combine(Path, name);
        Directory.CreateDirectory(p);
        return p;
    }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); }
        catch (IOException) { }
    }
}

/// <summary>An in-memory paired data set of coordinate-encoded images (no files).</summary>
internal sealed class InMemoryPairedDataset : Mcir.Core.Data.Datasets.IPairedDataset
{
    private readonly (RgbImage Lq, RgbImage Gt)[] _pairs;
    private readonly int _gtSize;
    private readonly int _scale;
    private int _loads;

    public InMemoryPairedDataset(int count, int scale = 2, int lqSize = 12, int gtSize = 8)
    {
        _scale = scale;
        _gtSize = gtSize;
        _pairs = Enumerable.Range(0, count).Select(i =>
        {
            var (lq, gt) = DatasetTestImages.CoordinatePair(lqSize, lqSize + i % 3, scale);
            // Tag each sample with its index in B of the LQ so batches can be traced back.
            for (int k = 2; k < lq.Pixels.Length; k += 3) lq.Pixels[k] = i;
            return (lq, gt);
        }).ToArray();
    }

    public int Loads => Volatile.Read(ref _loads);

    public int Count => _pairs.Length;

    public string NameOf(int index) => $"s{index:D3}";

    public Mcir.Core.Data.Datasets.PairedImages Load(int index, Random rng)
    {
        Interlocked.Increment(ref _loads);
        var (lq, gt) = _pairs[index];
        var (gtc, lqc) = Mcir.Core.Data.Datasets.PairedTransforms.PairedRandomCrop(gt, lq, _gtSize, _scale, rng);
        var (gta, lqa, _) = Mcir.Core.Data.Datasets.PairedTransforms.Augment(gtc, lqc, rng, hflip: true, rotation: true);
        return new Mcir.Core.Data.Datasets.PairedImages(lqa, gta, NameOf(index));
    }
}
