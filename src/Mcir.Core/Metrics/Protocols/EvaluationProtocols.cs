namespace Mcir.Core.Metrics.Protocols;

/// <summary>
/// The evaluation protocols by name (<c>metrics.protocol</c>, <c>data.test[i].protocol</c>, <c>data.val.protocol</c>,
/// <c>mcir-host test|metrics --protocol</c>); docs/configuration.md describes each with its source.
/// </summary>
public static class EvaluationProtocols
{
    /// <summary>The default protocol: BasicSR's calculate_psnr / calculate_ssim with <c>metrics.crop_border</c> / <c>metrics.y_channel</c>.</summary>
    public const string Default = BasicSrProtocol.ProtocolName;

    /// <summary>Every registered name, in documentation order.</summary>
    public static IReadOnlyList<string> Names { get; } =
        [BasicSrProtocol.ProtocolName, BasicSrProtocol.SrName, FfaNetProtocol.ProtocolName, DehazeFormerProtocol.ProtocolName, IdtProtocol.ProtocolName, NafNetProtocol.ProtocolName];

    /// <summary>True when <paramref name="name"/> is registered (exact, lower case).</summary>
    public static bool IsKnown(string? name) => name is not null && Names.Contains(name, StringComparer.Ordinal);

    /// <summary>The message for an unknown name: <c>unknown protocol 'x'; known: basicsr, sr, …</c>.</summary>
    public static string UnknownMessage(string? name) => $"unknown protocol '{name}'; known: {string.Join(", ", Names)}";

    /// <summary>
    /// The protocol called <paramref name="name"/>. <paramref name="metrics"/> gives the crop border and Y channel of
    /// <c>basicsr</c>; <paramref name="scale"/> is the test set's scale (<c>sr</c> crops that many pixels).
    /// </summary>
    /// <exception cref="McirException">An unknown name; the message starts with <paramref name="where"/> (the key or option).</exception>
    public static EvaluationProtocol Create(string? name, MetricsProtocol metrics, int scale, string where)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        return name switch
        {
            BasicSrProtocol.ProtocolName => new BasicSrProtocol(metrics.CropBorder, metrics.YChannel),
            BasicSrProtocol.SrName => BasicSrProtocol.Sr(scale),
            FfaNetProtocol.ProtocolName => FfaNetProtocol.Instance,
            DehazeFormerProtocol.ProtocolName => DehazeFormerProtocol.Instance,
            IdtProtocol.ProtocolName => IdtProtocol.Instance,
            NafNetProtocol.ProtocolName => NafNetProtocol.Instance,
            _ => throw new McirException($"{where}: {UnknownMessage(name)}"),
        };
    }
}
