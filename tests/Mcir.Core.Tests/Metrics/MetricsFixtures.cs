using System.Text.Json;
using Mcir.Core.Data;
using Mcir.Core.IO;

namespace Mcir.Core.Tests.Metrics;

/// <summary>Access to TestData/metrics (BasicSR reference images and numbers, see its README.md).</summary>
internal static class MetricsFixtures
{
    public static string Dir { get; } = Path.Combine(AppContext.BaseDirectory, "TestData", "metrics");

    private static readonly Lazy<JsonElement> ExpectedRoot = new(() =>
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Dir, "expected.json")));
        return doc.RootElement.Clone();
    });

    public static JsonElement Expected => ExpectedRoot.Value;

    /// <summary>Every (image_crop, scale) pair listed in expected.json.</summary>
    public static IEnumerable<(string Image, int Scale)> Cases()
    {
        foreach (var image in Expected.GetProperty("images").EnumerateObject())
            foreach (var scale in image.Value.GetProperty("scales").EnumerateObject())
                yield return (image.Name, int.Parse(scale.Name, System.Globalization.CultureInfo.InvariantCulture));
    }

    public static TheoryData<string, int> CaseData()
    {
        var data = new TheoryData<string, int>();
        foreach (var (image, scale) in Cases())
            data.Add(image, scale);
        return data;
    }

    public static JsonElement Image(string image) => Expected.GetProperty("images").GetProperty(image);

    public static JsonElement Scale(string image, int scale) =>
        Image(image).GetProperty("scales").GetProperty(scale.ToString(System.Globalization.CultureInfo.InvariantCulture));

    public static RgbImage Png(string file) => ImageIO.Read(Path.Combine(Dir, file));

    public static RgbImage Hr(string image) => Png(Image(image).GetProperty("file").GetString()!);

    public static RgbImage Lr(string image, int scale) => Png(Scale(image, scale).GetProperty("lr_file").GetString()!);

    public static RgbImage Bic(string image, int scale) => Png(Scale(image, scale).GetProperty("bic_file").GetString()!);

    public static float[] NpyFloats(string file, out long[] shape)
    {
        using var t = Npy.Load(Path.Combine(Dir, file));
        shape = t.shape;
        return t.data<float>().ToArray();
    }

    public static int[] Ints(JsonElement array) => array.EnumerateArray().Select(e => e.GetInt32()).ToArray();

    /// <summary>Float64 sum of the samples clamped to [0, 1] (how expected.json's float sums were taken).</summary>
    public static double ClampedSum(float[] values)
    {
        double s = 0;
        foreach (float v in values)
            s += Math.Clamp(v, 0f, 1f);
        return s;
    }
}
