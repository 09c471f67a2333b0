using System.Text.Json;

namespace Mcir.Plugins.Dehazing.Tests;

/// <summary>Reads the TestData/archs/ffa_small fixture folder (config.json written by the PyTorch reference).</summary>
internal sealed class FfaNetFixture
{
    private FfaNetFixture(string name, JsonElement config)
    {
        Name = name;
        Config = config;
    }

    public string Name { get; }
    public JsonElement Config { get; }
    public string Dir => Path.Combine(AppContext.BaseDirectory, "TestData", "archs", Name);
    public string StateDictPath => Path.Combine(Dir, "state_dict.pth");

    public string PathOf(string file) => Path.Combine(Dir, file);

    public static FfaNetFixture Load(string name = "ffa_small")
    {
        var path = Path.Combine(AppContext.BaseDirectory, "TestData", "archs", name, "config.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        return new FfaNetFixture(name, doc.RootElement.Clone());
    }

    /// <summary>
    /// FfaNetOptions from <c>constructor_kwargs</c> (or another kwargs object of config.json). The reference network
    /// gets its input unnormalised, so <c>NormalizeInput</c> is false.
    /// </summary>
    public FfaNetOptions Options(string kwargsProperty = "constructor_kwargs")
    {
        var k = Config.GetProperty(kwargsProperty);
        return new FfaNetOptions
        {
            Gps = k.GetProperty("gps").GetInt32(),
            Blocks = k.GetProperty("blocks").GetInt32(),
            NormalizeInput = false,
        };
    }

    /// <summary>Ordered name → shape of a key manifest (<c>state_dict.keys</c> or <c>requested_config_state_dict_keys</c>).</summary>
    public static List<(string Name, long[] Shape)> Manifest(JsonElement keys) =>
        keys.EnumerateObject()
            .Select(static p => (p.Name, p.Value.GetProperty("shape").EnumerateArray().Select(static e => e.GetInt64()).ToArray()))
            .ToList();

    public List<(string Name, long[] Shape)> StateDictManifest() => Manifest(Config.GetProperty("state_dict").GetProperty("keys"));
}
