using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Mcir.Abstractions.Losses;
using Mcir.Core.IO;
using Mcir.Core.ModelContrast;
using Mcir.Core.Weights;
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
/// <para>A checkpoint (<see cref="CheckpointStore"/> layout) holds <c>model.safetensors</c> (target), <c>ema.safetensors</c>
/// (target EMA, if on), <c>negatives.safetensors</c> (negative bank, if any), <c>optimizer.bin</c> (TorchSharp's
/// optimizer state: per-group options incl. lr, per-parameter Adam step and moments), <c>batches.bin</c> (batch source
/// state), <c>torch_rng.bin</c> (default CPU generator state), <c>trainer.json</c> (iteration, lr, seed) and
/// <c>options.json</c> (the resolved options). <see cref="LoadCheckpoint"/> restores all of it, so a resumed run
/// reproduces the uninterrupted run's losses.</para>
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
        if (lossTerms.Count == 0) throw new McirException("trainer: no loss terms");
        var dup = lossTerms.GroupBy(t => t.Name).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new McirException($"trainer: loss term '{dup.Key}' is configured twice");
        _needsNegatives = lossTerms.Any(t => t.NeedsNegatives);
        if (_needsNegatives && negativeBank is null)
            throw new McirException($"trainer: loss term(s) {string.Join(", ", lossTerms.Where(t => t.NeedsNegatives).Select(t => $"'{t.Name}'"))} need negatives, but no negative bank is configured");

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
        var o = options.Optimizer;
        _optimizer = o.Type switch
        {
            "adamw" => optim.AdamW(_parameters, o.Lr, o.Betas[0], o.Betas[1], o.Eps, o.WeightDecay),
            _ => optim.Adam(_parameters, o.Lr, o.Betas[0], o.Betas[1], o.Eps, o.WeightDecay),
        };
        if (options.EmaDecay is { } decay) _ema = new TargetEma(network, decay);
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

    /// <summary>The newest complete checkpoint of <paramref name="runDirectory"/> (incomplete ones ignored), or null.</summary>
    public static string? FindLatestCompleteCheckpoint(string runDirectory) => CheckpointStore.FindLatestComplete(runDirectory);

    /// <summary>
    /// The <c>--resume</c> semantic: null/empty → start fresh (null); <c>auto</c> → the newest complete checkpoint of the
    /// run, or null when there is none; anything else is a checkpoint folder, which must be complete.
    /// </summary>
    public static string? ResolveResume(string runDirectory, string? resume)
    {
        if (string.IsNullOrEmpty(resume)) return null;
        if (resume == "auto") return FindLatestCompleteCheckpoint(runDirectory);
        string path = Path.GetFullPath(resume);
        if (!Directory.Exists(path)) throw new McirException($"--resume {resume}: no such checkpoint folder");
        if (CheckpointStore.Verify(path) is { } why) throw new McirException($"--resume {resume}: not a complete checkpoint: {why}");
        return path;
    }

    /// <summary>
    /// Restores the full training state from a complete checkpoint folder (see the class remarks). Metrics-log records
    /// after the checkpoint's iteration are dropped, so the log continues as one run.
    /// </summary>
    public void LoadCheckpoint(string checkpointDirectory)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        string dir = Path.GetFullPath(checkpointDirectory);
        if (CheckpointStore.Verify(dir) is { } why) throw new McirException($"checkpoint '{dir}' cannot be resumed: {why}");
        string F(string name) => Path.Combine(dir, name);

        using var doc = JsonDocument.Parse(File.ReadAllBytes(F("trainer.json")));
        var root = doc.RootElement;
        long iteration = root.GetProperty("iteration").GetInt64();
        if (iteration < 0) throw new McirException($"checkpoint '{dir}': negative iteration");
        bool hasEma = File.Exists(F("ema.safetensors")), hasBank = File.Exists(F("negatives.safetensors"));
        if (hasEma != (_ema is not null))
            throw new McirException($"checkpoint '{dir}': it {(hasEma ? "has" : "has no")} target EMA but this run {(_ema is null ? "has none" : "has one")} (ema_decay must match)");
        if (hasBank != (_bank is not null))
            throw new McirException($"checkpoint '{dir}': it {(hasBank ? "has" : "has no")} negative bank but this run {(_bank is null ? "has none" : "has one")}");

        RestoreFiles(dir);

        Iteration = iteration;
        SetLearningRate(_schedule.At(iteration + 1));
        LastCheckpoint = dir;
        _resumedFrom = dir;
        _metrics?.Dispose();
        _metrics = null;
        _log = null;
        if (_comm.IsRoot) JsonLinesMetricsLog.TruncateAfter(MetricsPath, iteration);

        string saved = File.ReadAllText(F("options.json"));
        if (Normalise(TrainingOptions.FromJson(saved)) != Normalise(Options))
            _pendingMessages.Add("the training options differ from the checkpoint's (beyond total_iter/print/val/checkpoint frequencies): the resumed run is not the same run");
    }

    /// <summary>Reads the state files of a verified checkpoint folder into the network, EMA, bank, optimiser, batches, generator and guard.</summary>
    private void RestoreFiles(string dir)
    {
        string F(string name) => Path.Combine(dir, name);
        try
        {
            ModuleStateFile.Read(F("model.safetensors"), _net);
            if (_ema is not null) ModuleStateFile.Read(F("ema.safetensors"), _ema.Network);
            _bank?.LoadState(F("negatives.safetensors"));
            using (var fs = File.OpenRead(F("optimizer.bin")))
            using (var reader = new BinaryReader(fs))
                _optimizer.load_state_dict(reader);
            _batches.SetState(File.ReadAllBytes(F("batches.bin")));
            using (var rng = tensor(File.ReadAllBytes(F("torch_rng.bin")), ScalarType.Byte))
                random.set_rng_state(rng);
            // Older checkpoints have no guard history: the guard then starts afresh.
            if (File.Exists(F("collapse_guard.json")))
                _guard.RestoreState(JsonSerializer.Deserialize<CollapseGuardState>(File.ReadAllBytes(F("collapse_guard.json")))
                    ?? throw new InvalidDataException($"{F("collapse_guard.json")}: empty"));
        }
        catch (Exception e) when (e is InvalidDataException or StateDictMismatchException or IOException or ArgumentException or EndOfStreamException or JsonException)
        {
            throw new McirException($"checkpoint '{dir}' cannot be resumed: {e.Message}", e);
        }
    }

    /// <summary>
    /// Data-parallel start: rank 0's whole training state (the checkpoint files, from memory) goes to every rank, which
    /// restores it as from a checkpoint, so all ranks start identical, fresh or resumed. Returns rank 0's
    /// "checkpointed at" iteration so that all ranks decide alike whether a final checkpoint is due.
    /// </summary>
    private long SyncFromRoot(long checkpointedAt)
    {
        if (_comm.Size == 1) return checkpointedAt;
        byte[]? bundle = null;
        if (_comm.IsRoot)
        {
            var buffer = new MemoryStream();
            using (var w = new BinaryWriter(buffer, Encoding.UTF8, leaveOpen: true))
            {
                var files = StateFiles();
                w.Write(files.Count);
                foreach (var (name, write) in files)
                {
                    var data = new MemoryStream();
                    write(data);
                    w.Write(name);
                    w.Write(data.Length);
                    w.Write(data.GetBuffer(), 0, (int)data.Length);
                }
            }
            bundle = buffer.ToArray();
        }
        bundle = _comm.Broadcast(bundle);
        var flag = new[] { _comm.IsRoot ? checkpointedAt : double.NegativeInfinity };
        _comm.AllReduceMax(flag);
        if (_comm.IsRoot) return checkpointedAt;

        string tmp = Directory.CreateTempSubdirectory($"mcir-rank{_comm.Rank}-").FullName;
        try
        {
            var files = new List<(string, Action<Stream>)>();
            using (var r = new BinaryReader(new MemoryStream(bundle)))
            {
                int n = r.ReadInt32();
                for (int i = 0; i < n; i++)
                {
                    string name = r.ReadString();
                    byte[] data = r.ReadBytes(checked((int)r.ReadInt64()));
                    files.Add((name, s => s.Write(data)));
                }
            }
            string dir = CheckpointStore.Write(tmp, 0, files);
            using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "trainer.json")));
            RestoreFiles(dir);
            Iteration = doc.RootElement.GetProperty("iteration").GetInt64();
            SetLearningRate(_schedule.At(Iteration + 1));
        }
        finally
        {
            try { Directory.Delete(tmp, recursive: true); } catch (IOException) { }
        }
        return (long)flag[0];
    }

    /// <summary>
    /// Checks at each checkpoint that every rank holds bit-identical target weights, negatives and target EMA (they
    /// follow identical gradients and need no traffic): CRC-32C of their serialised state, compared by all-reduce.
    /// </summary>
    private void VerifyRanksAgree()
    {
        if (_comm.Size == 1) return;
        var state = new MemoryStream();
        ModuleStateFile.Write(state, _net, "target");
        if (_ema is not null) ModuleStateFile.Write(state, _ema.Network, "ema");
        _bank?.SaveState(state);
        double crc = IO.Crc32C.Compute(state.GetBuffer().AsSpan(0, (int)state.Length));
        var range = new[] { crc, -crc };
        _comm.AllReduceMax(range);
        if (range[0] != -range[1])
            throw new McirException($"distributed: the ranks' weights differ at iteration {Iteration} (checksums {-range[1]} … {range[0]}); a rank computed differently (mixed CPUs or libraries?)");
        if (_comm.IsRoot) OpenLog().OnMessage(Iteration, $"all {_comm.Size} ranks hold identical weights, negatives and EMA (CRC-32C {crc:F0})");
    }

    private readonly List<string> _pendingMessages = [];

    /// <summary>The options that define the trajectory (frequencies and the length of the run may change on resume).</summary>
    private static string Normalise(TrainingOptions o) =>
        (o with
        {
            // a cosine schedule without explicit periods spans total_iter, so there the length of the run matters
            TotalIter = (o.Scheduler.Type == SchedulerSettings.Cosine && o.Scheduler.Periods.Count == 0)
                || (o.Scheduler.Type == SchedulerSettings.TrueCosine && o.Scheduler.TMax is null) ? o.TotalIter : 0,
            PrintFreq = 1, ValFreq = 0, CheckpointFreq = 0, KeepCheckpoints = 0, Name = "",
        }).ToJson();

    /// <summary>Managed bytes one iteration may allocate without a garbage collection (see <see cref="NoCollectionDuring{T}"/>).</summary>
    internal const long StepAllocationBudget = 128L << 20;

    /// <summary>
    /// Runs one iteration inside a no-GC region, so no finalizer can run for an object of this iteration while libtorch
    /// still uses its native memory. TorchSharp turns numbers into <c>Scalar</c>s implicitly (<c>x + y</c> passes
    /// alpha 1, optimizers pass their rates) and leaves them to the finalizer; a collection during the native call can
    /// free one in use (libtorch then fails with <c>Scalar::toFloat</c> "Expected false to be true", or reads garbage;
    /// dotnet/TorchSharp#1434). Collections happen between iterations instead. When the iteration (or another thread,
    /// e.g. the batch prefetcher) allocates more than <see cref="StepAllocationBudget"/>, the runtime collects anyway,
    /// as without the region.
    /// </summary>
    internal static T NoCollectionDuring<T>(Func<T> step)
    {
        bool region = false;
        try { region = GC.TryStartNoGCRegion(StepAllocationBudget, disallowFullBlockingGC: true); }
        catch (InvalidOperationException) { /* already in a region (nested use) */ }
        catch (ArgumentOutOfRangeException) { /* budget above this runtime's limit: run without */ }
        try { return step(); }
        finally
        {
            if (region && System.Runtime.GCSettings.LatencyMode == System.Runtime.GCLatencyMode.NoGCRegion)
            {
                try { GC.EndNoGCRegion(); }
                catch (InvalidOperationException) { /* the budget was exceeded and a collection ended the region */ }
            }
        }
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
            var (parts, gradNorm, verdict, stop) = NoCollectionDuring(() => Step(it, cancellationToken.IsCancellationRequested));
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
        _optimizer.zero_grad();
        StepTrace?.Invoke("zero_grad");
        // Channels-last strides make CPU convolutions much faster; values are unchanged (see ChannelsLast).
        lq = Compute.ChannelsLast.Of(lq);
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
        bool stop = AgreeOnParts(parts, stopRequested);

        var verdict = _guard.Observe(it, parts);
        if (verdict.IsCollapsed)
        {
            StepAudit?.Invoke(scope.DisposablesView.OfType<Tensor>().Where(t => !t.IsInvalid).ToList());
            return (parts, null, verdict, stop);
        }

        total.backward();
        StepTrace?.Invoke("backward");
        AverageGradients();
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

    /// <summary>
    /// The one all-reduce of an iteration's scalars: every loss part becomes its mean over the ranks (each rank's part
    /// is the mean over its equal slice, so this is the global batch's mean; a non-finite part anywhere stays
    /// non-finite), and the ranks' stop requests are summed, so the collapse guard and a stop decide alike everywhere.
    /// </summary>
    private bool AgreeOnParts(Dictionary<string, double> parts, bool stopRequested)
    {
        if (_comm.Size == 1) return stopRequested;
        var keys = parts.Keys.Order(StringComparer.Ordinal).ToArray();
        var values = new double[keys.Length + 2];
        for (int i = 0; i < keys.Length; i++) values[i] = parts[keys[i]];
        values[^2] = stopRequested ? 1 : 0;
        values[^1] = keys.Length; // the same parts on every rank (else the sums mix different quantities)
        _comm.AllReduceSum(values);
        if (values[^1] != (double)keys.Length * _comm.Size)
            throw new McirException("distributed: the ranks report different loss parts; every rank must run the same configuration");
        for (int i = 0; i < keys.Length; i++) parts[keys[i]] = values[i] / _comm.Size;
        return values[^2] > 0;
    }

    /// <summary>
    /// The one all-reduce of gradients: every parameter's gradient, flattened into one float32 buffer, summed over the
    /// ranks and divided by their number (the gradient of the global batch's mean loss), before clipping and the step.
    /// </summary>
    private void AverageGradients()
    {
        if (_comm.Size == 1) return;
        using var scope = NewDisposeScope();
        var grads = _parameters.Where(p => p.grad is not null).Select(p => p.grad!).ToList();
        var flat = cat(grads.Select(g => g.reshape(-1)).ToList(), 0).to(ScalarType.Float32);
        // MPI reduces host memory (the CUDA path copies through the CPU; NCCL is not wired in, see README).
        var host = flat.device_type == DeviceType.CPU ? flat.contiguous() : flat.cpu();
        unsafe
        {
            fixed (byte* p = host.bytes)
                _comm.AllReduceSum((nint)p, host.numel());
        }
        host.div_(_comm.Size);
        long offset = 0;
        foreach (var g in grads)
        {
            long n = g.numel();
            g.copy_(host.narrow(0, offset, n).view_as(g));
            offset += n;
        }
    }

    /// <summary>Validation at a validation iteration: rank 0 validates; all ranks learn whether the guard saw a cliff.</summary>
    private CollapseVerdict? ValidationCliff(long it, ITrainingLog log)
    {
        CollapseVerdict? cliff = null;
        if (_validate is not null && _comm.IsRoot && _guard.ObserveValidation(it, Validate(it, log)) is { IsCollapsed: true } v) cliff = v;
        if (_comm.Size == 1) return cliff;
        var flag = new[] { cliff is null ? 0.0 : 1.0 };
        _comm.AllReduceMax(flag);
        if (flag[0] == 0) return null;
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
        VerifyRanksAgree();
        if (!_comm.IsRoot) return null;
        string path = CheckpointStore.Write(RunDirectory, Iteration, StateFiles(), CheckpointFileWritten);
        LastCheckpoint = path;
        if (Options.KeepCheckpoints > 0) CheckpointStore.Prune(RunDirectory, Options.KeepCheckpoints);
        log.OnCheckpoint(Iteration, path);
        return path;
    }

    /// <summary>The files of a checkpoint of the current state (name → writer), as <see cref="CheckpointStore.Write"/> takes them.</summary>
    private List<(string Name, Action<Stream> Write)> StateFiles()
    {
        byte[] rng;
        using (var state = random.get_rng_state()) rng = state.bytes.ToArray();
        byte[] batches = _batches.GetState();
        string trainerJson;
        {
            var buffer = new MemoryStream();
            using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
            {
                w.WriteStartObject();
                w.WriteString("format", "mcir.trainer_state");
                w.WriteNumber("version", 1);
                w.WriteNumber("iteration", Iteration);
                w.WriteNumber("next_lr", CurrentLearningRate);
                w.WriteNumber("seed", Options.Seed);
                w.WriteString("optimizer", Options.Optimizer.Type);
                w.WriteString("network", _net.GetType().FullName);
                w.WriteStartArray("loss_terms");
                foreach (var t in _terms) w.WriteStringValue(t.Name);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            trainerJson = Encoding.UTF8.GetString(buffer.ToArray());
        }
        var files = new List<(string Name, Action<Stream> Write)>
        {
            ("model.safetensors", s => ModuleStateFile.Write(s, _net, "target")),
        };
        if (_ema is not null) files.Add(("ema.safetensors", s => ModuleStateFile.Write(s, _ema.Network, "ema")));
        if (_bank is not null) files.Add(("negatives.safetensors", s => _bank.SaveState(s)));
        files.Add(("optimizer.bin", s =>
        {
            using var w = new BinaryWriter(s, Encoding.UTF8, leaveOpen: true);
            _optimizer.save_state_dict(w);
            w.Flush();
        }));
        files.Add(("batches.bin", s => s.Write(batches)));
        files.Add(("torch_rng.bin", s => s.Write(rng)));
        files.Add(("trainer.json", s => s.Write(Encoding.UTF8.GetBytes(trainerJson))));
        files.Add(("collapse_guard.json", s => JsonSerializer.Serialize(s, _guard.CaptureState())));
        files.Add(("options.json", s => s.Write(Encoding.UTF8.GetBytes(Options.ToJson()))));

        return files;
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
