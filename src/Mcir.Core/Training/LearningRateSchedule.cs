namespace Mcir.Core.Training;

/// <summary>
/// The learning rate as a pure function of the iteration, so the "scheduler position" of a checkpoint is just its
/// iteration. Convention (BasicSR's <c>train.py</c> calls <c>update_learning_rate</c> — i.e. <c>scheduler.step()</c>
/// — before <c>optimize_parameters</c>, so after i steps the scheduler's <c>last_epoch</c> is i when iteration i
/// runs): iteration i updates the weights with <see cref="At"/>(i). The trainer applies <see cref="At"/>(1) before
/// the first iteration and, as the "scheduler step" after iteration i's optimiser step, <see cref="At"/>(i + 1).
/// <list type="bullet">
/// <item><c>none</c>: <c>lr</c>.</item>
/// <item><c>multistep</c> (BasicSR MultiStepRestartLR, no restarts): <c>lr · gamma^#{m ∈ milestones : m ≤ i}</c>;
/// a milestone m therefore affects iteration m itself.</item>
/// <item><c>cosine</c> (BasicSR CosineAnnealingRestartLR): with cumulative period ends c_0 &lt; c_1 &lt; ..., the period k
/// is the first with i ≤ c_k, its start r = c_{k−1} (0 for k = 0), length T = periods[k], weight w = restart_weights[k]:
/// <c>eta_min + w · 0.5 · (lr − eta_min) · (1 + cos(π · (i − r) / T))</c>. Default periods = [total_iter], so the rate
/// goes from ≈ lr at iteration 1 to eta_min at iteration total_iter. Past the last period the last period's formula
/// keeps being used (BasicSR would fail there).</item>
/// </list>
/// </summary>
public sealed class LearningRateSchedule
{
    private readonly SchedulerSettings _options;
    private readonly double _baseLr;
    private readonly long[] _periods;
    private readonly long[] _cumulative;
    private readonly double[] _weights;

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
    }

    /// <summary>The rate used by the optimiser step of iteration <paramref name="iteration"/> (≥ 1).</summary>
    public double At(long iteration)
    {
        if (iteration < 1) throw new ArgumentOutOfRangeException(nameof(iteration), iteration, "iterations count from 1");
        switch (_options.Type)
        {
            case "multistep":
                int passed = _options.Milestones.Count(m => m <= iteration);
                return _baseLr * Math.Pow(_options.Gamma, passed);
            case "cosine":
                int k = 0;
                while (k < _cumulative.Length - 1 && iteration > _cumulative[k]) k++;
                long start = k == 0 ? 0 : _cumulative[k - 1];
                double t = (double)(iteration - start) / _periods[k];
                return _options.EtaMin + _weights[k] * 0.5 * (_baseLr - _options.EtaMin) * (1 + Math.Cos(Math.PI * t));
            default:
                return _baseLr;
        }
    }
}
