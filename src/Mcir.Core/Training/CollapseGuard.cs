using System.Globalization;

namespace Mcir.Core.Training;

/// <summary>Why a run was declared collapsed.</summary>
public enum CollapseCause
{
    /// <summary>Not collapsed.</summary>
    None,
    /// <summary>A loss part was NaN or ±infinity.</summary>
    NonFinite,
    /// <summary>The negative term outgrew the reconstruction loss for too long (the subtracted term is unbounded below).</summary>
    NegativeTermRunaway,
    /// <summary>The reconstruction loss jumped far above its running median.</summary>
    ReconstructionJump,
    /// <summary>The validation metric (PSNR) fell far below its best value: the outputs degraded.</summary>
    ValidationCliff,
}

/// <summary>The guard's judgement after one iteration.</summary>
/// <param name="Cause">None when healthy.</param>
/// <param name="Iteration">The iteration judged (the collapse iteration when collapsed).</param>
/// <param name="Message">Human-readable reason naming the cause and the iteration (empty when healthy).</param>
public sealed record CollapseVerdict(CollapseCause Cause, long Iteration, string Message)
{
    /// <summary>True when the run must stop (or roll back).</summary>
    public bool IsCollapsed => Cause != CollapseCause.None;

    /// <summary>A healthy verdict for <paramref name="iteration"/>.</summary>
    public static CollapseVerdict Ok(long iteration) => new(CollapseCause.None, iteration, "");

    /// <inheritdoc />
    public override string ToString() => IsCollapsed ? Message : $"ok (iteration {Iteration})";
}

/// <summary>
/// Watches the loss parts of every iteration and flags divergence: NaN/inf in any part; |negative term| above
/// RatioLimit × reconstruction for RatioPatience consecutive iterations; reconstruction above JumpFactor × its running
/// median (window JumpWindow) for JumpPatience consecutive iterations. A collapse verdict is sticky until <see cref="Reset"/>.
/// </summary>
public sealed class CollapseGuard
{
    private readonly Queue<double> _window = new();
    private int _ratioStreak, _jumpStreak;
    private double? _bestValidation;

    /// <summary>Creates a guard with <paramref name="options"/> (defaults when null).</summary>
    public CollapseGuard(CollapseGuardOptions? options = null)
    {
        Options = options ?? new CollapseGuardOptions();
        if (Options.RatioPatience < 1 || Options.JumpPatience < 1 || Options.JumpWindow < 1 || Options.JumpMinHistory < 1)
            throw new ArgumentException("collapse guard: patience, window and min history must be ≥ 1.");
        if (!(Options.RatioLimit > 0) || !(Options.JumpFactor > 1))
            throw new ArgumentException("collapse guard: ratio_limit must be > 0 and jump_factor > 1.");
    }

    /// <summary>The thresholds in use.</summary>
    public CollapseGuardOptions Options { get; }

    /// <summary>The first collapse verdict, or null while healthy.</summary>
    public CollapseVerdict? Collapse { get; private set; }

    /// <summary>Judges one iteration's parts (e.g. the merged <c>LossResult.Parts</c> of all terms).</summary>
    public CollapseVerdict Observe(long iteration, IReadOnlyDictionary<string, double> parts)
    {
        ArgumentNullException.ThrowIfNull(parts);
        if (Collapse is not null) return Collapse;

        foreach (var (name, v) in parts)
            if (!double.IsFinite(v))
                return Fail(CollapseCause.NonFinite, iteration,
                    $"loss part '{name}' is {F(v)} at iteration {iteration}: training diverged (non-finite loss)");

        bool hasRec = parts.TryGetValue(Options.ReconstructionPart, out double rec);
        if (!hasRec) return CollapseVerdict.Ok(iteration);

        if (parts.TryGetValue(Options.NegativePart, out double neg))
        {
            double limit = Options.RatioLimit * Math.Abs(rec);
            _ratioStreak = Math.Abs(neg) > limit ? _ratioStreak + 1 : 0;
            if (_ratioStreak >= Options.RatioPatience)
                return Fail(CollapseCause.NegativeTermRunaway, iteration,
                    $"negative term '{Options.NegativePart}' = {F(neg)} exceeded {F(Options.RatioLimit)} × '{Options.ReconstructionPart}' " +
                    $"(= {F(rec)}) for {_ratioStreak} consecutive iterations, at iteration {iteration}: the subtracted term is running away " +
                    "(model-contrastive collapse; lower lambda or use form: ratio)");
        }

        if (_window.Count >= Options.JumpMinHistory)
        {
            double median = Median(_window);
            _jumpStreak = rec > Options.JumpFactor * median ? _jumpStreak + 1 : 0;
            if (_jumpStreak >= Options.JumpPatience)
                return Fail(CollapseCause.ReconstructionJump, iteration,
                    $"reconstruction loss '{Options.ReconstructionPart}' = {F(rec)} is above {F(Options.JumpFactor)} × its running median " +
                    $"{F(median)} (last {_window.Count} iterations) for {_jumpStreak} consecutive iterations, at iteration {iteration}");
        }
        _window.Enqueue(rec);
        while (_window.Count > Options.JumpWindow) _window.Dequeue();
        return CollapseVerdict.Ok(iteration);
    }

    /// <summary>
    /// Judges a validation result: a non-finite value of <see cref="CollapseGuardOptions.ValidationMetric"/>, or a value
    /// more than <see cref="CollapseGuardOptions.ValidationDrop"/> below the best seen so far (a PSNR cliff), is a collapse.
    /// </summary>
    public CollapseVerdict ObserveValidation(long iteration, IReadOnlyDictionary<string, double> metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        if (Collapse is not null) return Collapse;
        if (Options.ValidationDrop is not { } drop || !metrics.TryGetValue(Options.ValidationMetric, out double value))
            return CollapseVerdict.Ok(iteration);
        if (!double.IsFinite(value) && !double.IsPositiveInfinity(value))
            return Fail(CollapseCause.NonFinite, iteration, $"validation {Options.ValidationMetric} is {F(value)} at iteration {iteration}");
        if (_bestValidation is { } best && best - value > drop)
            return Fail(CollapseCause.ValidationCliff, iteration,
                $"validation {Options.ValidationMetric} fell to {F(value)} at iteration {iteration}, {F(best - value)} below its best {F(best)} " +
                $"(limit {F(drop)}): the outputs degraded (model-contrastive collapse; lower lambda)");
        if (double.IsFinite(value) && (_bestValidation is null || value > _bestValidation)) _bestValidation = value;
        return CollapseVerdict.Ok(iteration);
    }

    /// <summary>The running history (window and streaks), so a resumed run judges exactly as an uninterrupted one.</summary>
    public CollapseGuardState CaptureState() => new([.. _window], _ratioStreak, _jumpStreak, _bestValidation);

    /// <summary>Restores a history captured by <see cref="CaptureState"/>; any collapse verdict is cleared.</summary>
    public void RestoreState(CollapseGuardState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        Reset();
        foreach (var v in state.Window.TakeLast(Options.JumpWindow)) _window.Enqueue(v);
        _ratioStreak = state.RatioStreak;
        _jumpStreak = state.JumpStreak;
        _bestValidation = state.BestValidation;
    }

    /// <summary>Forgets the history and any collapse (e.g. after a rollback).</summary>
    public void Reset()
    {
        _window.Clear();
        _ratioStreak = _jumpStreak = 0;
        _bestValidation = null;
        Collapse = null;
    }

    private CollapseVerdict Fail(CollapseCause cause, long iteration, string message)
    {
        Collapse = new CollapseVerdict(cause, iteration, "collapse: " + message);
        return Collapse;
    }

    private static double Median(IEnumerable<double> values)
    {
        var s = values.OrderBy(v => v).ToArray();
        int m = s.Length / 2;
        return s.Length % 2 == 1 ? s[m] : 0.5 * (s[m - 1] + s[m]);
    }

    private static string F(double v) => v.ToString("G6", CultureInfo.InvariantCulture);
}

/// <summary>The collapse guard's running history, as saved in checkpoints (<c>collapse_guard.json</c>).</summary>
/// <param name="Window">Recent reconstruction-loss values, oldest first.</param>
/// <param name="RatioStreak">Consecutive iterations with the negative term over its limit.</param>
/// <param name="JumpStreak">Consecutive iterations with the reconstruction loss over its jump limit.</param>
/// <param name="BestValidation">The best validation metric so far (null before the first validation).</param>
public sealed record CollapseGuardState(IReadOnlyList<double> Window, int RatioStreak, int JumpStreak, double? BestValidation = null);
