namespace Mcir.Plugins.SuperResolution;

/// <summary>
/// Options of <see cref="SwinIR"/>: BasicSR's <c>SwinIR(img_size, patch_size, in_chans, embed_dim, depths, num_heads,
/// window_size, mlp_ratio, qkv_bias, qk_scale, drop_rate, attn_drop_rate, drop_path_rate, ape, patch_norm, upscale,
/// img_range, upsampler, resi_connection)</c> arguments. <c>new SwinIROptions()</c> has BasicSR's class defaults
/// (embed_dim 96, depths/num_heads (6, 6, 6, 6), window 7, mlp_ratio 4, ×2, no upsampler); <see cref="Light"/> is the
/// paper's lightweight ×4 SwinIR and <see cref="Classical"/> the classical ×4 one.
/// </summary>
/// <remarks>
/// <para>Not carried over: <c>norm_layer</c> (always <c>nn.LayerNorm</c>) and <c>use_checkpoint</c> (BasicSR's
/// gradient checkpointing, a memory trade-off with no effect on the result). <c>img_size</c> is square here.</para>
/// <para>Immutable; derive variants with <c>with</c>. Equality compares <see cref="Depths"/> and
/// <see cref="NumHeads"/> element by element.</para>
/// </remarks>
public sealed record SwinIROptions
{
    /// <summary>Upsampler of BasicSR's classical SR SwinIR: conv + LeakyReLU, <c>Upsample</c> (conv + PixelShuffle pairs), conv.</summary>
    public const string PixelShuffle = "pixelshuffle";

    /// <summary>Upsampler of the lightweight SR SwinIR: one conv to <c>scale²·in_chans</c> channels and one PixelShuffle.</summary>
    public const string PixelShuffleDirect = "pixelshuffledirect";

    /// <summary>Upsampler of the real-world SR SwinIR (×4 only): two nearest ×2 interpolations, each followed by a conv.</summary>
    public const string NearestConv = "nearest+conv";

    /// <summary>No upsampler (<c>''</c>): denoising / JPEG artefact reduction, <c>x + conv_last(features)</c>, same size.</summary>
    public const string NoUpsampler = "";

    private static readonly IReadOnlyList<int> DefaultDepths = Array.AsReadOnly(new[] { 6, 6, 6, 6 });
    private IReadOnlyList<int> _depths = DefaultDepths;
    private IReadOnlyList<int> _numHeads = DefaultDepths;

    /// <summary>
    /// Lightweight SwinIR (×4): embed_dim 60, depths/num_heads (6, 6, 6, 6), window 8, mlp_ratio 2, img_size 64,
    /// img_range 1, upsampler <c>pixelshuffledirect</c>, resi_connection <c>1conv</c>; 929,628 parameters.
    /// </summary>
    public static SwinIROptions Light { get; } = new()
    {
        Upscale = 4, ImgSize = 64, WindowSize = 8, ImgRange = 1.0, EmbedDim = 60, MlpRatio = 2,
        Upsampler = PixelShuffleDirect, ResiConnection = "1conv",
    };

    /// <summary>
    /// Classical SwinIR (×4): embed_dim 180, depths/num_heads (6 × 6), window 8, mlp_ratio 2, img_size 48, img_range 1,
    /// upsampler <c>pixelshuffle</c>, resi_connection <c>1conv</c>.
    /// </summary>
    public static SwinIROptions Classical { get; } = new()
    {
        Upscale = 4, ImgSize = 48, WindowSize = 8, ImgRange = 1.0, EmbedDim = 180, MlpRatio = 2,
        Depths = [6, 6, 6, 6, 6, 6], NumHeads = [6, 6, 6, 6, 6, 6], Upsampler = PixelShuffle, ResiConnection = "1conv",
    };

    /// <summary>
    /// Training image size (<c>img_size</c>, square). It fixes the blocks' input resolution
    /// (<c>img_size / patch_size</c>): when that is not larger than <see cref="WindowSize"/> the window shrinks to it and
    /// no block is shifted, as in BasicSR. Inputs of other sizes are accepted. Default 64.
    /// </summary>
    public int ImgSize { get; init; } = 64;

    /// <summary>Patch size (<c>patch_size</c>); BasicSR uses it only to compute the input resolution. Default 1.</summary>
    public int PatchSize { get; init; } = 1;

    /// <summary>Image channels in and out (<c>in_chans</c>). With 3 channels the DIV2K mean is subtracted. Default 3.</summary>
    public int InChans { get; init; } = 3;

    /// <summary>Feature channels of the transformer (<c>embed_dim</c>). Default 96.</summary>
    public int EmbedDim { get; init; } = 96;

    /// <summary>Swin blocks per residual group (<c>depths</c>); one residual group (RSTB) per entry. Default (6, 6, 6, 6).</summary>
    public IReadOnlyList<int> Depths
    {
        get => _depths;
        init => _depths = Array.AsReadOnly((value ?? throw new ArgumentNullException(nameof(Depths))).ToArray());
    }

    /// <summary>Attention heads of each residual group (<c>num_heads</c>), one per <see cref="Depths"/> entry. Default (6, 6, 6, 6).</summary>
    public IReadOnlyList<int> NumHeads
    {
        get => _numHeads;
        init => _numHeads = Array.AsReadOnly((value ?? throw new ArgumentNullException(nameof(NumHeads))).ToArray());
    }

    /// <summary>Attention window side (<c>window_size</c>); inputs must be multiples of it. Default 7.</summary>
    public int WindowSize { get; init; } = 7;

    /// <summary>MLP hidden width over <see cref="EmbedDim"/> (<c>mlp_ratio</c>; hidden = <c>int(embed_dim·mlp_ratio)</c>). Default 4.</summary>
    public double MlpRatio { get; init; } = 4.0;

    /// <summary>Bias on the query/key/value projection (<c>qkv_bias</c>). Default true.</summary>
    public bool QkvBias { get; init; } = true;

    /// <summary>Attention scale (<c>qk_scale</c>); null = <c>head_dim^-0.5</c> (BasicSR's <c>qk_scale or head_dim**-0.5</c>). Default null.</summary>
    public double? QkScale { get; init; }

    /// <summary>Dropout after the position embedding, in the MLP and after the attention projection (<c>drop_rate</c>). Default 0.</summary>
    public double DropRate { get; init; }

    /// <summary>Dropout on the attention weights (<c>attn_drop_rate</c>). Default 0.</summary>
    public double AttnDropRate { get; init; }

    /// <summary>
    /// Stochastic depth (<c>drop_path_rate</c>): block i of all n blocks drops its residual branches with probability
    /// <c>rate·i/(n−1)</c> in training; inactive in eval. Default 0.1.
    /// </summary>
    public double DropPathRate { get; init; } = 0.1;

    /// <summary>Learned absolute position embedding (<c>ape</c>, parameter <c>absolute_pos_embed</c>); inputs must then be <see cref="ImgSize"/>. Default false.</summary>
    public bool Ape { get; init; }

    /// <summary>LayerNorm after the patch embedding (<c>patch_norm</c>, parameters <c>patch_embed.norm.*</c>). Default true.</summary>
    public bool PatchNorm { get; init; } = true;

    /// <summary>Upsampling factor (<c>upscale</c>). Default 2. Must be 4 with <c>nearest+conv</c>; ignored
    /// without upsampler (the output then has the input's size), as in BasicSR.</summary>
    public int Upscale { get; init; } = 2;

    /// <summary>Image range the network works in (<c>img_range</c>): <c>(x − mean)·img_range</c>. Default 1.</summary>
    public double ImgRange { get; init; } = 1.0;

    /// <summary>
    /// Reconstruction module (<c>upsampler</c>): <see cref="PixelShuffle"/>, <see cref="PixelShuffleDirect"/>,
    /// <see cref="NearestConv"/> or <see cref="NoUpsampler"/> (BasicSR's default <c>''</c>).
    /// </summary>
    public string Upsampler { get; init; } = NoUpsampler;

    /// <summary>Convolution closing each residual group and the body (<c>resi_connection</c>): <c>1conv</c> or <c>3conv</c>. Default <c>1conv</c>.</summary>
    public string ResiConnection { get; init; } = "1conv";

    /// <summary>The blocks' input resolution (<c>img_size // patch_size</c>), as BasicSR's <c>patches_resolution</c>.</summary>
    public int PatchesResolution => ImgSize / PatchSize;

    /// <summary>
    /// Window side the blocks really use: <see cref="WindowSize"/>, or <see cref="PatchesResolution"/> when that is not
    /// larger (then no block is shifted), as in BasicSR's <c>SwinTransformerBlock</c>.
    /// </summary>
    public int EffectiveWindowSize => PatchesResolution <= WindowSize ? PatchesResolution : WindowSize;

    /// <summary>Shift of the odd blocks: <c>window_size // 2</c>, or 0 when the window was shrunk to the input resolution.</summary>
    public int EffectiveShiftSize => PatchesResolution <= WindowSize ? 0 : WindowSize / 2;

    /// <summary>
    /// Checks the options and throws an <see cref="ArgumentException"/> naming the offending option (and the allowed
    /// values) when they cannot build a SwinIR.
    /// </summary>
    public void Validate()
    {
        static ArgumentException Bad(string message) => new($"SwinIR: {message}");
        if (InChans < 1) throw Bad($"{nameof(InChans)} must be >= 1, got {InChans}.");
        if (EmbedDim < 1) throw Bad($"{nameof(EmbedDim)} must be >= 1, got {EmbedDim}.");
        if (PatchSize < 1) throw Bad($"{nameof(PatchSize)} must be >= 1, got {PatchSize}.");
        if (ImgSize < PatchSize) throw Bad($"{nameof(ImgSize)} must be >= {nameof(PatchSize)} ({PatchSize}), got {ImgSize}.");
        if (WindowSize < 1) throw Bad($"{nameof(WindowSize)} must be >= 1, got {WindowSize}.");
        if (Depths.Count == 0) throw Bad($"{nameof(Depths)} must have at least one residual group.");
        if (Depths.Count != NumHeads.Count)
            throw Bad($"{nameof(Depths)} ({Depths.Count} groups) and {nameof(NumHeads)} ({NumHeads.Count} entries) must have the same length.");
        if (Depths.Any(static d => d < 0)) throw Bad($"{nameof(Depths)} must be >= 0, got ({string.Join(", ", Depths)}).");
        foreach (int h in NumHeads)
            if (h < 1 || EmbedDim % h != 0)
                throw Bad($"every {nameof(NumHeads)} entry must be >= 1 and divide {nameof(EmbedDim)} {EmbedDim}, got {h}.");
        if (!double.IsFinite(MlpRatio) || (int)(EmbedDim * MlpRatio) < 1)
            throw Bad($"{nameof(MlpRatio)} must give a hidden width >= 1, got {MlpRatio}.");
        if (QkScale is { } s && (!double.IsFinite(s) || s == 0))
            throw Bad($"{nameof(QkScale)} must be null or a finite non-zero number, got {s}.");
        foreach (var (name, p) in new[] { (nameof(DropRate), DropRate), (nameof(AttnDropRate), AttnDropRate), (nameof(DropPathRate), DropPathRate) })
            if (!(p >= 0 && p < 1)) throw Bad($"{name} must be in [0, 1), got {p}.");
        if (!double.IsFinite(ImgRange) || ImgRange <= 0) throw Bad($"{nameof(ImgRange)} must be a positive number, got {ImgRange}.");
        if (ResiConnection is not ("1conv" or "3conv"))
            throw Bad($"{nameof(ResiConnection)} '{ResiConnection}' is not supported; use '1conv' or '3conv'.");
        if (ResiConnection == "3conv" && EmbedDim < 4)
            throw Bad($"{nameof(ResiConnection)} '3conv' needs {nameof(EmbedDim)} >= 4 (it narrows to embed_dim // 4), got {EmbedDim}.");
        switch (Upsampler)
        {
            case PixelShuffle:
                if (!EdsrOptions.IsSupportedUpscale(Upscale))
                    throw Bad($"{nameof(Upscale)} {Upscale} is not supported by the '{PixelShuffle}' upsampler; supported scales are 3 and powers of two >= 2.");
                break;
            case PixelShuffleDirect:
                if (Upscale < 1) throw Bad($"{nameof(Upscale)} must be >= 1 with the '{PixelShuffleDirect}' upsampler, got {Upscale}.");
                break;
            case NearestConv:
                if (Upscale != 4) throw Bad($"the '{NearestConv}' upsampler supports only {nameof(Upscale)} 4 (as BasicSR), got {Upscale}.");
                break;
            case NoUpsampler:
                break; // Upscale is ignored, as in BasicSR (whose defaults are upscale 2 with upsampler '').
            default:
                throw Bad($"{nameof(Upsampler)} '{Upsampler}' is not supported; use '{PixelShuffle}' (classical SR), '{PixelShuffleDirect}' (lightweight SR), "
                          + $"'{NearestConv}' (real-world SR, x4) or '' (no upsampling: denoising / JPEG).");
        }
    }

    /// <inheritdoc />
    public bool Equals(SwinIROptions? other) =>
        other is not null
        && (ReferenceEquals(this, other)
            || (ImgSize == other.ImgSize && PatchSize == other.PatchSize && InChans == other.InChans && EmbedDim == other.EmbedDim
                && Depths.SequenceEqual(other.Depths) && NumHeads.SequenceEqual(other.NumHeads) && WindowSize == other.WindowSize
                && MlpRatio.Equals(other.MlpRatio) && QkvBias == other.QkvBias && Nullable.Equals(QkScale, other.QkScale)
                && DropRate.Equals(other.DropRate) && AttnDropRate.Equals(other.AttnDropRate) && DropPathRate.Equals(other.DropPathRate)
                && Ape == other.Ape && PatchNorm == other.PatchNorm && Upscale == other.Upscale && ImgRange.Equals(other.ImgRange)
                && string.Equals(Upsampler, other.Upsampler, StringComparison.Ordinal)
                && string.Equals(ResiConnection, other.ResiConnection, StringComparison.Ordinal)));

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(ImgSize);
        hash.Add(PatchSize);
        hash.Add(InChans);
        hash.Add(EmbedDim);
        foreach (int d in Depths) hash.Add(d);
        foreach (int h in NumHeads) hash.Add(h);
        hash.Add(WindowSize);
        hash.Add(MlpRatio);
        hash.Add(QkvBias);
        hash.Add(QkScale);
        hash.Add(DropRate);
        hash.Add(AttnDropRate);
        hash.Add(DropPathRate);
        hash.Add(Ape);
        hash.Add(PatchNorm);
        hash.Add(Upscale);
        hash.Add(ImgRange);
        hash.Add(Upsampler, StringComparer.Ordinal);
        hash.Add(ResiConnection, StringComparer.Ordinal);
        return hash.ToHashCode();
    }

    private bool PrintMembers(System.Text.StringBuilder builder)
    {
        builder.Append($"ImgSize = {ImgSize}, PatchSize = {PatchSize}, InChans = {InChans}, EmbedDim = {EmbedDim}, ");
        builder.Append($"Depths = [{string.Join(", ", Depths)}], NumHeads = [{string.Join(", ", NumHeads)}], WindowSize = {WindowSize}, ");
        builder.Append($"MlpRatio = {MlpRatio}, QkvBias = {QkvBias}, QkScale = {QkScale?.ToString() ?? "null"}, DropRate = {DropRate}, ");
        builder.Append($"AttnDropRate = {AttnDropRate}, DropPathRate = {DropPathRate}, Ape = {Ape}, PatchNorm = {PatchNorm}, ");
        builder.Append($"Upscale = {Upscale}, ImgRange = {ImgRange}, Upsampler = '{Upsampler}', ResiConnection = '{ResiConnection}'");
        return true;
    }
}
