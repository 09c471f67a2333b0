using System.Text.Json.Nodes;
using Mcir.Core.Data;

namespace Mcir.Core.Metrics.Protocols;

/// <summary>
/// One restored image and its ground truth as a protocol scores them.
/// </summary>
/// <param name="Gt">The ground truth (8-bit values on the 0–255 scale, HWC RGB; a gray image holds R = G = B).</param>
/// <param name="Restored">The restored image quantised to 8 bits (clamp to [0, 1], ×255, round half to even: BasicSR's
/// <c>tensor2img</c>, skimage's <c>img_as_ubyte</c>); same size as <paramref name="Gt"/>.</param>
/// <param name="RestoredUnit">The network's unquantised output clamped to [0, 1] (HWC RGB float32, gray replicated to
/// three channels), or null when only the 8-bit image exists (files, baselines): float protocols then score
/// <c>Restored / 255</c>.</param>
/// <param name="Gray">True when the images are gray (1-channel data): Y conversions are skipped.</param>
public sealed record ScoringInput(RgbImage Gt, RgbImage Restored, float[]? RestoredUnit = null, bool Gray = false)
{
    /// <summary>The restored samples in [0, 1] as float32 HWC: the float output when present, else <c>Restored / 255f</c>.</summary>
    public float[] RestoredFloat() => RestoredUnit ?? ToUnit(Restored);

    /// <summary>The ground truth in [0, 1] as float32 HWC (<c>u8 / 255f</c>, as <c>ToTensor</c> reads a file).</summary>
    public float[] GtFloat() => ToUnit(Gt);

    private static float[] ToUnit(RgbImage img)
    {
        var p = img.Pixels;
        var u = new float[p.Length];
        for (int i = 0; i < p.Length; i++) u[i] = p[i] / 255f;
        return u;
    }
}

/// <summary>
/// What a report says about the protocol that scored it: the name, a one-line summary for table headers, and the
/// parameters written to JSON (<c>results.json</c>, <c>test --json</c>, <c>metrics --json</c>).
/// </summary>
/// <param name="Name">The registered protocol name (<see cref="EvaluationProtocols.Names"/>).</param>
/// <param name="Summary">Channels, crop and SSIM variant in words, e.g. <c>Y from uint8 rgb2ycbcr, no crop</c>.</param>
/// <param name="CropBorder">Pixels cropped from each border.</param>
/// <param name="YChannel">True when a luma channel (rather than RGB) is scored.</param>
/// <param name="Gray">True when the images were gray (1 channel).</param>
/// <param name="FloatOutput">True when the network's unquantised output was scored (float protocols on a network).</param>
/// <param name="Psnr">How PSNR is computed, in words.</param>
/// <param name="Ssim">How SSIM is computed, in words.</param>
/// <param name="Source">The official file the protocol follows.</param>
public sealed record ProtocolInfo(string Name, string Summary, int CropBorder, bool YChannel, bool Gray, bool FloatOutput,
    string Psnr, string Ssim, string Source)
{
    /// <summary>The table header text: <c>protocol NAME: SUMMARY</c>.</summary>
    public string Header => $"protocol {Name}: {Summary}";

    /// <summary><c>{name, crop_border, y_channel, gray, float_output, psnr, ssim, source}</c>.</summary>
    public JsonObject ToJson() => new()
    {
        ["name"] = Name,
        ["crop_border"] = CropBorder,
        ["y_channel"] = YChannel,
        ["gray"] = Gray,
        ["float_output"] = FloatOutput,
        ["psnr"] = Psnr,
        ["ssim"] = Ssim,
        ["source"] = Source,
    };
}

/// <summary>
/// A named way to compute PSNR and SSIM, as one published table computed them (<see cref="EvaluationProtocols"/>
/// lists them). Implementations are stateless and thread-safe.
/// </summary>
public abstract class EvaluationProtocol
{
    /// <summary>The registered name (e.g. <c>basicsr</c>, <c>idt</c>).</summary>
    public abstract string Name { get; }

    /// <summary>True when the protocol scores the network's float output (no 8-bit quantisation).</summary>
    public virtual bool UsesFloatOutput => false;

    /// <summary>PSNR (dB) and SSIM of one image pair. Throws <see cref="ArgumentException"/> for images the protocol
    /// cannot score (too small for the SSIM window).</summary>
    public abstract (double Psnr, double Ssim) Score(ScoringInput input);

    /// <summary>The description of this protocol for images that are <paramref name="gray"/>, scored from the float
    /// output when <paramref name="floatOutput"/> (only meaningful when <see cref="UsesFloatOutput"/>).</summary>
    public abstract ProtocolInfo Describe(bool gray, bool floatOutput);

    /// <summary>Scores one named pair.</summary>
    public ImageScore ScoreImage(string name, ScoringInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Gt.Height != input.Restored.Height || input.Gt.Width != input.Restored.Width)
            throw new ArgumentException($"{name}: restored {input.Restored.Height}x{input.Restored.Width} differs from the ground truth {input.Gt.Height}x{input.Gt.Width}", nameof(input));
        var (psnr, ssim) = Score(input);
        return new ImageScore(name, psnr, ssim);
    }

    /// <inheritdoc />
    public override string ToString() => Name;

    /// <summary>An <see cref="ArgumentException"/>'s message without its " (Parameter 'x')" suffix.</summary>
    internal static string MessageOf(ArgumentException e) =>
        e.ParamName is { } p ? e.Message.Replace($" (Parameter '{p}')", "") : e.Message;
}
