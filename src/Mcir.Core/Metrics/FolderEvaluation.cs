using Mcir.Core.Data;
using Mcir.Core.Metrics.Protocols;

namespace Mcir.Core.Metrics;

/// <summary>
/// The <c>metrics</c> section: the default evaluation protocol and the parameters of <c>basicsr</c> (BasicSR's
/// calculate_psnr / calculate_ssim arguments).
/// </summary>
/// <param name="CropBorder">Pixels removed from each border before scoring (SR convention: the scale); <c>basicsr</c> only.</param>
/// <param name="YChannel">Score the BT.601 Y channel instead of RGB (SR and deraining convention); <c>basicsr</c> only.</param>
public sealed record MetricsProtocol(int CropBorder = 0, bool YChannel = false)
{
    /// <summary>
    /// The protocol of the validation and test sets that do not name their own (<c>data.val.protocol</c>,
    /// <c>data.test[i].protocol</c>): one of <see cref="EvaluationProtocols.Names"/>; default <c>basicsr</c>.
    /// </summary>
    public string Protocol { get; init; } = EvaluationProtocols.Default;

    /// <summary>Throws an <see cref="ArgumentException"/> for an invalid value (the configuration binder calls it).</summary>
    public void Validate()
    {
        if (CropBorder < 0) throw new ArgumentException($"must be 0 or more, got {CropBorder}", nameof(CropBorder));
        if (!EvaluationProtocols.IsKnown(Protocol)) throw new ArgumentException(EvaluationProtocols.UnknownMessage(Protocol), nameof(Protocol));
    }
}

/// <summary>One image's scores.</summary>
public sealed record ImageScore(string Name, double Psnr, double Ssim);

/// <summary>Per-image scores and their plain means (BasicSR's test script averages per-image values).</summary>
/// <param name="Protocol">The protocol that scored the images, as described for these images.</param>
/// <param name="Images">One score per image.</param>
public sealed record MetricsReport(ProtocolInfo Protocol, IReadOnlyList<ImageScore> Images)
{
    public double MeanPsnr => Images.Average(i => i.Psnr);
    public double MeanSsim => Images.Average(i => i.Ssim);

    /// <summary>A fixed-width table: one row per image, then the mean.</summary>
    public string ToTable()
    {
        int w = Math.Max(5, Images.Max(i => i.Name.Length));
        var sb = new System.Text.StringBuilder();
        sb.AppendLine($"{"image".PadRight(w)}  {"PSNR (dB)",10}  {"SSIM",8}");
        foreach (var i in Images)
            sb.AppendLine($"{i.Name.PadRight(w)}  {i.Psnr,10:F4}  {i.Ssim,8:F6}");
        sb.AppendLine($"{"mean".PadRight(w)}  {MeanPsnr,10:F4}  {MeanSsim,8:F6}");
        sb.Append($"({Images.Count} images, {Protocol.Header})");
        return sb.ToString();
    }

    /// <summary>
    /// The same numbers (full double precision) in the shared test-set schema (<see cref="ResultsJson"/>), without a
    /// baseline; write it with <see cref="ResultsJson.Write"/>.
    /// </summary>
    /// <param name="dataset">The test set's name (e.g. the ground-truth folder's).</param>
    public System.Text.Json.Nodes.JsonObject ToJson(string dataset) => ResultsJson.TestSet(dataset, this);
}

/// <summary>Scores a folder of restored images against a folder of ground-truth images.</summary>
public static class FolderEvaluation
{
    /// <param name="gtDir">Folder of ground-truth images.</param>
    /// <param name="restoredDir">Folder of restored images, paired with <paramref name="gtDir"/> by file name.</param>
    /// <param name="protocol">Crop border and channel of the <c>basicsr</c> protocol.</param>
    /// <param name="warning">Receives the reader's warnings (<see cref="ImageReadOptions.Warning"/>); null = standard error.</param>
    public static MetricsReport Evaluate(string gtDir, string restoredDir, MetricsProtocol protocol, Action<string>? warning = null)
    {
        ArgumentNullException.ThrowIfNull(protocol);
        return Evaluate(gtDir, restoredDir, new BasicSrProtocol(protocol.CropBorder, protocol.YChannel), warning);
    }

    /// <summary>
    /// Scores with a named protocol. The files are 8-bit images, so a float protocol (<c>ffa-net</c>,
    /// <c>dehazeformer</c>) scores <c>file / 255</c> instead of a network's unquantised output.
    /// </summary>
    /// <param name="gtDir">Folder of ground-truth images.</param>
    /// <param name="restoredDir">Folder of restored images, paired with <paramref name="gtDir"/> by file name.</param>
    /// <param name="protocol">The protocol (<see cref="EvaluationProtocols.Create"/>).</param>
    /// <param name="warning">Receives the reader's warnings (<see cref="ImageReadOptions.Warning"/>); null = standard error.</param>
    public static MetricsReport Evaluate(string gtDir, string restoredDir, EvaluationProtocol protocol, Action<string>? warning = null)
    {
        ArgumentNullException.ThrowIfNull(protocol);
        var scores = new List<ImageScore>();
        var read = new ImageReadOptions { Warning = warning };
        foreach (var (name, gtPath, restoredPath) in ImageFolder.Pair(gtDir, restoredDir))
        {
            var gt = ImageIO.Read(gtPath, read);
            var restored = ImageIO.Read(restoredPath, read);
            if (gt.Height != restored.Height || gt.Width != restored.Width)
                throw new McirException($"{restoredPath}: size {restored.Height}x{restored.Width} differs from the ground truth {gtPath} ({gt.Height}x{gt.Width})");
            try { scores.Add(protocol.ScoreImage(name, new ScoringInput(gt, restored))); }
            catch (ArgumentException e) { throw new McirException($"{restoredPath}: {EvaluationProtocol.MessageOf(e)}", e); }
        }
        return new MetricsReport(protocol.Describe(gray: false, floatOutput: false), scores);
    }
}
