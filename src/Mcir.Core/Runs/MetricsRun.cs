using Mcir.Core.Metrics;
using Mcir.Core.Metrics.Protocols;

namespace Mcir.Core.Runs;

/// <summary>
/// Scores a folder of restored images against a folder of ground truth by a named protocol: the engine side of
/// <c>mcir-host metrics</c>. Also the protocol option rules it shares with <c>test</c>.
/// </summary>
public static class MetricsRun
{
    /// <summary>
    /// Checks the protocol options of <c>metrics</c> and <c>test</c>: <paramref name="cropBorder"/> (<c>--crop-border</c>)
    /// 0 or more, <paramref name="protocol"/> (<c>--protocol</c>) a known name, and <c>--crop-border</c> /
    /// <c>--y-channel</c> only with <c>basicsr</c> (the other protocols fix their own crop and channels).
    /// </summary>
    /// <exception cref="McirException">The first rule broken, naming the option.</exception>
    public static void CheckProtocolOptions(string protocol, int? cropBorder, bool yChannel)
    {
        if (cropBorder is < 0) throw new McirException($"--crop-border {cropBorder}: expected 0 or more");
        if (!EvaluationProtocols.IsKnown(protocol)) throw new McirException($"--protocol {protocol}: {EvaluationProtocols.UnknownMessage(protocol)}");
        if (protocol != EvaluationProtocols.Default && (cropBorder is not null || yChannel))
            throw new McirException($"--{(cropBorder is not null ? "crop-border" : "y-channel")}: only protocol basicsr takes it; protocol {protocol} fixes its own crop and channels");
    }

    /// <summary>
    /// The protocol of <c>metrics</c>: <paramref name="name"/> with <c>basicsr</c>'s <paramref name="cropBorder"/> (default 0)
    /// and <paramref name="yChannel"/>, or <c>sr</c> with <paramref name="scale"/> (required there, refused elsewhere).
    /// </summary>
    /// <exception cref="McirException">An option the protocol does not take, or a missing or invalid one.</exception>
    public static EvaluationProtocol Protocol(string name, int? cropBorder, bool yChannel, int? scale)
    {
        CheckProtocolOptions(name, cropBorder, yChannel);
        if (scale is < 1) throw new McirException($"--scale {scale}: expected 1 or more");
        if (name == BasicSrProtocol.SrName && scale is null) throw new McirException("--protocol sr: give --scale (the crop border is the scale)");
        if (name != BasicSrProtocol.SrName && scale is not null) throw new McirException($"--scale: only protocol sr takes it (crop border = scale); protocol {name} does not");
        return EvaluationProtocols.Create(name, new MetricsProtocol(cropBorder ?? 0, yChannel), scale ?? 1, "--protocol");
    }

    /// <summary>
    /// Scores <paramref name="restoredDir"/> against <paramref name="gtDir"/> (files paired by name) with
    /// <paramref name="protocol"/>. A float protocol scores the 8-bit files here; that is said on <paramref name="log"/>,
    /// as are the image reader's warnings.
    /// </summary>
    public static MetricsReport Execute(string gtDir, string restoredDir, EvaluationProtocol protocol, TextWriter log)
    {
        ArgumentNullException.ThrowIfNull(protocol);
        ArgumentNullException.ThrowIfNull(log);
        if (protocol.UsesFloatOutput)
            log.WriteLine($"note: protocol {protocol.Name} scores a network's float output; here it scores the 8-bit files (value / 255), which can differ from the published numbers by the quantisation");
        return FolderEvaluation.Evaluate(gtDir, restoredDir, protocol, warning: w => log.WriteLine($"warning: {w}"));
    }

    /// <summary>The name a test set gets from its folder (the ground-truth folder's name), as in <c>results.json</c>'s <c>dataset</c>.</summary>
    public static string DatasetName(string gtDir) => Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(gtDir)));
}
