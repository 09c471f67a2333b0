using System.Collections.ObjectModel;

namespace Mcir.Plugins.Deraining;

/// <summary>
/// Options of <see cref="Idt"/>: the arguments of IDT's <c>IDT(img_size, in_chans, embed_dim, depths, num_heads,
/// win_size, mlp_ratio, qkv_bias, qk_scale, drop_path_rate)</c> (jiexiaou/IDT <c>model.py</c> @ d72510c). <c>new
/// IdtOptions()</c> is the network of IDT's train_derain.py / test scripts (embed_dim 32, depths (3, 3, 2, 2, 1, 1, 2, 2, 3),
/// 16,416,463 parameters); <see cref="Small"/> is the reduced network of the tests (embed_dim 4, 599,907 parameters).
/// </summary>
/// <remarks>
/// <para>The nine list entries are, in order, the encoder levels 0–3 (full, ½, ¼, ⅛ resolution), the bottleneck (1/16) and
/// the decoder levels 0–3 (⅛, ¼, ½, full). The number of blocks of each level is fixed by IDT's code (3, 3, 2, 2, 1, 1, 2, 2,
/// 3 window blocks, plus one spatial-transformer block everywhere but in the bottleneck); <see cref="Depths"/> only sets the
/// stochastic-depth rates, as in the original.</para>
/// <para>Immutable; derive variants with <c>with</c>. Equality compares the lists element by element.</para>
/// </remarks>
public sealed record IdtOptions
{
    /// <summary>Entries of <see cref="Depths"/> and <see cref="NumHeads"/>: four encoder levels, the bottleneck, four decoder levels.</summary>
    public const int Levels = 9;

    /// <summary>
    /// Side of the spatial transformer's pixel windows (IDT's <c>SpatialTransformerLayer(win_size=8)</c>, which
    /// <c>BasicIDTLayer</c> never overrides): its attention runs over the grid of 8×8 windows with the 64 pixels of each as features.
    /// </summary>
    public const int SpatialWindow = 8;

    /// <summary>Channel multiplier of each level relative to <see cref="EmbedDim"/> (the decoder levels see the concatenated skip).</summary>
    public static IReadOnlyList<int> LevelWidth { get; } = new ReadOnlyCollection<int>([1, 2, 4, 8, 16, 16, 8, 4, 2]);

    /// <summary>Resolution divisor of each level relative to <see cref="ImgSize"/>.</summary>
    public static IReadOnlyList<int> LevelDivisor { get; } = new ReadOnlyCollection<int>([1, 2, 4, 8, 16, 8, 4, 2, 1]);

    /// <summary>The reduced network of the tests (<c>idt-small</c>): embed_dim 4, otherwise the defaults.</summary>
    public static IdtOptions Small { get; } = new() { EmbedDim = 4 };

    private static IReadOnlyList<int> Frozen(IEnumerable<int>? value, string name) =>
        new ReadOnlyCollection<int>((value ?? throw new ArgumentNullException(name)).ToArray());

    private IReadOnlyList<int> _depths = Frozen([3, 3, 2, 2, 1, 1, 2, 2, 3], nameof(Depths));
    private IReadOnlyList<int> _numHeads = Frozen([1, 2, 4, 8, 16, 16, 8, 4, 2], nameof(NumHeads));

    /// <summary>
    /// The one input side the network accepts (<c>img_size</c>, square); larger images are evaluated in overlapping windows of
    /// this size (<see cref="Mcir.Abstractions.Models.IWindowedInference"/>). A multiple of 64. Default 128 (IDT's
    /// <c>get_arch</c> never passes it, so every released model uses 128).
    /// </summary>
    public int ImgSize { get; init; } = 128;

    /// <summary>Image channels in and out (<c>in_chans</c>). Default 3.</summary>
    public int InChans { get; init; } = 3;

    /// <summary>Channels of the first level (<c>embed_dim</c>). Default 32.</summary>
    public int EmbedDim { get; init; } = 32;

    /// <summary>Stochastic-depth layout (<c>depths</c>, nine entries ≥ 1); see the remarks. Default (3, 3, 2, 2, 1, 1, 2, 2, 3).</summary>
    public IReadOnlyList<int> Depths { get => _depths; init => _depths = Frozen(value, nameof(Depths)); }

    /// <summary>Attention heads per level (<c>num_heads</c>, nine entries). Default (1, 2, 4, 8, 16, 16, 8, 4, 2).</summary>
    public IReadOnlyList<int> NumHeads { get => _numHeads; init => _numHeads = Frozen(value, nameof(NumHeads)); }

    /// <summary>Side of the window blocks' attention windows (<c>win_size</c>). Default 8.</summary>
    public int WinSize { get; init; } = 8;

    /// <summary>Hidden width of the LeFF feed-forward over its input width (<c>mlp_ratio</c>). Default 4.</summary>
    public double MlpRatio { get; init; } = 4.0;

    /// <summary>Biases on the q/kv projections (<c>qkv_bias</c>). Default true.</summary>
    public bool QkvBias { get; init; } = true;

    /// <summary>Attention scale (<c>qk_scale</c>); null = head_dim^−½. Default null.</summary>
    public double? QkScale { get; init; }

    /// <summary>Largest stochastic-depth rate (<c>drop_path_rate</c>), active in training only. Default 0.1.</summary>
    public double DropPathRate { get; init; } = 0.1;

    /// <summary>Channels of level <paramref name="level"/> (0–8).</summary>
    public int Width(int level) => EmbedDim * LevelWidth[level];

    /// <summary>Side of the token map of level <paramref name="level"/> (0–8).</summary>
    public int Resolution(int level) => ImgSize / LevelDivisor[level];

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        static ArgumentException Bad(string message) => new($"IDT: {message}");
        if (Depths.Count != Levels) throw Bad($"{nameof(Depths)} needs {Levels} entries (encoder 0-3, bottleneck, decoder 0-3), got {Depths.Count}.");
        if (NumHeads.Count != Levels) throw Bad($"{nameof(NumHeads)} needs {Levels} entries (encoder 0-3, bottleneck, decoder 0-3), got {NumHeads.Count}.");
        if (InChans < 1) throw Bad($"{nameof(InChans)} must be >= 1, got {InChans}.");
        if (EmbedDim < 1) throw Bad($"{nameof(EmbedDim)} must be >= 1, got {EmbedDim}.");
        if (WinSize < 1) throw Bad($"{nameof(WinSize)} must be >= 1, got {WinSize}.");
        if (ImgSize < 64 || ImgSize % 64 != 0)
            throw Bad($"{nameof(ImgSize)} must be a multiple of 64 (the 1/8-resolution levels are split into {SpatialWindow}x{SpatialWindow} pixel windows), got {ImgSize}.");
        if (!double.IsFinite(MlpRatio) || (int)(EmbedDim * MlpRatio) < 1)
            throw Bad($"{nameof(MlpRatio)} must give a hidden width >= 1, got {MlpRatio}.");
        if (QkScale is { } s && (!double.IsFinite(s) || s == 0)) throw Bad($"{nameof(QkScale)} must be a finite non-zero number or null, got {s}.");
        if (!(DropPathRate >= 0 && DropPathRate < 1)) throw Bad($"{nameof(DropPathRate)} must be in [0, 1), got {DropPathRate}.");
        if (Depths.Any(static d => d < 1)) throw Bad($"{nameof(Depths)} entries must be >= 1, got ({string.Join(", ", Depths)}).");
        int encoder = Depths.Take(4).Sum();
        if (Depths[5] + Depths[6] + Depths[7] >= encoder)
            throw Bad($"{nameof(Depths)}: the decoder's stochastic-depth rates are taken from the encoder's {encoder} in reverse, so depths[5] + depths[6] + depths[7] must be below {encoder}, got ({string.Join(", ", Depths)}).");
        for (int level = 0; level < Levels; level++)
        {
            int heads = NumHeads[level], dim = Width(level), res = Resolution(level);
            if (heads < 1 || dim % heads != 0)
                throw Bad($"{nameof(NumHeads)} entry {level} must be >= 1 and divide the level's {dim} channels, got {heads}.");
            if (level != 4 && (SpatialWindow * SpatialWindow) % heads != 0)
                throw Bad($"{nameof(NumHeads)} entry {level} must divide the spatial transformer's {SpatialWindow * SpatialWindow} features, got {heads}.");
            if (res > WinSize && res % WinSize != 0)
                throw Bad($"{nameof(WinSize)} {WinSize} must divide the {res}x{res} token map of level {level} (img_size {ImgSize}).");
        }
    }

    /// <inheritdoc />
    public bool Equals(IdtOptions? other) =>
        other is not null
        && (ReferenceEquals(this, other)
            || (ImgSize == other.ImgSize && InChans == other.InChans && EmbedDim == other.EmbedDim && WinSize == other.WinSize
                && MlpRatio.Equals(other.MlpRatio) && QkvBias == other.QkvBias && Nullable.Equals(QkScale, other.QkScale)
                && DropPathRate.Equals(other.DropPathRate) && Depths.SequenceEqual(other.Depths) && NumHeads.SequenceEqual(other.NumHeads)));

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(ImgSize);
        hash.Add(InChans);
        hash.Add(EmbedDim);
        hash.Add(WinSize);
        hash.Add(MlpRatio);
        hash.Add(QkvBias);
        hash.Add(QkScale);
        hash.Add(DropPathRate);
        foreach (var v in Depths) hash.Add(v);
        foreach (var v in NumHeads) hash.Add(v);
        return hash.ToHashCode();
    }

    private bool PrintMembers(System.Text.StringBuilder builder)
    {
        builder.Append($"ImgSize = {ImgSize}, InChans = {InChans}, EmbedDim = {EmbedDim}, Depths = [{string.Join(", ", Depths)}], ");
        builder.Append($"NumHeads = [{string.Join(", ", NumHeads)}], WinSize = {WinSize}, MlpRatio = {MlpRatio}, QkvBias = {QkvBias}, ");
        builder.Append($"QkScale = {QkScale?.ToString() ?? "null"}, DropPathRate = {DropPathRate}");
        return true;
    }
}
