namespace Mcir.Core.Training;

/// <summary>
/// The learning rate as a pure function of the iteration, so the "scheduler position" of a checkpoint is just its
/// iteration. Convention, as BasicSR's <c>train.py</c> and the authors' code (MCLIR, NAFNet — both BasicSR loops): before
/// iteration i runs, <c>model.update_learning_rate(current_iter)</c> calls <c>scheduler.step()</c> only when
/// <c>current_iter &gt; 1</c>, so iteration i updates the weights with the rate of schedule position p = i − 1
/// (the scheduler's <c>last_epoch</c>): iteration 1 uses position 0 (the initial rate), iteration 2 position 1, and so on. <see cref="At"/>(i) is that rate; the trainer applies <see cref="At"/>(1)
/// before the first iteration and, as the "scheduler step" after iteration i's optimiser step, <see cref="At"/>(i + 1).
/// <list type="bullet">
/// <item><c>none</c>: <c>lr</c>.</item>
/// <item><c>multistep</c> (BasicSR <c>MultiStepRestartLR</c>, no restarts): <c>lr · gamma^#{m ∈ milestones : m ≤ p}</c>;
/// a milestone m therefore first affects iteration m + 1 (milestones [2]: 1e-4, 1e-4, 5e-5, 5e-5).</item>
/// <item><c>cosine</c> (BasicSR <c>CosineAnnealingRestartLR</c>): with cumulative period ends c_0 &lt; c_1 &lt; ..., the
/// period k is the first with p ≤ c_k, its start r = c_{k−1} (0 for k = 0), length T = periods[k], weight
/// w = restart_weights[k]: <c>eta_min + w · 0.5 · (lr − eta_min) · (1 + cos(π · (p − r) / T))</c>. Default periods =
/// [total_iter], so the rate goes from lr at iteration 1 down towards eta_min (periods [4]: 1e-4, 8.5355e-5, 5e-5,
/// 1.4645e-5). Past the last period the last period's formula keeps being used (BasicSR would fail there).</item>
/// <item><c>TrueCosineAnnealingLR</c> (BasicSR's name for torch's <c>CosineAnnealingLR</c>, used by NAFNet's and
/// MCLIR's options, stepped once per iteration): <c>eta_min + (lr − eta_min) · (1 + cos(π · p / T_max)) / 2</c> with
/// <c>T_max</c> = <c>t_max</c> (default total_iter). This is torch's closed form, which its recursive form follows
/// (up to rounding, ~1e-16 relative) also past T_max: the rate reaches eta_min at p = T_max and then rises again
/// (period 2·T_max); it is not restarted.</item>
/// </list>
/// </summary>
public sealed class LearningRateSchedule
{
    private readonly SchedulerSettings _options;
    private readonly double _baseLr;
    private readonly long[] _periods;
    private readonly long[] _cumulative;
    private readonly double[] _weights;
    private readonly long _tMax;

    /// <summary>Builds the schedule of <paramref name="options"/> (validated).</summary>
    public LearningRateSchedule(TrainingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options.Scheduler;
        _baseLr = options.Optimizer.Lr;
        _periods = _options.Periods.Count == 0 ? [options.TotalIter] : _options.Periods.ToArray();
        _cumulative = new long[_periods.Length];
        long sum = 0;
        for (int k = 0; k < _periods.Length; k++) _cumulative[k] = sum += _periods[k];
        _weights = _options.RestartWeights.Count == 0 ? Enumerable.Repeat(1.0, _periods.Length).ToArray() : _options.RestartWeights.ToArray();
        _tMax = _options.TMax ?? options.TotalIter;
    }

    /// <summary>The rate used by the optimiser step of iteration <paramref name="iteration"/> (≥ 1): schedule position iteration − 1.</summary>
    public double At(long iteration)
    {
        if (iteration < 1) throw new ArgumentOutOfRangeException(nameof(iteration), iteration, "iterations count from 1");
        return AtPosition(iteration - 1);
    }

    /// <summary>
    /// The rate at scheduler position <paramref name="position"/> (≥ 0; the number of <c>scheduler.step()</c> calls
    /// so far, torch's <c>last_epoch</c>).
    /// </summary>
    public double AtPosition(long position)
    {
        if (position < 0) throw new ArgumentOutOfRangeException(nameof(position), position, "positions count from 0");
        switch (_options.Type)
        {
            case SchedulerSettings.MultiStep:
                int passed = _options.Milestones.Count(m => m <= position);
                return _baseLr * Math.Pow(_options.Gamma, passed);
            case SchedulerSettings.Cosine:
                int k = 0;
                while (k < _cumulative.Length - 1 && position > _cumulative[k]) k++;
                long start = k == 0 ? 0 : _cumulative[k - 1];
                double t = (double)(position - start) / _periods[k];
                return _options.EtaMin + _weights[k] * 0.5 * (_baseLr - _options.EtaMin) * (1 + Math.Cos(Math.PI * t));
            case SchedulerSettings.TrueCosine:
                return _options.EtaMin + (_baseLr - _options.EtaMin) * (1 + Math.Cos(Math.PI * position / _tMax)) / 2;
            default:
                return _baseLr;
        }
    }
}
