using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Mcir.Core.Training;

/// <summary>
/// Options of one training run (<see cref="Trainer"/>). Property names map to snake_case JSON keys
/// (<c>total_iter</c>, <c>print_freq</c>, <c>optimizer.weight_decay</c>, ...) through <see cref="JsonOptions"/>;
/// the resolved options are stored in every checkpoint. Defaults follow BasicSR's example configurations.
/// </summary>
public sealed record TrainingOptions
{
    /// <summary>Iterations to train (iterations count from 1; the run ends after iteration <c>total_iter</c>).</summary>
    public long TotalIter { get; init; } = 1000;

    /// <summary>Every how many iterations a progress line and a metrics record are written (iteration 1 is always logged).</summary>
    public long PrintFreq { get; init; } = 100;

    /// <summary>Every how many iterations the validation callback runs (0 = never).</summary>
    public long ValFreq { get; init; } = 0;

    /// <summary>Every how many iterations a checkpoint is written (0 = only at the end and on interruption).</summary>
    public long CheckpointFreq { get; init; } = 0;

    /// <summary>How many complete checkpoints to keep (older ones are pruned after a new one is complete); 0 = keep all.</summary>
    public int KeepCheckpoints { get; init; } = 0;

    /// <summary>Seed of the torch generator at the start of a fresh run (a resumed run restores the saved generator state).</summary>
    public long Seed { get; init; } = 0;

    /// <summary>Name of the run (used by hosts for runs/&lt;name&gt;; informative here).</summary>
    public string Name { get; init; } = "run";

    /// <summary>The optimiser.</summary>
    public OptimizerSettings Optimizer { get; init; } = new();

    /// <summary>The learning-rate schedule.</summary>
    public SchedulerSettings Scheduler { get; init; } = new();

    /// <summary>Maximum global L2 norm of the gradients (clip_grad_norm_); null = no clipping.</summary>
    public double? GradClipNorm { get; init; }

    /// <summary>Decay of the target EMA (BasicSR <c>ema_decay</c>, e.g. 0.999); null = no target EMA.</summary>
    public double? EmaDecay { get; init; }

    /// <summary>Validation settings.</summary>
    public ValidationSettings Validation { get; init; } = new();

    /// <summary>
    /// JSON settings for (de)serialising options: the shared settings (<see cref="Config.ConfigBinder.JsonOptions"/>:
    /// snake_case names, indented, computed members never written or read), read leniently.
    /// </summary>
    // Why not ConfigBinder.JsonOptions as it is: these options are stored in every checkpoint (options.json) and read
    // back on resume, also from checkpoints of older versions whose keys may since have been dropped; such a key is
    // skipped here instead of refused as in a configuration file, and key case is not significant.
    public static JsonSerializerOptions JsonOptions { get; } = new(Config.ConfigBinder.JsonOptions)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip,
        PropertyNameCaseInsensitive = true,
    };

    /// <summary>The options as snake_case JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Reads options written by <see cref="ToJson"/> (missing keys keep their defaults).</summary>
    public static TrainingOptions FromJson(string json) =>
        JsonSerializer.Deserialize<TrainingOptions>(json, JsonOptions) ?? throw new McirException("training options: the JSON is null");

    /// <summary>Checks every value; throws <see cref="McirException"/> naming the key and the accepted values.</summary>
    public void Validate()
    {
        if (TotalIter < 1) throw Bad("total_iter", TotalIter, "≥ 1");
        if (PrintFreq < 1) throw Bad("print_freq", PrintFreq, "≥ 1");
        if (ValFreq < 0) throw Bad("val_freq", ValFreq, "≥ 0 (0 = no validation)");
        if (CheckpointFreq < 0) throw Bad("checkpoint_freq", CheckpointFreq, "≥ 0 (0 = only at the end)");
        if (KeepCheckpoints < 0) throw Bad("keep_checkpoints", KeepCheckpoints, "≥ 0 (0 = keep all)");
        if (GradClipNorm is { } c && !(c > 0 && double.IsFinite(c))) throw Bad("grad_clip_norm", c, "> 0, or null for no clipping");
        if (EmaDecay is { } d && !(d >= 0 && d < 1)) throw Bad("ema_decay", d, "in [0, 1), or null for no target EMA");
        ArgumentNullException.ThrowIfNull(Optimizer);
        ArgumentNullException.ThrowIfNull(Scheduler);
        ArgumentNullException.ThrowIfNull(Validation);
        Optimizer.Validate();
        Scheduler.Validate(TotalIter);
    }

    internal static McirException Bad(string key, object? value, string expected) =>
        new($"training options: '{key}' = {Format(value)} is invalid; expected {expected}");

    private static string Format(object? v) => v switch
    {
        null => "null",
        string s => $"'{s}'",
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => v.ToString() ?? "",
    };
}

/// <summary>Optimiser settings (<c>optimizer.*</c>).</summary>
public sealed record OptimizerSettings
{
    /// <summary>The accepted <see cref="Type"/> values.</summary>
    public static readonly IReadOnlyList<string> Types = ["adam", "adamw"];

    /// <summary><c>adam</c> (default, BasicSR's choice; weight decay as L2 on the gradient) or <c>adamw</c> (decoupled weight decay).</summary>
    public string Type { get; init; } = "adam";

    /// <summary>Initial learning rate.</summary>
    public double Lr { get; init; } = 2e-4;

    /// <summary>β1, β2 (BasicSR: [0.9, 0.99]).</summary>
    public IReadOnlyList<double> Betas { get; init; } = [0.9, 0.99];

    /// <summary>Weight decay (0 = none).</summary>
    public double WeightDecay { get; init; } = 0;

    /// <summary>ε of the denominator.</summary>
    public double Eps { get; init; } = 1e-8;

    /// <summary>Throws <see cref="McirException"/> for an invalid value.</summary>
    public void Validate()
    {
        if (!Types.Contains(Type)) throw TrainingOptions.Bad("optimizer.type", Type, "one of " + string.Join(", ", Types));
        if (!(Lr > 0 && double.IsFinite(Lr))) throw TrainingOptions.Bad("optimizer.lr", Lr, "> 0");
        if (Betas is null || Betas.Count != 2 || Betas.Any(b => !(b >= 0 && b < 1)))
            throw new McirException($"training options: 'optimizer.betas' must be two numbers in [0, 1), got [{(Betas is null ? "" : string.Join(", ", Betas.Select(b => b.ToString("R", CultureInfo.InvariantCulture))))}]");
        if (!(WeightDecay >= 0 && double.IsFinite(WeightDecay))) throw TrainingOptions.Bad("optimizer.weight_decay", WeightDecay, "≥ 0");
        if (!(Eps >= 0 && double.IsFinite(Eps))) throw TrainingOptions.Bad("optimizer.eps", Eps, "≥ 0");
    }
}

/// <summary>
/// Learning-rate schedule settings (<c>scheduler.*</c>); see <see cref="LearningRateSchedule"/> for the exact rates.
/// <list type="bullet">
/// <item><c>none</c>: constant <c>optimizer.lr</c>.</item>
/// <item><c>multistep</c> (BasicSR MultiStepRestartLR without restarts): <c>lr · gamma^(number of milestones ≤ iter)</c>.</item>
/// <item><c>cosine</c> (BasicSR CosineAnnealingRestartLR): periods (default: one period of <c>total_iter</c>, i.e. a plain
/// cosine to <c>eta_min</c> over the run), restart weights (default all 1), <c>eta_min</c>.</item>
/// <item><c>TrueCosineAnnealingLR</c> (BasicSR's name for torch's CosineAnnealingLR, as in NAFNet's and MCLIR's options):
/// <c>t_max</c> (default <c>total_iter</c>), <c>eta_min</c>; not restarted, it rises again past <c>t_max</c>.</item>
/// </list>
/// Iteration i uses schedule position i − 1, as BasicSR (which steps the scheduler only when <c>current_iter &gt; 1</c>).
/// </summary>
public sealed record SchedulerSettings
{
    /// <summary>The accepted <see cref="Type"/> values.</summary>
    public static readonly IReadOnlyList<string> Types = ["none", MultiStep, Cosine, TrueCosine];

    /// <summary>BasicSR MultiStepRestartLR without restarts.</summary>
    public const string MultiStep = "multistep";

    /// <summary>BasicSR CosineAnnealingRestartLR.</summary>
    public const string Cosine = "cosine";

    /// <summary>torch's CosineAnnealingLR under BasicSR's name.</summary>
    public const string TrueCosine = "TrueCosineAnnealingLR";

    /// <summary><c>none</c>, <c>multistep</c>, <c>cosine</c> or <c>TrueCosineAnnealingLR</c>.</summary>
    public string Type { get; init; } = "none";

    /// <summary>Multistep: iterations at which the rate is multiplied by <see cref="Gamma"/> (strictly increasing, ≥ 1).</summary>
    public IReadOnlyList<long> Milestones { get; init; } = [];

    /// <summary>Multistep: the factor per milestone.</summary>
    public double Gamma { get; init; } = 0.5;

    /// <summary>Cosine: the lengths of the cosine periods (restarts after each); empty = one period of <c>total_iter</c>.</summary>
    public IReadOnlyList<long> Periods { get; init; } = [];

    /// <summary>Cosine: the peak-rate multiplier of each period; empty = all 1.</summary>
    public IReadOnlyList<double> RestartWeights { get; init; } = [];

    /// <summary>Cosine and TrueCosineAnnealingLR: the minimum rate.</summary>
    public double EtaMin { get; init; } = 1e-7;

    /// <summary>TrueCosineAnnealingLR: torch's <c>T_max</c>, the positions from lr down to eta_min; null = <c>total_iter</c>.</summary>
    public long? TMax { get; init; }

    /// <summary>Throws <see cref="McirException"/> for an invalid value.</summary>
    public void Validate(long totalIter)
    {
        if (!Types.Contains(Type)) throw TrainingOptions.Bad("scheduler.type", Type, "one of " + string.Join(", ", Types));
        if (Type == "multistep")
        {
            if (Milestones is null) throw TrainingOptions.Bad("scheduler.milestones", null, "a list of iterations");
            for (int i = 0; i < Milestones.Count; i++)
                if (Milestones[i] < 1 || (i > 0 && Milestones[i] <= Milestones[i - 1]))
                    throw new McirException($"training options: 'scheduler.milestones' must be strictly increasing iterations ≥ 1, got [{string.Join(", ", Milestones)}]");
            if (!(Gamma > 0 && double.IsFinite(Gamma))) throw TrainingOptions.Bad("scheduler.gamma", Gamma, "> 0");
        }
        if (Type == "cosine")
        {
            if (Periods is null || Periods.Any(p => p < 1))
                throw new McirException($"training options: 'scheduler.periods' must be positive iteration counts, got [{string.Join(", ", Periods ?? [])}]");
            var periods = Periods.Count == 0 ? [totalIter] : Periods;
            if (RestartWeights is null || (RestartWeights.Count != 0 && RestartWeights.Count != periods.Count))
                throw new McirException($"training options: 'scheduler.restart_weights' must be empty or have one weight per period ({periods.Count}), got {RestartWeights?.Count ?? 0}");
            if (RestartWeights.Any(w => !(w >= 0 && double.IsFinite(w)))) throw new McirException("training options: 'scheduler.restart_weights' must be finite and ≥ 0");
            if (!(EtaMin >= 0 && double.IsFinite(EtaMin))) throw TrainingOptions.Bad("scheduler.eta_min", EtaMin, "≥ 0");
        }
        if (Type == TrueCosine)
        {
            if (TMax is < 1) throw TrainingOptions.Bad("scheduler.t_max", TMax, "≥ 1, or null for total_iter");
            if (!(EtaMin >= 0 && double.IsFinite(EtaMin))) throw TrainingOptions.Bad("scheduler.eta_min", EtaMin, "≥ 0");
        }
    }
}

/// <summary>Validation settings (<c>validation.*</c>).</summary>
public sealed record ValidationSettings
{
    /// <summary>Validate the target EMA instead of the target when an EMA is kept (BasicSR tests <c>net_g_ema</c>).</summary>
    public bool UseEma { get; init; } = true;
}
