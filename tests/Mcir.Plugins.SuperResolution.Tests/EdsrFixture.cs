using System.Text.Json;

namespace Mcir.Plugins.SuperResolution.Tests;

/// <summary>Reads one TestData/archs/&lt;name&gt; fixture folder (config.json written by the PyTorch reference).</summary>
internal sealed class EdsrFixture
{
    private EdsrFixture(string name, JsonElement config)
    {
        Name = name;
        Config = config;
    }

    public string Name { get; }
    public JsonElement Config { get; }
    public string Dir => Path.Combine(AppContext.BaseDirectory, "TestData", "archs", Name);
    public string StateDictPath => Path.Combine(Dir, "state_dict.pth");
    public string InputPath => Path.Combine(Dir, "input.npy");
    public string OutputPath => Path.Combine(Dir, "output.npy");

    public static EdsrFixture Load(string name)
    {
        var path = Path.Combine(AppContext.BaseDirectory, "TestData", "archs", name, "config.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        return new EdsrFixture(name, doc.RootElement.Clone());
    }

    /// <summary>EdsrOptions from <c>constructor_kwargs</c> (or another kwargs object of config.json).</summary>
    public EdsrOptions Options(string kwargsProperty = "constructor_kwargs")
    {
        var k = Config.GetProperty(kwargsProperty);
        return new EdsrOptions
        {
            NumInChannels = k.GetProperty("num_in_ch").GetInt32(),
            NumOutChannels = k.GetProperty("num_out_ch").GetInt32(),
            NumFeat = k.GetProperty("num_feat").GetInt32(),
            NumBlock = k.GetProperty("num_block").GetInt32(),
            Upscale = k.GetProperty("upscale").GetInt32(),
            ResScale = k.GetProperty("res_scale").GetDouble(),
            ImgRange = k.GetProperty("img_range").GetDouble(),
            RgbMean = k.GetProperty("rgb_mean").EnumerateArray().Select(static e => e.GetDouble()).ToArray(),
        };
    }

    /// <summary>Ordered name → shape of a key manifest (<c>state_dict.keys</c> or <c>requested_config_state_dict_keys</c>).</summary>
    public static List<(string Name, long[] Shape)> Manifest(JsonElement keys) =>
        keys.EnumerateObject()
            .Select(static p => (p.Name, p.Value.GetProperty("shape").EnumerateArray().Select(static e => e.GetInt64()).ToArray()))
            .ToList();

    public List<(string Name, long[] Shape)> StateDictManifest() => Manifest(Config.GetProperty("state_dict").GetProperty("keys"));
}
