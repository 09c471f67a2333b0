using System.Text.Json;

namespace Mcir.Plugins.Deblurring.Tests;

/// <summary>Reads one TestData/archs/&lt;name&gt; fixture folder (config.json written by the PyTorch reference).</summary>
internal sealed class NafnetFixture
{
    private NafnetFixture(string name, JsonElement config)
    {
        Name = name;
        Config = config;
    }

    public string Name { get; }
    public JsonElement Config { get; }
    public string Dir => Path.Combine(AppContext.BaseDirectory, "TestData", "archs", Name);
    public string StateDictPath => Path.Combine(Dir, "state_dict.pth");

    public string PathOf(string file) => Path.Combine(Dir, file);

    public static NafnetFixture Load(string name = "nafnet_small")
    {
        var path = Path.Combine(AppContext.BaseDirectory, "TestData", "archs", name, "config.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        return new NafnetFixture(name, doc.RootElement.Clone());
    }

    /// <summary>NafnetOptions from <c>constructor_kwargs</c> (or another kwargs object of config.json).</summary>
    public NafnetOptions Options(string kwargsProperty = "constructor_kwargs")
    {
        var k = Config.GetProperty(kwargsProperty);
        return new NafnetOptions
        {
            ImgChannel = k.GetProperty("img_channel").GetInt32(),
            Width = k.GetProperty("width").GetInt32(),
            MiddleBlkNum = k.GetProperty("middle_blk_num").GetInt32(),
            EncBlkNums = k.GetProperty("enc_blk_nums").EnumerateArray().Select(static e => e.GetInt32()).ToArray(),
            DecBlkNums = k.GetProperty("dec_blk_nums").EnumerateArray().Select(static e => e.GetInt32()).ToArray(),
        };
    }

    /// <summary>Ordered name → shape of a key manifest (<c>state_dict.keys</c> or <c>requested_config_state_dict_keys</c>).</summary>
    public static List<(string Name, long[] Shape)> Manifest(JsonElement keys) =>
        keys.EnumerateObject()
            .Select(static p => (p.Name, p.Value.GetProperty("shape").EnumerateArray().Select(static e => e.GetInt64()).ToArray()))
            .ToList();

    public List<(string Name, long[] Shape)> StateDictManifest() => Manifest(Config.GetProperty("state_dict").GetProperty("keys"));
}
