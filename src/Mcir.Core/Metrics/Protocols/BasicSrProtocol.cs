namespace Mcir.Core.Metrics.Protocols;

/// <summary>
/// <c>basicsr</c> (the default): BasicSR's <c>calculate_psnr</c> / <c>calculate_ssim</c>
/// (<c>basicsr/metrics/psnr_ssim.py</c>) on the uint8-rounded images with <c>metrics.crop_border</c> and
/// <c>metrics.y_channel</c> (BT.601 Y computed in float and not rounded, see <see cref="ColorConversion"/>).
/// <c>sr</c>: the same with the Y channel and crop border = the test set's scale, the convention of the EDSR/SwinIR
/// tables that the MCIR paper's SR rows follow. Gray images are scored as they are (BasicSR converts only 3 channels).
/// </summary>
public sealed class BasicSrProtocol : EvaluationProtocol
{
    /// <summary>The default protocol's name.</summary>
    public const string ProtocolName = "basicsr";

    /// <summary>The SR tables' protocol name.</summary>
    public const string SrName = "sr";

    private readonly string _name;

    /// <param name="cropBorder">Pixels removed from each border (≥ 0).</param>
    /// <param name="yChannel">Score the BT.601 Y channel instead of RGB.</param>
    public BasicSrProtocol(int cropBorder, bool yChannel) : this(ProtocolName, cropBorder, yChannel) { }

    private BasicSrProtocol(string name, int cropBorder, bool yChannel)
    {
        if (cropBorder < 0) throw new ArgumentOutOfRangeException(nameof(cropBorder), $"crop border must be >= 0, got {cropBorder}");
        _name = name;
        CropBorder = cropBorder;
        YChannel = yChannel;
    }

    /// <summary>The <c>sr</c> protocol for a test set of scale <paramref name="scale"/>: Y channel, crop border = scale.</summary>
    public static BasicSrProtocol Sr(int scale) => new(SrName, scale, yChannel: true);

    /// <inheritdoc />
    public override string Name => _name;

    /// <summary>Pixels removed from each border.</summary>
    public int CropBorder { get; }

    /// <summary>True: the BT.601 Y channel of RGB images is scored.</summary>
    public bool YChannel { get; }

    /// <inheritdoc />
    public override (double Psnr, double Ssim) Score(ScoringInput input)
    {
        bool y = YChannel && !input.Gray;
        return (ImageQuality.Psnr(input.Gt, input.Restored, CropBorder, y), ImageQuality.Ssim(input.Gt, input.Restored, CropBorder, y));
    }

    /// <inheritdoc />
    public override ProtocolInfo Describe(bool gray, bool floatOutput)
    {
        bool y = YChannel && !gray;
        string channels = gray ? "gray" : y ? "Y channel" : "RGB";
        string crop = $"crop border {CropBorder}{(_name == SrName ? " (the scale)" : "")}";
        return new ProtocolInfo(_name, $"{channels}, {crop}", CropBorder, y, gray, FloatOutput: false,
            Psnr: $"uint8-rounded {(y ? "BT.601 Y (float, not rounded)" : gray ? "gray" : "RGB")}, float64 MSE, peak 255",
            Ssim: "11x11 Gaussian (sigma 1.5), valid region, C1/C2 for L = 255, mean over channels",
            Source: "XPixelGroup/BasicSR basicsr/metrics/psnr_ssim.py calculate_psnr/calculate_ssim");
    }
}
