using Mcir.Tests.Shared;

namespace Mcir.Plugins.Deblurring.Tests;

/// <summary>Reads one TestData/archs/&lt;name&gt; fixture folder (config.json written by the PyTorch reference).</summary>
internal sealed class NafnetFixture : ArchFixture
{
    private NafnetFixture(string name) : base(name) { }

    public static NafnetFixture Load(string name = "nafnet_small") => new(name);

    /// <summary>NafnetOptions from <c>constructor_kwargs</c> (or another kwargs object of config.json).</summary>
    public NafnetOptions Options(string kwargsProperty = "constructor_kwargs")
    {
        var k = Kwargs(kwargsProperty);
        return new NafnetOptions
        {
            ImgChannel = k.GetProperty("img_channel").GetInt32(),
            Width = k.GetProperty("width").GetInt32(),
            MiddleBlkNum = k.GetProperty("middle_blk_num").GetInt32(),
            EncBlkNums = k.GetProperty("enc_blk_nums").EnumerateArray().Select(static e => e.GetInt32()).ToArray(),
            DecBlkNums = k.GetProperty("dec_blk_nums").EnumerateArray().Select(static e => e.GetInt32()).ToArray(),
        };
    }
}
