using Mcir.Tests.Shared;

namespace Mcir.Plugins.Dehazing.Tests;

/// <summary>Reads the TestData/archs/ffa_small fixture folder (config.json written by the PyTorch reference).</summary>
internal sealed class FfaNetFixture : ArchFixture
{
    private FfaNetFixture(string name) : base(name) { }

    public static FfaNetFixture Load(string name = "ffa_small") => new(name);

    /// <summary>
    /// FfaNetOptions from <c>constructor_kwargs</c> (or another kwargs object of config.json). The reference network
    /// gets its input unnormalised, so <c>NormalizeInput</c> is false.
    /// </summary>
    public FfaNetOptions Options(string kwargsProperty = "constructor_kwargs")
    {
        var k = Kwargs(kwargsProperty);
        return new FfaNetOptions
        {
            Gps = k.GetProperty("gps").GetInt32(),
            Blocks = k.GetProperty("blocks").GetInt32(),
            NormalizeInput = false,
        };
    }
}
