namespace Mcir.Plugins.SuperResolution;

/// <summary>
/// Options of <see cref="Edsr"/>: BasicSR's <c>EDSR(num_in_ch, num_out_ch, num_feat, num_block, upscale, res_scale,
/// img_range, rgb_mean)</c> arguments. <c>new EdsrOptions()</c> is the paper's full-size EDSR (256 features, 32 blocks,
/// residual scaling 0.1, ×4); <see cref="Light"/> is the 64/16 baseline that BasicSR and MCIR train.
/// </summary>
/// <remarks>
/// Immutable; derive variants with <c>with</c> (<c>EdsrOptions.Light with { Upscale = 2 }</c>). Equality compares
/// <see cref="RgbMean"/> element by element, so two option sets with the same values are equal.
/// </remarks>
public sealed record EdsrOptions
{
    private static readonly IReadOnlyList<double> DefaultRgbMean = Array.AsReadOnly(new[] { 0.4488, 0.4371, 0.4040 });
    private readonly IReadOnlyList<double> _rgbMean = DefaultRgbMean;

    /// <summary>EDSR baseline (BasicSR's defaults): 64 features, 16 blocks, residual scaling 1, ×4.</summary>
    public static EdsrOptions Light { get; } = new() { NumFeat = 64, NumBlock = 16, ResScale = 1.0 };

    /// <summary>Channels of the input image (<c>num_in_ch</c>). Default 3.</summary>
    public int NumInChannels { get; init; } = 3;

    /// <summary>Channels of the output image (<c>num_out_ch</c>). Default 3.</summary>
    public int NumOutChannels { get; init; } = 3;

    /// <summary>Channels of the intermediate features (<c>num_feat</c>). Default 256 (paper's EDSR).</summary>
    public int NumFeat { get; init; } = 256;

    /// <summary>Residual blocks in the trunk (<c>num_block</c>). Default 32 (paper's EDSR).</summary>
    public int NumBlock { get; init; } = 32;

    /// <summary>Upsampling factor (<c>upscale</c>): 3 or a power of two ≥ 2 (BasicSR's <c>Upsample</c>). Default 4.</summary>
    public int Upscale { get; init; } = 4;

    /// <summary>Scale of each block's residual (<c>res_scale</c>). Default 0.1 (paper's EDSR).</summary>
    public double ResScale { get; init; } = 0.1;

    /// <summary>Image range the network works in (<c>img_range</c>): inputs in [0, 1] are multiplied by it. Default 255.</summary>
    public double ImgRange { get; init; } = 255.0;

    /// <summary>
    /// Per-channel mean subtracted from the input and added back to the output (<c>rgb_mean</c>, DIV2K's by default:
    /// 0.4488, 0.4371, 0.4040). One value per channel.
    /// </summary>
    public IReadOnlyList<double> RgbMean
    {
        get => _rgbMean;
        init => _rgbMean = Array.AsReadOnly((value ?? throw new ArgumentNullException(nameof(RgbMean))).ToArray());
    }

    /// <summary>
    /// Checks the options and throws an <see cref="ArgumentException"/> naming the offending option (and the allowed
    /// values) when they cannot build an EDSR.
    /// </summary>
    public void Validate()
    {
        if (NumInChannels < 1)
            throw new ArgumentException($"EDSR: {nameof(NumInChannels)} must be >= 1, got {NumInChannels}.");
        if (NumOutChannels < 1)
            throw new ArgumentException($"EDSR: {nameof(NumOutChannels)} must be >= 1, got {NumOutChannels}.");
        if (NumFeat < 1)
            throw new ArgumentException($"EDSR: {nameof(NumFeat)} must be >= 1, got {NumFeat}.");
        if (NumBlock < 0)
            throw new ArgumentException($"EDSR: {nameof(NumBlock)} must be >= 0, got {NumBlock}.");
        if (!IsSupportedUpscale(Upscale))
            throw new ArgumentException(
                $"EDSR: {nameof(Upscale)} {Upscale} is not supported; supported scales are 3 and powers of two >= 2 (2, 4, 8, ...), as in BasicSR's Upsample.");
        if (!double.IsFinite(ResScale))
            throw new ArgumentException($"EDSR: {nameof(ResScale)} must be a finite number, got {ResScale}.");
        if (!double.IsFinite(ImgRange) || ImgRange <= 0)
            throw new ArgumentException($"EDSR: {nameof(ImgRange)} must be a positive number, got {ImgRange}.");
        if (RgbMean.Count != NumInChannels || RgbMean.Count != NumOutChannels)
            throw new ArgumentException(
                $"EDSR: {nameof(RgbMean)} has {RgbMean.Count} values, but the mean is subtracted from the input ({NumInChannels} channels) "
                + $"and added to the output ({NumOutChannels} channels): give one value per channel.");
        if (RgbMean.Any(v => !double.IsFinite(v)))
            throw new ArgumentException($"EDSR: {nameof(RgbMean)} values must be finite, got ({string.Join(", ", RgbMean)}).");
    }

    /// <summary>True for the upscale factors BasicSR's <c>Upsample</c> builds: 3 and powers of two ≥ 2.</summary>
    public static bool IsSupportedUpscale(int upscale) => Upsample.Supports(upscale);

    /// <inheritdoc />
    public bool Equals(EdsrOptions? other) =>
        other is not null
        && (ReferenceEquals(this, other)
            || (NumInChannels == other.NumInChannels
                && NumOutChannels == other.NumOutChannels
                && NumFeat == other.NumFeat
                && NumBlock == other.NumBlock
                && Upscale == other.Upscale
                && ResScale.Equals(other.ResScale)
                && ImgRange.Equals(other.ImgRange)
                && RgbMean.SequenceEqual(other.RgbMean)));

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(NumInChannels);
        hash.Add(NumOutChannels);
        hash.Add(NumFeat);
        hash.Add(NumBlock);
        hash.Add(Upscale);
        hash.Add(ResScale);
        hash.Add(ImgRange);
        foreach (var v in RgbMean) hash.Add(v);
        return hash.ToHashCode();
    }

    private bool PrintMembers(System.Text.StringBuilder builder)
    {
        builder.Append($"NumInChannels = {NumInChannels}, NumOutChannels = {NumOutChannels}, NumFeat = {NumFeat}, NumBlock = {NumBlock}, ");
        builder.Append($"Upscale = {Upscale}, ResScale = {ResScale}, ImgRange = {ImgRange}, RgbMean = [{string.Join(", ", RgbMean)}]");
        return true;
    }
}
