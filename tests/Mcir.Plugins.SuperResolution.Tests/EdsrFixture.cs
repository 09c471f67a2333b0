using Mcir.Tests.Shared;

namespace Mcir.Plugins.SuperResolution.Tests;

/// <summary>Reads one TestData/archs/&lt;name&gt; fixture folder (config.json written by the PyTorch reference).</summary>
internal sealed class EdsrFixture : ArchFixture
{
    private EdsrFixture(string name) : base(name) { }

    public static EdsrFixture Load(string name) => new(name);

    /// <summary>EdsrOptions from <c>constructor_kwargs</c> (or another kwargs object of config.json).</summary>
    public EdsrOptions Options(string kwargsProperty = "constructor_kwargs")
    {
        var k = Kwargs(kwargsProperty);
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
}
