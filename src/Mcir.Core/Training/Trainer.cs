using System.Diagnostics;
using System.Globalization;
using Mcir.Abstractions.Losses;
using Mcir.Core.IO;
using Mcir.Core.ModelContrast;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mcir.Core.Training;

/// <summary>
/// The iteration-based training loop (BasicSR's <c>train.py</c> + <c>SRModel.optimize_parameters</c>), one loop for
/// every task and architecture; variation comes from the composed parts (network, loss terms, negative bank, batch
/// source, options, validation callback).
/// <para>One iteration i (from 1): batch → o = f(x) → negatives (only if a term needs them) → Σ loss terms → collapse
/// guard (a collapsed iteration is not applied) → backward → optional gradient clipping → optimiser step with lr(i)
/// → target EMA → negative bank <c>OnIterationEnd(i)</c> (negative j updated when i % s_j == 0) → scheduler step
/// (lr(i + 1), see <see cref="LearningRateSchedule"/>) → logging / validation / checkpoint → cancellation check. This
/// is the authors' order (zero_grad, forward, negatives' forwards, loss, backward, step, EMA, negative updates). Everything of an iteration runs in its own
/// <c>torch.NewDisposeScope()</c>.</para>
/// <para>A checkpoint (<see cref="CheckpointStore"/> folder) holds the whole training state — target, target EMA,
/// negative bank, optimiser (with the scheduler position), batch position, RNG, collapse guard, <c>trainer.json</c>
/// and the options; <see cref="TrainingState"/> lists the files and writes and reads them. <see cref="LoadCheckpoint"/>
/// restores all of it, so a resumed run reproduces the uninterrupted run's losses. <c>--resume</c> is resolved by
/// <see cref="CheckpointStore.ResolveResume"/>; the optimiser comes from <see cref="Optimizers"/>.</para>
/// <para>The run folder gets <c>metrics.jsonl</c> (<see cref="JsonLinesMetricsLog"/>), <c>training_options.json</c> and
/// <c>checkpoints/</c>. The caller owns the network, loss terms, negative bank and batch source; the trainer owns its
/// optimiser, EMA and log file (<see cref="Dispose"/>).</para>
/// </summary>
public sealed class Trainer : IDisposable
{
    private readonly nn.Module<Tensor, Tensor> _net;
    private readonly IReadOnlyList<ILossTerm> _terms;
    private readonly NegativeBank? _bank;
    private readonly IBatchSource _batches;
    private readonly Func<nn.Module<Tensor, Tensor>, long, IReadOnlyDictionary<string, double>>? _validate;
    private readonly ITrainingLog? _userLog;
    private readonly TextWriter? _progress;
    private readonly CollapseGuard _guard;
    private readonly OptimizerHelper _optimizer;
    private readonly List<Parameter> _parameters;
    private readonly LearningRateSchedule _schedule;
    private readonly TargetEma? _ema;
    private readonly bool _needsNegatives;
    private readonly Device _device;
    private readonly Distributed.ICommunicator _comm;
    private readonly TrainingState _state;
    private readonly List<string> _pendingMessages = []; // log lines for the next Run (e.g. options that differ on resume)
    private JsonLinesMetricsLog? _metrics;
    private ITrainingLog? _log;
    private string? _resumedFrom;
    private bool _started;
    private bool _disposed;

    /// <summary>Composes a trainer; nothing runs until <see cref="Run"/>.</summary>
    /// <param name="network">The target network f(θ) (train mode during iterations).</param>
    /// <param name="lossTerms">The terms of the objective, summed (e.g. L1 and SPN).</param>
    /// <param name="batches">The batch source.</param>
    /// <param name="options">The run options (validated here).</param>
    /// <param name="runDirectory">The run folder (runs/&lt;name&gt;): metrics log, options, checkpoints.</param>
    /// <param name="negativeBank">The negative models; required when a term <see cref="ILossTerm.NeedsNegatives"/>.</param>
    /// <param name="validate">Validation callback (network in eval mode under no_grad, iteration) → metrics such as psnr/ssim.</param>
    /// <param name="log">An extra event sink (besides the metrics file and the progress text).</param>
    /// <param name="progress">Where progress lines go (null: nowhere).</param>
    /// <param name="collapseGuard">The guard fed with every iteration's loss parts (default: <see cref="CollapseGuardOptions"/> defaults).</param>
    /// <param name="communicator">The ranks of a data-parallel job (default: one process). Every rank composes the same
    /// trainer on its slice of each global batch; rank 0 alone writes the run folder (pass validation, logs and the
    /// progress writer on rank 0 only).</param>
    public Trainer(
        nn.Module<Tensor, Tensor> network,
        IReadOnlyList<ILossTerm> lossTerms,
        IBatchSource batches,
        TrainingOptions options,
        string runDirectory,
        NegativeBank? negativeBank = null,
        Func<nn.Module<Tensor, Tensor>, long, IReadOnlyDictionary<string, double>>? validate = null,
        ITrainingLog? log = null,
        TextWriter? progress = null,
        CollapseGuard? collapseGuard = null,
        Distributed.ICommunicator? communicator = null)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(lossTerms);
        ArgumentNullException.ThrowIfNull(batches);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(runDirectory);
        options.Validate();
        CheckLossTerms(lossTerms, negativeBank);
        _needsNegatives = lossTerms.Any(t => t.NeedsNegatives);

        _net = network;
        _terms = lossTerms;
        _bank = negativeBank;
        _batches = batches;
        Options = options;
        RunDirectory = Path.GetFullPath(runDirectory);
        _validate = validate;
        _userLog = log;
        _progress = progress;
        _guard = collapseGuard ?? new CollapseGuard();
        _schedule = new LearningRateSchedule(options);

        _device = Compute.TorchDevice.Of(network);
        _comm = communicator ?? Distributed.SingleProcess.Instance;
        _parameters = network.parameters().Where(p => p.requires_grad).ToList();
        if (_parameters.Count == 0) throw new McirException("trainer: the network has no trainable parameters");
        _optimizer = Optimizers.Create(_parameters, options.Optimizer);
        if (options.EmaDecay is { } decay) _ema = new TargetEma(network, decay);
        _state = new TrainingState(network, _ema, negativeBank, _optimizer, batches, _guard, options, lossTerms);
    }

    /// <summary>The composition's checks (the options check themselves, <see cref="TrainingOptions.Validate"/>).</summary>
    private static void CheckLossTerms(IReadOnlyList<ILossTerm> lossTerms, NegativeBank? negativeBank)
    {
        if (lossTerms.Count == 0) throw new McirException("trainer: no loss terms");
        var dup = lossTerms.GroupBy(t => t.Name).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new McirException($"trainer: loss term '{dup.Key}' is configured twice");
        if (negativeBank is null && lossTerms.Any(t => t.NeedsNegatives))
            throw new McirException($"trainer: loss term(s) {string.Join(", ", lossTerms.Where(t => t.NeedsNegatives).Select(t => $"'{t.Name}'"))} need negatives, but no negative bank is configured");
    }

    /// <summary>The options of the run.</summary>
    public TrainingOptions Options { get; }

    /// <summary>The device of the target (its first parameter); every tensor of an iteration lives on it.</summary>
    public Device Device => _device;

    /// <summary>The run folder.</summary>
    public string RunDirectory { get; }

    /// <summary>The metrics log file (<c>metrics.jsonl</c>).</summary>
    public string MetricsPath => Path.Combine(RunDirectory, "metrics.jsonl");

    /// <summary>The last completed iteration (0 before the first; the checkpoint's after <see cref="LoadCheckpoint"/>).</summary>
    public long Iteration { get; private set; }

    /// <summary>The learning rate the next iteration will use.</summary>
    public double CurrentLearningRate => _optimizer.ParamGroups.First().LearningRate;

    /// <summary>The optimiser (TorchSharp Adam or AdamW).</summary>
    public OptimizerHelper Optimizer => _optimizer;

    /// <summary>The target EMA, when <see cref="TrainingOptions.EmaDecay"/> is set.</summary>
    public TargetEma? Ema => _ema;

    /// <summary>The collapse guard in use.</summary>
    public CollapseGuard CollapseGuard => _guard;

    /// <summary>The most recent validation metrics.</summary>
    public IReadOnlyDictionary<string, double>? LastValidation { get; private set; }

    /// <summary>The loss parts of the last completed iteration.</summary>
    public IReadOnlyDictionary<string, double>? LastParts { get; private set; }

    /// <summary>The newest checkpoint this trainer wrote or loaded.</summary>
    public string? LastCheckpoint { get; private set; }

    /// <summary>Tests: called after each file of a checkpoint is written (throw to simulate a crash mid-write).</summary>
    internal Action<string>? CheckpointFileWritten { get; set; }

    /// <summary>
    /// Restores the full training state from a complete checkpoint folder (see the class remarks). Metrics-log records
    /// after the checkpoint's iteration are dropped, so the log continues as one run.
    /// </summary>
    public void LoadCheckpoint(string checkpointDirectory)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        string dir = Path.GetFullPath(checkpointDirectory);
        var saved = _state.Load(dir);

        Iteration = saved.Iteration;
        SetLearningRate(_schedule.At(Iteration + 1));
        LastCheckpoint = dir;
        _resumedFrom = dir;
        _metrics?.Dispose();
        _metrics = null;
        _log = null;
        if (_comm.IsRoot) JsonLinesMetricsLog.TruncateAfter(MetricsPath, Iteration);
        if (_state.OptionsDiffer(dir))
            _pendingMessages.Add("the training options differ from the checkpoint's (beyond total_iter/print/val/checkpoint frequencies): the resumed run is not the same run");
    }

    /// <summary>
    /// Data-parallel start: rank 0's whole training state (the checkpoint files, from memory) goes to every rank, which
    /// restores it as from a checkpoint, so all ranks start identical, fresh or resumed. Returns rank 0's
    /// "checkpointed at" iteration so that all ranks decide alike whether a final checkpoint is due.
    /// </summary>
    private long SyncFromRoot(long checkpointedAt)
    {
        if (_comm.Size == 1) return checkpointedAt;
        byte[]? bundle = _comm.IsRoot ? _state.Pack(Iteration, CurrentLearningRate) : null;
        bundle = _comm.Broadcast(bundle);
        var flag = new[] { _comm.IsRoot ? checkpointedAt : double.NegativeInfinity };
        _comm.AllReduceMax(flag);
        if (_comm.IsRoot) return checkpointedAt;
        Iteration = _state.Unpack(bundle, $"mcir-rank{_comm.Rank}-").Iteration;
        SetLearningRate(_schedule.At(Iteration + 1));
        return (long)flag[0];
    }

    /// <summary>
    /// Runs from <see cref="Iteration"/> + 1 to <c>total_iter</c>. Returns <see cref="TrainingStatus.Completed"/> (final
    /// checkpoint written), <see cref="TrainingStatus.Interrupted"/> (cancellation: the current iteration is finished
    /// and a checkpoint written) or <see cref="TrainingStatus.Collapsed"/> (guard tripped: nothing is written from the
    /// collapsed state; the result names the cause, the iteration and the last good checkpoint).
    /// </summary>
    public TrainingResult Run(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_comm.IsRoot) Directory.CreateDirectory(RunDirectory);
        var log = OpenLog();
        if (!_started && Iteration == 0 && _resumedFrom is null) random.manual_seed(Options.Seed);
        _started = true;
        if (_comm.IsRoot) AtomicFile.WriteAllText(Path.Combine(RunDirectory, "training_options.json"), Options.ToJson());
        log.OnStart(Iteration, Options.TotalIter, _resumedFrom);
        foreach (var m in _pendingMessages) log.OnMessage(Iteration, m);
        _pendingMessages.Clear();
        if (_ema is not null) log.OnMessage(Iteration, $"target EMA on, decay {Options.EmaDecay!.Value.ToString("R", CultureInfo.InvariantCulture)}");

        SetLearningRate(_schedule.At(Iteration + 1));
        long checkpointedAt = LastCheckpoint is not null && _resumedFrom == LastCheckpoint ? Iteration : -1;
        checkpointedAt = SyncFromRoot(checkpointedAt);
        if (_comm.Size > 1) log.OnMessage(Iteration, $"data-parallel: {_comm.Describe()}; each rank trains on {Options.Name}'s global batch / {_comm.Size}");
        var clock = Stopwatch.StartNew();
        var stepClock = Stopwatch.StartNew();
        double stepSeconds = 0; // exponential moving average of the step time, for the live progress
        long windowStart = Iteration;
        TrainingResult result;
        _net.train();

        while (true)
        {
            if (Iteration >= Options.TotalIter)
            {
                if (checkpointedAt != Iteration) WriteCheckpoint(log);
                result = new(TrainingStatus.Completed, Iteration, $"completed {Iteration} iterations", LastCheckpoint, null, LastValidation);
                break;
            }
            long it = Iteration + 1;
            double lr = CurrentLearningRate;
            var (parts, gradNorm, verdict, stop) = StepGcRegion.NoCollectionDuring(() => Step(it, cancellationToken.IsCancellationRequested));
            if (verdict.IsCollapsed)
            {
                string last = LastCheckpoint is null ? "no checkpoint was written before it" : $"the last good checkpoint is {LastCheckpoint}";
                log.OnMessage(it, verdict.Message);
                result = new(TrainingStatus.Collapsed, Iteration,
                    $"{verdict.Message}; the run stopped without applying iteration {it} and wrote no checkpoint from the collapsed state; {last}",
                    LastCheckpoint, verdict, LastValidation);
                break;
            }
            Iteration = it;
            LastParts = parts;
            double dt = stepClock.Elapsed.TotalSeconds;
            stepClock.Restart();
            stepSeconds = stepSeconds == 0 ? dt : 0.9 * stepSeconds + 0.1 * dt;
            log.OnStep(new StepProgress(it, Options.TotalIter, stepSeconds > 0 ? 1 / stepSeconds : double.NaN,
                stepSeconds * (Options.TotalIter - it), parts["total"]));

            if (it % Options.PrintFreq == 0 || it == 1 || it == Options.TotalIter)
            {
                double perIter = clock.Elapsed.TotalSeconds / Math.Max(1, it - windowStart);
                log.OnIteration(new IterationRecord(it, Options.TotalIter, lr, parts, perIter, perIter * (Options.TotalIter - it), gradNorm));
                clock.Restart();
                windowStart = it;
            }
            if (Options.ValFreq > 0 && it % Options.ValFreq == 0 && ValidationCliff(it, log) is { } cliff)
            {
                string last = LastCheckpoint is null ? "no checkpoint was written before it" : $"the last good checkpoint is {LastCheckpoint}";
                log.OnMessage(it, cliff.Message);
                result = new(TrainingStatus.Collapsed, it, $"{cliff.Message}; the run stopped and wrote no checkpoint from this state; {last}",
                    LastCheckpoint, cliff, LastValidation);
                break;
            }
            if (Options.CheckpointFreq > 0 && it % Options.CheckpointFreq == 0)
            {
                WriteCheckpoint(log);
                checkpointedAt = it;
            }
            // Ranks agree on stopping in the iteration's all-reduce (a request that arrives later in the iteration is
            // agreed, and acted on, one iteration later); one process acts on it at the end of this iteration.
            if (stop || (_comm.Size == 1 && cancellationToken.IsCancellationRequested))
            {
                if (checkpointedAt != it) WriteCheckpoint(log);
                result = new(TrainingStatus.Interrupted, it, $"interrupted after iteration {it}; checkpoint {LastCheckpoint}; resume with --resume auto", LastCheckpoint, null, LastValidation);
                break;
            }
        }
        log.OnEnd(result);
        return result;
    }

    // stopRequested: this rank's stop request (Ctrl-C, SIGTERM); the iteration's Stop is the agreement of all ranks.
    private (Dictionary<string, double> Parts, double? GradNorm, CollapseVerdict Verdict, bool Stop) Step(long it, bool stopRequested)
    {
        using var scope = NewDisposeScope();
        var (lq, gt) = _batches.Next();
        // Batches live on the target's device (a batch source made for another device is moved, not refused).
        if (!Compute.TorchDevice.Same(lq.device, _device)) lq = lq.to(_device);
        if (!Compute.TorchDevice.Same(gt.device, _device)) gt = gt.to(_device);
        // Gradients set to none, as PyTorch's zero_grad() does by default since 2.0 (what BasicSR then runs): backward
        // writes them instead of adding to zeros; a parameter without a gradient in this step is not stepped.
        _net.zero_grad(set_to_none: true);
        StepTrace?.Invoke("zero_grad");
        // The memory format measured fastest for the network (channels-last by default); values are unchanged (see ConvolutionLayout).
        lq = Compute.ConvolutionLayout.ForModel(lq);
        var output = _net.call(lq);
        StepTrace?.Invoke("forward");
        var negatives = _needsNegatives ? _bank!.Produce(lq) : null;
        if (negatives is not null) StepTrace?.Invoke("negatives_forward");
        var context = new LossContext(output, gt, lq, negatives);
        var parts = new Dictionary<string, double>();
        Tensor? total = null;
        foreach (var term in _terms)
        {
            var r = term.Compute(context);
            total = total is null ? r.Value : total + r.Value;
            foreach (var (k, v) in r.Parts)
                if (!parts.TryAdd(k, v)) throw new McirException($"trainer: loss part '{k}' is reported by two terms (the second: '{term.Name}')");
        }
        if (parts.ContainsKey("total")) throw new McirException("trainer: a loss term reports a part named 'total', which the trainer reserves for the sum");
        parts["total"] = total!.detach().to(ScalarType.Float64).item<double>();
        StepTrace?.Invoke("loss");
        bool stop = DataParallel.AgreeOnParts(_comm, parts, stopRequested);

        var verdict = _guard.Observe(it, parts);
        if (verdict.IsCollapsed)
        {
            StepAudit?.Invoke(scope.DisposablesView.OfType<Tensor>().Where(t => !t.IsInvalid).ToList());
            return (parts, null, verdict, stop);
        }

        total.backward();
        StepTrace?.Invoke("backward");
        DataParallel.AverageGradients(_comm, _parameters);
        double? gradNorm = null;
        if (Options.GradClipNorm is { } maxNorm) gradNorm = nn.utils.clip_grad_norm_(_parameters, maxNorm);
        _optimizer.step();
        StepTrace?.Invoke("optimizer_step");
        // The authors' order (MCLIR's optimize_parameters): target EMA (model_ema), then the negative models'
        // update for every j with iteration % s_j == 0. Both read only the stepped target θ.
        if (_ema is not null)
        {
            _ema.Update();
            StepTrace?.Invoke("ema");
        }
        if (_bank is not null)
        {
            var updated = _bank.OnIterationEnd(it, _net);
            StepTrace?.Invoke($"negatives_update [{string.Join(", ", updated)}]");
        }
        SetLearningRate(_schedule.At(it + 1));
        StepTrace?.Invoke("scheduler");
        StepAudit?.Invoke(scope.DisposablesView.OfType<Tensor>().Where(t => !t.IsInvalid).ToList());
        return (parts, gradNorm, verdict, stop);
    }

    /// <summary>Validation at a validation iteration: rank 0 validates; all ranks learn whether the guard saw a cliff.</summary>
    private CollapseVerdict? ValidationCliff(long it, ITrainingLog log)
    {
        CollapseVerdict? cliff = null;
        if (_validate is not null && _comm.IsRoot && _guard.ObserveValidation(it, Validate(it, log)) is { IsCollapsed: true } v) cliff = v;
        if (_validate is not null) Compute.NativeHeap.Trim(); // validation images have other sizes than training patches
        if (!DataParallel.Any(_comm, cliff is not null)) return null;
        return cliff ?? new CollapseVerdict(CollapseCause.ValidationCliff, it, $"validation at iteration {it} fell off a cliff on rank 0 (its log has the numbers)");
    }

    /// <summary>Test hook: every live tensor an iteration made (its dispose scope's), just before they are freed.</summary>
    internal Action<IReadOnlyList<Tensor>>? StepAudit { get; set; }

    /// <summary>Test hook: called with the name of each phase of an iteration as it completes (see the class remarks).</summary>
    internal Action<string>? StepTrace { get; set; }

    private IReadOnlyDictionary<string, double> Validate(long it, ITrainingLog log)
    {
        var net = _ema is not null && Options.Validation.UseEma ? _ema.Network : _net;
        bool wasTraining = net.training;
        net.eval();
        IReadOnlyDictionary<string, double> metrics;
        try
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            metrics = _validate!(net, it);
        }
        finally
        {
            if (wasTraining) net.train();
        }
        LastValidation = metrics;
        log.OnValidation(it, metrics);
        return metrics;
    }

    private void SetLearningRate(double lr)
    {
        foreach (var g in _optimizer.ParamGroups) g.LearningRate = lr;
    }

    private ITrainingLog OpenLog()
    {
        if (_log is not null) return _log;
        var sinks = new List<ITrainingLog>();
        if (_comm.IsRoot)
        {
            _metrics = new JsonLinesMetricsLog(MetricsPath);
            sinks.Add(_metrics);
        }
        if (_progress is not null) sinks.Add(new ProgressTextLog(_progress));
        if (_userLog is not null) sinks.Add(_userLog);
        _log = new CompositeTrainingLog(sinks);
        return _log;
    }

    /// <summary>Writes a complete checkpoint of the current state (see the class remarks) and prunes old ones.</summary>
    public string WriteCheckpoint() => WriteCheckpoint(OpenLog()) ?? throw new InvalidOperationException("only rank 0 writes checkpoints");

    // Every rank calls this at the same iterations: the ranks' agreement is checked, then rank 0 writes.
    private string? WriteCheckpoint(ITrainingLog log)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        string? agreed = DataParallel.VerifyRanksAgree(_comm, Iteration, _net, _ema, _bank);
        if (!_comm.IsRoot) return null;
        if (agreed is not null) log.OnMessage(Iteration, agreed);
        string path = CheckpointStore.Write(RunDirectory, Iteration, _state.Files(Iteration, CurrentLearningRate), CheckpointFileWritten);
        LastCheckpoint = path;
        if (Options.KeepCheckpoints > 0) CheckpointStore.Prune(RunDirectory, Options.KeepCheckpoints);
        log.OnCheckpoint(Iteration, path);
        return path;
    }

    /// <summary>Disposes the optimiser, the target EMA and the metrics log (not the composed parts).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _optimizer.Dispose();
        _ema?.Dispose();
        _metrics?.Dispose();
    }
}
