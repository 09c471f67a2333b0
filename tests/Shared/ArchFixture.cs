using System.Text.Json;

namespace Mcir.Tests.Shared;

/// <summary>
/// One TestData/archs/&lt;name&gt; reference folder written by the PyTorch originals (config.json, state_dict.pth,
/// inputs and outputs). Shared, as a linked source file, by the plugin test projects; each derives the mapping from
/// <c>constructor_kwargs</c> to its own options record.
/// </summary>
internal abstract class ArchFixture
{
    protected ArchFixture(string name)
    {
        Name = name;
        using var doc = JsonDocument.Parse(File.ReadAllText(PathOf("config.json")));
        Config = doc.RootElement.Clone();
    }

    public string Name { get; }
    public JsonElement Config { get; }
    public string Dir => Path.Combine(AppContext.BaseDirectory, "TestData", "archs", Name);
    public string StateDictPath => PathOf("state_dict.pth");
    public string InputPath => PathOf("input.npy");
    public string OutputPath => PathOf("output.npy");

    public string PathOf(string file) => Path.Combine(Dir, file);

    /// <summary>A kwargs object of config.json: <c>constructor_kwargs</c> or <c>requested_config_kwargs</c>.</summary>
    public JsonElement Kwargs(string property) => Config.GetProperty(property);

    /// <summary>Ordered name → shape of a key manifest (<c>state_dict.keys</c> or <c>requested_config_state_dict_keys</c>).</summary>
    public static List<(string Name, long[] Shape)> Manifest(JsonElement keys) =>
        keys.EnumerateObject()
            .Select(static p => (p.Name, p.Value.GetProperty("shape").EnumerateArray().Select(static e => e.GetInt64()).ToArray()))
            .ToList();

    public List<(string Name, long[] Shape)> StateDictManifest() => Manifest(Config.GetProperty("state_dict").GetProperty("keys"));
}
