using System.Globalization;

namespace Mcir.Core.ModelContrast;

/// <summary>What the negative models of a <see cref="NegativeBank"/> are (paper Tab. 5 ablations).</summary>
public enum NegativeKind
{
    /// <summary><c>ema</c> (default): past versions of the target, pulled towards it every s_j iterations.</summary>
    Ema,
    /// <summary><c>fixed-random</c>: freshly, randomly initialised and never updated.</summary>
    FixedRandom,
    /// <summary><c>fixed-pretrained</c>: loaded from a checkpoint and never updated.</summary>
    FixedPretrained,
}

/// <summary>How an <see cref="NegativeKind.Ema"/> negative is created from the target.</summary>
public enum NegativeInit
{
    /// <summary>
    /// <c>blend</c> (default, the authors' code): a fresh random initialisation blended once with the target,
    /// θ' = β·θ_rand + (1−β)·θ with β = <see cref="NegativeBankOptions.NegStart"/>.
    /// </summary>
    Blend,
    /// <summary><c>copy</c> (the paper's text): θ' = θ.</summary>
    Copy,
}

/// <summary>Which update period belongs to which negative.</summary>
public enum NegativeScheduleOrder
{
    /// <summary><c>paper</c> (default): negative j is updated every <c>Steps[j]</c> iterations.</summary>
    Paper,
    /// <summary>
    /// <c>authors</c>: the released code's pairing, negative k is updated when
    /// <c>iteration % Steps[K-1-k] == 0</c> (the period list is walked in reverse while the negative and its
    /// decay keep the forward index).
    /// </summary>
    Authors,
}

/// <summary>
/// Options of a <see cref="NegativeBank"/>. The number of negatives K is <c>Steps.Count</c> for every kind (for
/// the fixed kinds the steps only fix K; they never trigger updates). Call <see cref="Validate"/> (the bank does)
/// to get clear errors for inconsistent settings.
/// </summary>
public sealed record NegativeBankOptions
{
    /// <summary>The paper's default periods (Tab. 7, "All"): 100, 500, 1000, 2000.</summary>
    public static readonly IReadOnlyList<long> PaperSteps = [100, 500, 1000, 2000];

    /// <summary>Kind of negatives; default <see cref="NegativeKind.Ema"/>.</summary>
    public NegativeKind Kind { get; init; } = NegativeKind.Ema;

    /// <summary>Initialisation of <see cref="NegativeKind.Ema"/> negatives; default <see cref="NegativeInit.Blend"/>.</summary>
    public NegativeInit Init { get; init; } = NegativeInit.Blend;

    /// <summary>β of the blended initialisation (the authors' <c>neg_start</c>); default 0.1, must lie in [0, 1].</summary>
    public double NegStart { get; init; } = 0.1;

    /// <summary>Update periods s_j in iterations (each &gt; 0); their count is K. Default 100, 500, 1000, 2000.</summary>
    public IReadOnlyList<long> Steps { get; init; } = PaperSteps;

    /// <summary>
    /// EMA decays α_j, each in [0, 1): one value (broadcast to every negative) or exactly K values.
    /// Default 0.1. With the <see cref="NegativeScheduleOrder.Authors"/> order, α_j still belongs to negative j.
    /// </summary>
    public IReadOnlyList<double> Decays { get; init; } = [0.1];

    /// <summary>Pairing of negatives and periods; default <see cref="NegativeScheduleOrder.Paper"/>.</summary>
    public NegativeScheduleOrder ScheduleOrder { get; init; } = NegativeScheduleOrder.Paper;

    /// <summary>
    /// Arithmetic of the negatives' forward passes (default float32). With bfloat16 the bank keeps float32 master
    /// weights (the EMA and checkpoints stay exact) and runs bfloat16 mirrors refreshed after every update.
    /// </summary>
    public Compute.NegativePrecision Precision { get; init; } = Compute.NegativePrecision.Float32;

    /// <summary>
    /// Checkpoints of <see cref="NegativeKind.FixedPretrained"/> negatives: one path (used for every negative) or
    /// exactly K paths. <c>.safetensors</c>, or a PyTorch zip <c>.pth</c>/<c>.pt</c>/<c>.bin</c> holding a bare
    /// state dict or one wrapped as <c>{"params": ...}</c>, <c>{"params_ema": ...}</c>, <c>{"state_dict": ...}</c>
    /// or <c>{"model": ...}</c>, with or without <c>module.</c> prefixes.
    /// </summary>
    public IReadOnlyList<string> PretrainedPaths { get; init; } = [];

    /// <summary>
    /// Wrapper key to read from a wrapped <c>.pth</c> checkpoint (for example <c>params_ema</c>). Null: the first
    /// of <c>params</c>, <c>params_ema</c>, <c>state_dict</c>, <c>model</c> that is present (BasicSR's default is
    /// <c>params</c>).
    /// </summary>
    public string? PretrainedParamKey { get; init; }

    /// <summary>Number of negatives K.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public int Count => Steps.Count;

    /// <summary>Decay α of negative <paramref name="j"/> (broadcast when a single value is given).</summary>
    public double DecayOf(int j)
    {
        CheckIndex(j);
        return Decays.Count == 1 ? Decays[0] : Decays[j];
    }

    /// <summary>Update period of negative <paramref name="j"/> under <see cref="ScheduleOrder"/>.</summary>
    public long PeriodOf(int j)
    {
        CheckIndex(j);
        return ScheduleOrder == NegativeScheduleOrder.Paper ? Steps[j] : Steps[Count - 1 - j];
    }

    /// <summary>Checkpoint path of negative <paramref name="j"/> (fixed-pretrained only).</summary>
    public string PretrainedPathOf(int j)
    {
        CheckIndex(j);
        if (PretrainedPaths.Count == 0) throw new InvalidOperationException("negative bank: no pretrained paths are set");
        return PretrainedPaths.Count == 1 ? PretrainedPaths[0] : PretrainedPaths[j];
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first inconsistent setting.</summary>
    public void Validate()
    {
        if (Steps is null || Steps.Count == 0)
            throw new ArgumentException("negative bank: Steps must list at least one update period (its length is the number of negatives K)", nameof(Steps));
        for (int j = 0; j < Steps.Count; j++)
            if (Steps[j] <= 0)
                throw new ArgumentException($"negative bank: Steps[{j}] = {Steps[j]}; update periods must be > 0 iterations", nameof(Steps));
        if (Decays is null || Decays.Count == 0)
            throw new ArgumentException("negative bank: Decays must hold one value (broadcast) or one per negative", nameof(Decays));
        if (Decays.Count != 1 && Decays.Count != Steps.Count)
            throw new ArgumentException($"negative bank: Decays has {Decays.Count} values but Steps has {Steps.Count}; give one decay (broadcast) or exactly {Steps.Count}", nameof(Decays));
        for (int j = 0; j < Decays.Count; j++)
            if (!(Decays[j] >= 0.0 && Decays[j] < 1.0))
                throw new ArgumentException($"negative bank: Decays[{j}] = {Decays[j].ToString(CultureInfo.InvariantCulture)}; the EMA decay α must lie in [0, 1)", nameof(Decays));
        if (!(NegStart >= 0.0 && NegStart <= 1.0))
            throw new ArgumentException($"negative bank: NegStart = {NegStart.ToString(CultureInfo.InvariantCulture)}; the blend factor β must lie in [0, 1]", nameof(NegStart));
        if (!Enum.IsDefined(Kind)) throw new ArgumentException($"negative bank: unknown Kind {(int)Kind}", nameof(Kind));
        if (!Enum.IsDefined(Init)) throw new ArgumentException($"negative bank: unknown Init {(int)Init}", nameof(Init));
        if (!Enum.IsDefined(ScheduleOrder)) throw new ArgumentException($"negative bank: unknown ScheduleOrder {(int)ScheduleOrder}", nameof(ScheduleOrder));
        if (Kind == NegativeKind.FixedPretrained)
        {
            if (PretrainedPaths.Count == 0)
                throw new ArgumentException("negative bank: Kind fixed-pretrained needs PretrainedPaths (one checkpoint for all negatives, or one per negative)", nameof(PretrainedPaths));
            if (PretrainedPaths.Count != 1 && PretrainedPaths.Count != Steps.Count)
                throw new ArgumentException($"negative bank: PretrainedPaths has {PretrainedPaths.Count} entries but there are {Steps.Count} negatives; give one path or exactly {Steps.Count}", nameof(PretrainedPaths));
            for (int j = 0; j < PretrainedPaths.Count; j++)
                if (string.IsNullOrWhiteSpace(PretrainedPaths[j]))
                    throw new ArgumentException($"negative bank: PretrainedPaths[{j}] is empty", nameof(PretrainedPaths));
        }
        else if (PretrainedPaths.Count != 0)
        {
            throw new ArgumentException($"negative bank: PretrainedPaths is only used by Kind fixed-pretrained (Kind is {FormatKind(Kind)})", nameof(PretrainedPaths));
        }
    }

    /// <summary>Parses <c>ema</c>, <c>fixed-random</c>, <c>fixed-pretrained</c> (case-insensitive).</summary>
    public static NegativeKind ParseKind(string text) => text.Trim().ToLowerInvariant() switch
    {
        "ema" => NegativeKind.Ema,
        "fixed-random" => NegativeKind.FixedRandom,
        "fixed-pretrained" => NegativeKind.FixedPretrained,
        _ => throw new ArgumentException($"negative bank: unknown kind '{text}' (expected ema, fixed-random or fixed-pretrained)", nameof(text)),
    };

    /// <summary>Parses <c>blend</c>, <c>copy</c> (case-insensitive).</summary>
    public static NegativeInit ParseInit(string text) => text.Trim().ToLowerInvariant() switch
    {
        "blend" => NegativeInit.Blend,
        "copy" => NegativeInit.Copy,
        _ => throw new ArgumentException($"negative bank: unknown init '{text}' (expected blend or copy)", nameof(text)),
    };

    /// <summary>Parses <c>paper</c>, <c>authors</c> (case-insensitive).</summary>
    public static NegativeScheduleOrder ParseScheduleOrder(string text) => text.Trim().ToLowerInvariant() switch
    {
        "paper" => NegativeScheduleOrder.Paper,
        "authors" => NegativeScheduleOrder.Authors,
        _ => throw new ArgumentException($"negative bank: unknown schedule order '{text}' (expected paper or authors)", nameof(text)),
    };

    /// <summary>The configuration spelling of a kind (<c>ema</c>, <c>fixed-random</c>, <c>fixed-pretrained</c>).</summary>
    public static string FormatKind(NegativeKind kind) => kind switch
    {
        NegativeKind.Ema => "ema",
        NegativeKind.FixedRandom => "fixed-random",
        NegativeKind.FixedPretrained => "fixed-pretrained",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>The configuration spelling of an init (<c>blend</c>, <c>copy</c>).</summary>
    public static string FormatInit(NegativeInit init) => init switch
    {
        NegativeInit.Blend => "blend",
        NegativeInit.Copy => "copy",
        _ => throw new ArgumentOutOfRangeException(nameof(init)),
    };

    /// <summary>The configuration spelling of a schedule order (<c>paper</c>, <c>authors</c>).</summary>
    public static string FormatScheduleOrder(NegativeScheduleOrder order) => order switch
    {
        NegativeScheduleOrder.Paper => "paper",
        NegativeScheduleOrder.Authors => "authors",
        _ => throw new ArgumentOutOfRangeException(nameof(order)),
    };

    private void CheckIndex(int j)
    {
        if (j < 0 || j >= Count) throw new ArgumentOutOfRangeException(nameof(j), $"negative index {j} outside 0..{Count - 1}");
    }
}
