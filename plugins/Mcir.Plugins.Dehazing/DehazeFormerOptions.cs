using System.Collections.ObjectModel;

namespace Mcir.Plugins.Dehazing;

/// <summary>
/// The value range <see cref="DehazeFormer"/>'s network works in (option <c>input_range</c>; configuration values
/// <c>"minus-one-one"</c> and <c>"zero-one"</c>).
/// </summary>
public enum DehazeFormerInputRange
{
    /// <summary>
    /// DehazeFormer's own convention (the default): its data loader scales images to [−1, 1] and its <c>test.py</c> maps
    /// the output back with <c>clamp(−1, 1) · 0.5 + 0.5</c>. The module maps the framework's [0, 1] input with
    /// <c>2x − 1</c> before the network and the network's output with <c>y · 0.5 + 0.5</c> after it, so training,
    /// validation, <c>test</c> and <c>restore</c> see [0, 1] images while the network sees what it was trained on.
    /// </summary>
    MinusOneOne,

    /// <summary>The bare network: its input is the [0, 1] image as given and its output is returned unchanged.</summary>
    ZeroOne,
}

/// <summary>
/// Options of <see cref="DehazeFormer"/>: the arguments of DehazeFormer's <c>DehazeFormer(in_chans, out_chans,
/// window_size, embed_dims, mlp_ratios, depths, num_heads, attn_ratio, conv_type, norm_layer)</c>
/// (IDKiro/DehazeFormer <c>models/dehazeformer.py</c> @ 5af7c34) plus <see cref="InputRange"/>. <c>new
/// DehazeFormerOptions()</c> has the class defaults, which are <c>dehazeformer_b()</c>; <see cref="T"/>, <see cref="S"/>,
/// <see cref="B"/>, <see cref="M"/> and <see cref="L"/> are the official constructors.
/// </summary>
/// <remarks>
/// <para>Each list has one entry per stage: encoder (full, ½, ¼ resolution) then decoder (½, full).
/// <c>in_chans</c>/<c>out_chans</c> are not options: the original's forward splits the 4 output channels into one
/// K map and a 3-channel bias (<c>torch.split(feat, (1, 3))</c>), so only 3 → 4 works.</para>
/// <para>Immutable; derive variants with <c>with</c>. Equality compares the lists element by element.</para>
/// </remarks>
public sealed record DehazeFormerOptions
{
    /// <summary>The attention/convolution branch type of <c>dehazeformer_t/s/b</c>: a 5×5 depthwise conv on V.</summary>
    public const string DWConv = "DWConv";

    /// <summary>The branch type of <c>dehazeformer_m/l</c>: two 3×3 convs with a ReLU between them.</summary>
    public const string Conv = "Conv";

    /// <summary>The only normalisation layer DehazeFormer's blocks work with (they unpack RLN's three outputs).</summary>
    public const string Rln = "RLN";

    /// <summary>Number of stages (entries of every list option).</summary>
    public const int Stages = 5;

    private static IReadOnlyList<TItem> Frozen<TItem>(IEnumerable<TItem>? value, string name) =>
        new ReadOnlyCollection<TItem>((value ?? throw new ArgumentNullException(name)).ToArray());

    private IReadOnlyList<int> _embedDims = Frozen(new[] { 24, 48, 96, 48, 24 }, nameof(EmbedDims));
    private IReadOnlyList<double> _mlpRatios = Frozen(new[] { 2.0, 4.0, 4.0, 2.0, 2.0 }, nameof(MlpRatios));
    private IReadOnlyList<int> _depths = Frozen(new[] { 16, 16, 16, 8, 8 }, nameof(Depths));
    private IReadOnlyList<int> _numHeads = Frozen(new[] { 2, 4, 6, 1, 1 }, nameof(NumHeads));
    private IReadOnlyList<double> _attnRatio = Frozen(new[] { 1 / 4.0, 1 / 2.0, 3 / 4.0, 0, 0 }, nameof(AttnRatio));
    private IReadOnlyList<string> _convType = Frozen(Enumerable.Repeat(DWConv, Stages), nameof(ConvType));
    private IReadOnlyList<string> _normLayer = Frozen(Enumerable.Repeat(Rln, Stages), nameof(NormLayer));

    /// <summary><c>dehazeformer_t()</c>: depths (4, 4, 4, 2, 2), attn_ratio (0, ½, 1, 0, 0), DWConv; 687,404 parameters.</summary>
    public static DehazeFormerOptions T { get; } = new() { Depths = [4, 4, 4, 2, 2], AttnRatio = [0, 1 / 2.0, 1, 0, 0] };

    /// <summary><c>dehazeformer_s()</c>: depths (8, 8, 8, 4, 4), attn_ratio (¼, ½, ¾, 0, 0), DWConv.</summary>
    public static DehazeFormerOptions S { get; } = new() { Depths = [8, 8, 8, 4, 4] };

    /// <summary><c>dehazeformer_b()</c> = the class defaults: depths (16, 16, 16, 8, 8), attn_ratio (¼, ½, ¾, 0, 0), DWConv.</summary>
    public static DehazeFormerOptions B { get; } = new();

    /// <summary><c>dehazeformer_m()</c>: depths (12, 12, 12, 6, 6), attn_ratio (¼, ½, ¾, 0, 0), Conv.</summary>
    public static DehazeFormerOptions M { get; } = new() { Depths = [12, 12, 12, 6, 6], ConvType = Enumerable.Repeat(Conv, Stages).ToArray() };

    /// <summary><c>dehazeformer_l()</c>: embed_dims (48, 96, 192, 96, 48), depths (16, 16, 16, 12, 12), attn_ratio (¼, ½, ¾, 0, 0), Conv.</summary>
    public static DehazeFormerOptions L { get; } = new()
    {
        EmbedDims = [48, 96, 192, 96, 48], Depths = [16, 16, 16, 12, 12], ConvType = Enumerable.Repeat(Conv, Stages).ToArray(),
    };

    /// <summary>Attention window side (<c>window_size</c>); odd blocks shift by <c>window_size // 2</c>. Default 8.</summary>
    public int WindowSize { get; init; } = 8;

    /// <summary>Channels of each stage (<c>embed_dims</c>); entries 1 and 3, and 0 and 4, must be equal (skip fusions). Default (24, 48, 96, 48, 24).</summary>
    public IReadOnlyList<int> EmbedDims { get => _embedDims; init => _embedDims = Frozen(value, nameof(EmbedDims)); }

    /// <summary>MLP hidden width over the stage's channels (<c>mlp_ratios</c>; hidden = <c>int(dim · ratio)</c>). Default (2, 4, 4, 2, 2).</summary>
    public IReadOnlyList<double> MlpRatios { get => _mlpRatios; init => _mlpRatios = Frozen(value, nameof(MlpRatios)); }

    /// <summary>Transformer blocks per stage (<c>depths</c>). Default (16, 16, 16, 8, 8).</summary>
    public IReadOnlyList<int> Depths { get => _depths; init => _depths = Frozen(value, nameof(Depths)); }

    /// <summary>Attention heads per stage (<c>num_heads</c>); each must divide the stage's channels where attention is used. Default (2, 4, 6, 1, 1).</summary>
    public IReadOnlyList<int> NumHeads { get => _numHeads; init => _numHeads = Frozen(value, nameof(NumHeads)); }

    /// <summary>
    /// Fraction of each stage's blocks with window attention (<c>attn_ratio</c>, in [0, 1]); they are the last ones
    /// (<c>attn_loc='last'</c>: block i uses attention when <c>i ≥ depth − ratio·depth</c>). Default (¼, ½, ¾, 0, 0).
    /// </summary>
    public IReadOnlyList<double> AttnRatio { get => _attnRatio; init => _attnRatio = Frozen(value, nameof(AttnRatio)); }

    /// <summary>Convolution branch of each stage (<c>conv_type</c>): <c>"DWConv"</c> or <c>"Conv"</c>. Default five <c>"DWConv"</c>.</summary>
    public IReadOnlyList<string> ConvType { get => _convType; init => _convType = Frozen(value, nameof(ConvType)); }

    /// <summary>Normalisation of each stage (<c>norm_layer</c>); only <c>"RLN"</c> (rescaled LayerNorm) exists. Default five <c>"RLN"</c>.</summary>
    public IReadOnlyList<string> NormLayer { get => _normLayer; init => _normLayer = Frozen(value, nameof(NormLayer)); }

    /// <summary>
    /// Value range of the network (<c>input_range</c>): <see cref="DehazeFormerInputRange.MinusOneOne"/> (default, DehazeFormer's
    /// own pipeline: the module maps [0, 1] ↔ [−1, 1] around the network) or <see cref="DehazeFormerInputRange.ZeroOne"/>
    /// (the bare network on [0, 1] images). Adds nothing to the state dict.
    /// </summary>
    public DehazeFormerInputRange InputRange { get; init; } = DehazeFormerInputRange.MinusOneOne;

    /// <summary>Whether block <paramref name="block"/> of stage <paramref name="stage"/> has window attention (<c>attn_loc='last'</c>, as the original computes it in float).</summary>
    public bool UsesAttention(int stage, int block)
    {
        double attnDepth = AttnRatio[stage] * Depths[stage];
        return block >= Depths[stage] - attnDepth;
    }

    /// <summary>
    /// Checks the options and throws an <see cref="ArgumentException"/> naming the offending option (and the allowed
    /// values) when they cannot build a DehazeFormer.
    /// </summary>
    public void Validate()
    {
        static ArgumentException Bad(string message) => new($"DehazeFormer: {message}");
        foreach (var (name, count) in new[]
                 {
                     (nameof(EmbedDims), EmbedDims.Count), (nameof(MlpRatios), MlpRatios.Count), (nameof(Depths), Depths.Count),
                     (nameof(NumHeads), NumHeads.Count), (nameof(AttnRatio), AttnRatio.Count), (nameof(ConvType), ConvType.Count),
                     (nameof(NormLayer), NormLayer.Count),
                 })
            if (count != Stages) throw Bad($"{name} needs {Stages} entries (one per stage), got {count}.");
        if (WindowSize < 1) throw Bad($"{nameof(WindowSize)} must be >= 1, got {WindowSize}.");
        if (EmbedDims.Any(static d => d < 1)) throw Bad($"{nameof(EmbedDims)} must be >= 1, got ({string.Join(", ", EmbedDims)}).");
        if (EmbedDims[1] != EmbedDims[3] || EmbedDims[0] != EmbedDims[4])
            throw Bad($"{nameof(EmbedDims)} entries 1 and 3, and 0 and 4, must be equal (the skip fusions add them), got ({string.Join(", ", EmbedDims)}).");
        if (Depths.Any(static d => d < 0)) throw Bad($"{nameof(Depths)} must be >= 0, got ({string.Join(", ", Depths)}).");
        for (int i = 0; i < Stages; i++)
        {
            if (!(AttnRatio[i] >= 0 && AttnRatio[i] <= 1)) throw Bad($"{nameof(AttnRatio)} entries must be in [0, 1], got {AttnRatio[i]} (stage {i}).");
            if (!double.IsFinite(MlpRatios[i]) || (int)(EmbedDims[i] * MlpRatios[i]) < 1)
                throw Bad($"{nameof(MlpRatios)} entry {i} must give a hidden width >= 1, got {MlpRatios[i]}.");
            if (ConvType[i] is not (DWConv or Conv)) throw Bad($"{nameof(ConvType)} '{ConvType[i]}' (stage {i}) is not supported; use '{DWConv}' or '{Conv}'.");
            if (NormLayer[i] != Rln) throw Bad($"{nameof(NormLayer)} '{NormLayer[i]}' (stage {i}) is not supported; DehazeFormer's blocks need '{Rln}'.");
            bool attention = Enumerable.Range(0, Depths[i]).Any(j => UsesAttention(i, j));
            if (attention && (NumHeads[i] < 1 || EmbedDims[i] % NumHeads[i] != 0))
                throw Bad($"{nameof(NumHeads)} entry {i} must be >= 1 and divide the stage's {EmbedDims[i]} channels, got {NumHeads[i]}.");
        }
    }

    /// <inheritdoc />
    public bool Equals(DehazeFormerOptions? other) =>
        other is not null
        && (ReferenceEquals(this, other)
            || (WindowSize == other.WindowSize && InputRange == other.InputRange
                && EmbedDims.SequenceEqual(other.EmbedDims) && MlpRatios.SequenceEqual(other.MlpRatios)
                && Depths.SequenceEqual(other.Depths) && NumHeads.SequenceEqual(other.NumHeads)
                && AttnRatio.SequenceEqual(other.AttnRatio) && ConvType.SequenceEqual(other.ConvType, StringComparer.Ordinal)
                && NormLayer.SequenceEqual(other.NormLayer, StringComparer.Ordinal)));

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(WindowSize);
        hash.Add(InputRange);
        foreach (var v in EmbedDims) hash.Add(v);
        foreach (var v in MlpRatios) hash.Add(v);
        foreach (var v in Depths) hash.Add(v);
        foreach (var v in NumHeads) hash.Add(v);
        foreach (var v in AttnRatio) hash.Add(v);
        foreach (var v in ConvType) hash.Add(v, StringComparer.Ordinal);
        foreach (var v in NormLayer) hash.Add(v, StringComparer.Ordinal);
        return hash.ToHashCode();
    }

    private bool PrintMembers(System.Text.StringBuilder builder)
    {
        builder.Append($"WindowSize = {WindowSize}, EmbedDims = [{string.Join(", ", EmbedDims)}], MlpRatios = [{string.Join(", ", MlpRatios)}], ");
        builder.Append($"Depths = [{string.Join(", ", Depths)}], NumHeads = [{string.Join(", ", NumHeads)}], AttnRatio = [{string.Join(", ", AttnRatio)}], ");
        builder.Append($"ConvType = [{string.Join(", ", ConvType)}], NormLayer = [{string.Join(", ", NormLayer)}], InputRange = {InputRange}");
        return true;
    }
}
