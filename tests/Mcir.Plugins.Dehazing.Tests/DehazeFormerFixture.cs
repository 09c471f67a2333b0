using System.Text.Json;
using Mcir.Tests.Shared;

namespace Mcir.Plugins.Dehazing.Tests;

/// <summary>
/// Reads the TestData/archs/dehazeformer_t fixture folder (config.json written by the PyTorch reference,
/// IDKiro/DehazeFormer <c>dehazeformer_t()</c>) and TestData/archs/dehazeformer_presets.json (parameter counts and
/// state-dict manifests of the five official constructors, computed with the same reference code).
/// </summary>
internal sealed class DehazeFormerFixture : ArchFixture
{
    private DehazeFormerFixture(string name) : base(name) { }

    public static DehazeFormerFixture Load() => new("dehazeformer_t");

    /// <summary>
    /// The fixture network: <c>dehazeformer_t()</c> takes no arguments (<c>constructor_kwargs</c> is empty), so it is the
    /// T preset; the reference fed <c>input*.npy</c> to the bare network, hence <see cref="DehazeFormerInputRange.ZeroOne"/>.
    /// </summary>
    public DehazeFormerOptions Options()
    {
        Assert.Empty(Kwargs("constructor_kwargs").EnumerateObject());
        Assert.Equal("dehazeformer_t", Config.GetProperty("reference").GetProperty("constructor").GetString());
        return DehazeFormerOptions.T with { InputRange = DehazeFormerInputRange.ZeroOne };
    }

    /// <summary>Root of dehazeformer_presets.json.</summary>
    public static JsonElement Presets()
    {
        string path = Path.Combine(AppContext.BaseDirectory, "TestData", "archs", "dehazeformer_presets.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        return doc.RootElement.GetProperty("presets").Clone();
    }

    /// <summary>Ordered name → shape of one preset's reference state dict.</summary>
    public static List<(string Name, long[] Shape)> PresetManifest(JsonElement preset) =>
        preset.GetProperty("keys").EnumerateObject()
            .Select(static p => (p.Name, p.Value.EnumerateArray().Select(static e => e.GetInt64()).ToArray()))
            .ToList();

    /// <summary>Folder of the released-format checkpoint test data (TestData/dehazeformer_released).</summary>
    public static string ReleasedPath(string file) => Path.Combine(AppContext.BaseDirectory, "TestData", "dehazeformer_released", file);
}
