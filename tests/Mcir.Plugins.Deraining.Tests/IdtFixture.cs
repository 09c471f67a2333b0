using System.Text.Json;
using Mcir.Tests.Shared;

namespace Mcir.Plugins.Deraining.Tests;

/// <summary>
/// Reads the TestData/archs/idt fixture folder (config.json written by the PyTorch reference, jiexiaou/IDT <c>IDT(...)</c>
/// with embed_dim 4) and locates the data of TestData/idt_reference (made by its make_reference.py with IDT's own code).
/// </summary>
internal sealed class IdtFixture : ArchFixture
{
    private IdtFixture() : base("idt") { }

    public static IdtFixture Load() => new();

    /// <summary>The options of a kwargs object of config.json (<c>constructor_kwargs</c> or <c>requested_config_kwargs</c>).</summary>
    public IdtOptions Options(string property = "constructor_kwargs")
    {
        var k = Kwargs(property);
        static int[] Ints(JsonElement e) => e.EnumerateArray().Select(static v => v.GetInt32()).ToArray();
        return new IdtOptions
        {
            ImgSize = k.GetProperty("img_size").GetInt32(),
            InChans = k.GetProperty("in_chans").GetInt32(),
            EmbedDim = k.GetProperty("embed_dim").GetInt32(),
            Depths = Ints(k.GetProperty("depths")),
            NumHeads = Ints(k.GetProperty("num_heads")),
            WinSize = k.GetProperty("win_size").GetInt32(),
            MlpRatio = k.GetProperty("mlp_ratio").GetDouble(),
            QkvBias = k.GetProperty("qkv_bias").GetBoolean(),
        };
    }

    /// <summary>A file of TestData/idt_reference.</summary>
    public static string ReferencePath(string file) => Path.Combine(AppContext.BaseDirectory, "TestData", "idt_reference", file);

    /// <summary>Root of TestData/idt_reference/expected.json.</summary>
    public static JsonElement Expected()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(ReferencePath("expected.json")));
        return doc.RootElement.Clone();
    }
}
