namespace Mcir.Plugins.Dehazing;

/// <summary>
/// Options of <see cref="FfaNet"/>: MCLIR's <c>FFANet(gps, blocks)</c> arguments plus the input normalisation MCLIR's
/// training model applies before the network. <c>new FfaNetOptions()</c> is the configuration of MCLIR's
/// <c>options/FFANet_RESIDE_IN_fromScratch.yml</c> (and the FFA-Net paper): 3 groups of 19 blocks, input normalised;
/// <see cref="Small"/> is the reduced configuration of the reference fixture (1 block per group).
/// </summary>
/// <remarks>
/// <para>The feature width is fixed at <see cref="Dim"/> = 64 (hard-coded in the original) and <see cref="Gps"/> must
/// be 3 (the original asserts it: its forward fuses exactly three groups).</para>
/// <para>Input normalisation: MCLIR's <c>ImageRestorationModel_FFANet_Neg_Multi.feed_data</c> normalises the degraded
/// image as <c>(lq − mean) / std</c> with mean (0.64, 0.6, 0.58) and std (0.14, 0.15, 0.152) before the network; the
/// target is not normalised, and the network's global residual adds the <em>normalised</em> input. Because this
/// framework feeds images in [0, 1] to every model, the normalisation is done inside <see cref="FfaNet"/>'s forward when
/// <see cref="NormalizeInput"/> is true (the default, so training and inference match MCLIR and weights trained by MCLIR
/// work on [0, 1] inputs). Set it to false to get the bare architecture (as the original <c>FFA</c> class and the
/// reference fixture, which feeds its input to the network directly).</para>
/// <para>Immutable; derive variants with <c>with</c>. Equality compares the mean/std lists element by element.</para>
/// </remarks>
public sealed record FfaNetOptions
{
    /// <summary>Feature channels of every convolution (<c>self.dim</c>); hard-coded to 64 in the original.</summary>
    public const int Dim = 64;

    /// <summary>The number of groups the original supports (<c>assert self.gps == 3</c>).</summary>
    public const int RequiredGps = 3;

    private static readonly IReadOnlyList<double> DefaultMean = Array.AsReadOnly(new[] { 0.64, 0.6, 0.58 });
    private static readonly IReadOnlyList<double> DefaultStd = Array.AsReadOnly(new[] { 0.14, 0.15, 0.152 });
    private readonly IReadOnlyList<double> _inputMean = DefaultMean;
    private readonly IReadOnlyList<double> _inputStd = DefaultStd;

    /// <summary>
    /// A small FFA-Net (the <c>ffa-net-small</c> preset, the reference fixture's <c>FFANet(gps=3, blocks=1)</c>):
    /// one block per group. Input normalisation stays on as in the default; the fixture parity tests turn it off.
    /// </summary>
    public static FfaNetOptions Small { get; } = new() { Blocks = 1 };

    /// <summary>Number of groups (<c>gps</c>). Must be 3, as in the original. Default 3.</summary>
    public int Gps { get; init; } = RequiredGps;

    /// <summary>Blocks per group (<c>blocks</c>). Default 19 (the paper's and MCLIR's configuration).</summary>
    public int Blocks { get; init; } = 19;

    /// <summary>
    /// Whether forward normalises its input as <c>(x − <see cref="InputMean"/>) / <see cref="InputStd"/></c> per channel
    /// before the network (MCLIR's training pipeline does this outside the network). Default true; the output is not
    /// de-normalised (MCLIR's target is not normalised).
    /// </summary>
    public bool NormalizeInput { get; init; } = true;

    /// <summary>Per-channel (RGB) mean of the input normalisation. Default MCLIR's (0.64, 0.6, 0.58).</summary>
    public IReadOnlyList<double> InputMean
    {
        get => _inputMean;
        init => _inputMean = Array.AsReadOnly((value ?? throw new ArgumentNullException(nameof(InputMean))).ToArray());
    }

    /// <summary>Per-channel (RGB) standard deviation of the input normalisation. Default MCLIR's (0.14, 0.15, 0.152).</summary>
    public IReadOnlyList<double> InputStd
    {
        get => _inputStd;
        init => _inputStd = Array.AsReadOnly((value ?? throw new ArgumentNullException(nameof(InputStd))).ToArray());
    }

    /// <summary>
    /// Checks the options and throws an <see cref="ArgumentException"/> naming the offending option when they cannot
    /// build an FFA-Net.
    /// </summary>
    public void Validate()
    {
        if (Gps != RequiredGps)
            throw new ArgumentException(
                $"FFA-Net: {nameof(Gps)} (gps) must be {RequiredGps}, got {Gps}: the original fuses exactly three groups "
                + "(g1, g2, g3; assert self.gps == 3).");
        if (Blocks < 1)
            throw new ArgumentException($"FFA-Net: {nameof(Blocks)} (blocks) must be >= 1, got {Blocks}.");
        if (InputMean.Count != 3)
            throw new ArgumentException($"FFA-Net: {nameof(InputMean)} (input_mean) needs 3 values (RGB), got {InputMean.Count}.");
        if (InputStd.Count != 3)
            throw new ArgumentException($"FFA-Net: {nameof(InputStd)} (input_std) needs 3 values (RGB), got {InputStd.Count}.");
        if (InputMean.Any(static m => !double.IsFinite(m)))
            throw new ArgumentException($"FFA-Net: {nameof(InputMean)} (input_mean) values must be finite, got [{string.Join(", ", InputMean)}].");
        if (InputStd.Any(static s => !(s > 0) || !double.IsFinite(s)))
            throw new ArgumentException($"FFA-Net: {nameof(InputStd)} (input_std) values must be finite and > 0, got [{string.Join(", ", InputStd)}].");
    }

    /// <inheritdoc />
    public bool Equals(FfaNetOptions? other) =>
        other is not null
        && (ReferenceEquals(this, other)
            || (Gps == other.Gps
                && Blocks == other.Blocks
                && NormalizeInput == other.NormalizeInput
                && InputMean.SequenceEqual(other.InputMean)
                && InputStd.SequenceEqual(other.InputStd)));

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(Gps);
        hash.Add(Blocks);
        hash.Add(NormalizeInput);
        foreach (var m in InputMean) hash.Add(m);
        foreach (var s in InputStd) hash.Add(s);
        return hash.ToHashCode();
    }

    private bool PrintMembers(System.Text.StringBuilder builder)
    {
        builder.Append($"Gps = {Gps}, Blocks = {Blocks}, NormalizeInput = {NormalizeInput}, ");
        builder.Append($"InputMean = [{string.Join(", ", InputMean)}], InputStd = [{string.Join(", ", InputStd)}]");
        return true;
    }
}
