namespace Mcir.Plugins.Deblurring;

/// <summary>
/// Options of <see cref="Nafnet"/>: NAFNet's <c>NAFNet(img_channel, width, middle_blk_num, enc_blk_nums, dec_blk_nums)</c>
/// arguments. <c>new NafnetOptions()</c> is NAFNet's GoPro width-32 model (<c>options/train/GoPro/NAFNet-width32.yml</c>:
/// width 32, encoder blocks [1, 1, 1, 28], 1 middle block, decoder blocks [1, 1, 1, 1]); <see cref="Small"/> is the
/// reduced configuration of the reference fixture.
/// </summary>
/// <remarks>
/// Immutable; derive variants with <c>with</c> (<c>new NafnetOptions() with { Width = 64 }</c>). Equality compares the
/// block lists element by element, so two option sets with the same values are equal.
/// </remarks>
public sealed record NafnetOptions
{
    private static readonly IReadOnlyList<int> DefaultEncBlkNums = Array.AsReadOnly(new[] { 1, 1, 1, 28 });
    private static readonly IReadOnlyList<int> DefaultDecBlkNums = Array.AsReadOnly(new[] { 1, 1, 1, 1 });
    private readonly IReadOnlyList<int> _encBlkNums = DefaultEncBlkNums;
    private readonly IReadOnlyList<int> _decBlkNums = DefaultDecBlkNums;
    private readonly IReadOnlyList<int>? _trainSize;

    /// <summary>A small NAFNet (the <c>nafnet-small</c> preset, the fixture's configuration): width 8, one block per level.</summary>
    public static NafnetOptions Small { get; } = new() { Width = 8, MiddleBlkNum = 1, EncBlkNums = [1, 1, 1, 1], DecBlkNums = [1, 1, 1, 1] };

    /// <summary>NAFNetLocal's default <c>train_size</c>, (N, C, H, W) = (1, 3, 256, 256): NAFNet's GoPro training crops.</summary>
    public static IReadOnlyList<int> DefaultTrainSize { get; } = Array.AsReadOnly(new[] { 1, 3, 256, 256 });

    /// <summary>
    /// NAFNet's GoPro model with test-time local pooling (the <c>nafnet-local</c> preset, NAFNet's
    /// <c>options/test/GoPro/NAFNet-width32.yml</c>: <c>NAFNetLocal</c>, train_size (1, 3, 256, 256)).
    /// </summary>
    public static NafnetOptions Local { get; } = new() { TrainSize = DefaultTrainSize };

    /// <summary><see cref="Small"/> with test-time local pooling over (1, 3, 256, 256) training crops (the <c>nafnet-small-local</c> preset).</summary>
    public static NafnetOptions SmallLocal { get; } = Small with { TrainSize = DefaultTrainSize };

    /// <summary>Channels of the input and output image (<c>img_channel</c>). Default 3.</summary>
    public int ImgChannel { get; init; } = 3;

    /// <summary>Feature channels at full resolution (<c>width</c>); doubled at every encoder level. Default 32.</summary>
    public int Width { get; init; } = 32;

    /// <summary>NAFBlocks at the lowest resolution (<c>middle_blk_num</c>). Default 1.</summary>
    public int MiddleBlkNum { get; init; } = 1;

    /// <summary>
    /// NAFBlocks of each encoder level (<c>enc_blk_nums</c>), one entry per level; each level ends with a stride-2
    /// downsampling. Default [1, 1, 1, 28].
    /// </summary>
    public IReadOnlyList<int> EncBlkNums
    {
        get => _encBlkNums;
        init => _encBlkNums = Array.AsReadOnly((value ?? throw new ArgumentNullException(nameof(EncBlkNums))).ToArray());
    }

    /// <summary>
    /// NAFBlocks of each decoder level (<c>dec_blk_nums</c>), from the lowest resolution up; as many levels as the
    /// encoder. Default [1, 1, 1, 1].
    /// </summary>
    public IReadOnlyList<int> DecBlkNums
    {
        get => _decBlkNums;
        init => _decBlkNums = Array.AsReadOnly((value ?? throw new ArgumentNullException(nameof(DecBlkNums))).ToArray());
    }

    /// <summary>
    /// NAFNetLocal's <c>train_size</c> (N, C, H, W) — the size of the training crops — or null (default) for the plain
    /// <c>NAFNet</c>, whose simplified channel attention averages each feature map globally. When set, every block's
    /// global average pool becomes TLC's local average pool (Chu et al., "Revisiting Global Statistics Aggregation for
    /// Improving Image Restoration", arXiv:2112.04491; megvii-research/NAFNet <c>NAFNetLocal</c>, <c>local_arch.py</c>, fast_imp
    /// false): a k_h × k_w mean around each pixel, where k is 1.5 × the feature map that block sees for an H × W input, so
    /// that statistics at test time cover the same image area as during training. On inputs up to 1.5 × (H, W) it computes
    /// exactly what the plain network does; the weights (state dict) are the same. Only H and W are used (N and C are kept
    /// for the original's format).
    /// </summary>
    public IReadOnlyList<int>? TrainSize
    {
        get => _trainSize;
        init => _trainSize = value is null ? null : Array.AsReadOnly(value.ToArray());
    }

    /// <summary>
    /// The input is zero-padded to a multiple of this (<c>2 ** len(enc_blk_nums)</c>, NAFNet's <c>padder_size</c>). A method,
    /// not a property, so that it is not a configuration key.
    /// </summary>
    /// <returns>2 to the power of the number of encoder levels.</returns>
    public int PadderSize() => 1 << EncBlkNums.Count;

    /// <summary>
    /// Checks the options and throws an <see cref="ArgumentException"/> naming the offending option when they cannot
    /// build a NAFNet.
    /// </summary>
    public void Validate()
    {
        if (ImgChannel < 1)
            throw new ArgumentException($"NAFNet: {nameof(ImgChannel)} (img_channel) must be >= 1, got {ImgChannel}.");
        if (Width < 1)
            throw new ArgumentException($"NAFNet: {nameof(Width)} (width) must be >= 1, got {Width}.");
        if (MiddleBlkNum < 0)
            throw new ArgumentException($"NAFNet: {nameof(MiddleBlkNum)} (middle_blk_num) must be >= 0, got {MiddleBlkNum}.");
        if (EncBlkNums.Any(static n => n < 0))
            throw new ArgumentException($"NAFNet: {nameof(EncBlkNums)} (enc_blk_nums) entries must be >= 0, got [{string.Join(", ", EncBlkNums)}].");
        if (DecBlkNums.Any(static n => n < 0))
            throw new ArgumentException($"NAFNet: {nameof(DecBlkNums)} (dec_blk_nums) entries must be >= 0, got [{string.Join(", ", DecBlkNums)}].");
        if (EncBlkNums.Count != DecBlkNums.Count)
            throw new ArgumentException(
                $"NAFNet: {nameof(EncBlkNums)} has {EncBlkNums.Count} levels and {nameof(DecBlkNums)} {DecBlkNums.Count}: every downsampling "
                + "needs an upsampling and a skip connection, give both the same number of levels.");
        if (TrainSize is { } t && (t.Count != 4 || t.Any(static n => n < 1)))
            throw new ArgumentException(
                $"NAFNet: {nameof(TrainSize)} (train_size) must be null or four positive sizes [N, C, H, W] of the training crops, got [{string.Join(", ", t)}].");
        if (EncBlkNums.Count > 16 || (long)Width << EncBlkNums.Count > int.MaxValue)
            throw new ArgumentException(
                $"NAFNet: {EncBlkNums.Count} levels with width {Width} give more than {int.MaxValue} channels at the lowest resolution.");
    }

    /// <inheritdoc />
    public bool Equals(NafnetOptions? other) =>
        other is not null
        && (ReferenceEquals(this, other)
            || (ImgChannel == other.ImgChannel
                && Width == other.Width
                && MiddleBlkNum == other.MiddleBlkNum
                && EncBlkNums.SequenceEqual(other.EncBlkNums)
                && DecBlkNums.SequenceEqual(other.DecBlkNums)
                && (TrainSize is null ? other.TrainSize is null : other.TrainSize is not null && TrainSize.SequenceEqual(other.TrainSize))));

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(ImgChannel);
        hash.Add(Width);
        hash.Add(MiddleBlkNum);
        hash.Add(EncBlkNums.Count);
        foreach (var n in EncBlkNums) hash.Add(n);
        foreach (var n in DecBlkNums) hash.Add(n);
        foreach (var n in TrainSize ?? []) hash.Add(n);
        return hash.ToHashCode();
    }

    private bool PrintMembers(System.Text.StringBuilder builder)
    {
        builder.Append($"ImgChannel = {ImgChannel}, Width = {Width}, MiddleBlkNum = {MiddleBlkNum}, ");
        builder.Append($"EncBlkNums = [{string.Join(", ", EncBlkNums)}], DecBlkNums = [{string.Join(", ", DecBlkNums)}]");
        builder.Append(TrainSize is null ? ", TrainSize = null" : $", TrainSize = [{string.Join(", ", TrainSize)}]");
        return true;
    }
}
