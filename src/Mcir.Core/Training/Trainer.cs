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
        CollapseGuard? collapseGuard = null)
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

        Iteration = iteration;
        SetLearningRate(_schedule.At(iteration + 1));
        LastCheckpoint = dir;
        _resumedFrom = dir;
        _metrics?.Dispose();
        _metrics = null;
        _log = null;
        JsonLinesMetricsLog.TruncateAfter(MetricsPath, iteration);

        string saved = File.ReadAllText(F("options.json"));
        if (Normalise(TrainingOptions.FromJson(saved)) != Normalise(Options))
            _pendingMessages.Add("the training options differ from the checkpoint's (beyond total_iter/print/val/checkpoint frequencies): the resumed run is not the same run");
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

    /// <summary>
    /// Runs from <see cref="Iteration"/> + 1 to <c>total_iter</c>. Returns <see cref="TrainingStatus.Completed"/> (final
    /// checkpoint written), <see cref="TrainingStatus.Interrupted"/> (cancellation: the current iteration is finished
    /// and a checkpoint written) or <see cref="TrainingStatus.Collapsed"/> (guard tripped: nothing is written from the
    /// collapsed state; the result names the cause, the iteration and the last good checkpoint).
    /// </summary>
    public TrainingResult Run(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Directory.CreateDirectory(RunDirectory);
        var log = OpenLog();
        if (!_started && Iteration == 0 && _resumedFrom is null) random.manual_seed(Options.Seed);
        _started = true;
        AtomicFile.WriteAllText(Path.Combine(RunDirectory, "training_options.json"), Options.ToJson());
        log.OnStart(Iteration, Options.TotalIter, _resumedFrom);
        foreach (var m in _pendingMessages) log.OnMessage(Iteration, m);
        _pendingMessages.Clear();
        if (_ema is not null) log.OnMessage(Iteration, $"target EMA on, decay {Options.EmaDecay!.Value.ToString("R", CultureInfo.InvariantCulture)}");

        SetLearningRate(_schedule.At(Iteration + 1));
        long checkpointedAt = LastCheckpoint is not null && _resumedFrom == LastCheckpoint ? Iteration : -1;
        var clock = Stopwatch.StartNew();
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
            var (parts, gradNorm, verdict) = Step(it);
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

            if (it % Options.PrintFreq == 0 || it == 1 || it == Options.TotalIter)
            {
                double perIter = clock.Elapsed.TotalSeconds / Math.Max(1, it - windowStart);
                log.OnIteration(new IterationRecord(it, Options.TotalIter, lr, parts, perIter, perIter * (Options.TotalIter - it), gradNorm));
                clock.Restart();
                windowStart = it;
            }
            if (_validate is not null && Options.ValFreq > 0 && it % Options.ValFreq == 0
                && _guard.ObserveValidation(it, Validate(it, log)) is { IsCollapsed: true } cliff)
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
            if (cancellationToken.IsCancellationRequested)
            {
                if (checkpointedAt != it) WriteCheckpoint(log);
                result = new(TrainingStatus.Interrupted, it, $"interrupted after iteration {it}; checkpoint {LastCheckpoint}; resume with --resume auto", LastCheckpoint, null, LastValidation);
                break;
            }
        }
        log.OnEnd(result);
        return result;
    }

    private (Dictionary<string, double> Parts, double? GradNorm, CollapseVerdict Verdict) Step(long it)
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

        var verdict = _guard.Observe(it, parts);
        if (verdict.IsCollapsed)
        {
            StepAudit?.Invoke(scope.DisposablesView.OfType<Tensor>().Where(t => !t.IsInvalid).ToList());
            return (parts, null, verdict);
        }

        total.backward();
        StepTrace?.Invoke("backward");
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
        return (parts, gradNorm, verdict);
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
        _metrics = new JsonLinesMetricsLog(MetricsPath);
        var sinks = new List<ITrainingLog> { _metrics };
        if (_progress is not null) sinks.Add(new ProgressTextLog(_progress));
        if (_userLog is not null) sinks.Add(_userLog);
        _log = new CompositeTrainingLog(sinks);
        return _log;
    }

    /// <summary>Writes a complete checkpoint of the current state (see the class remarks) and prunes old ones.</summary>
    public string WriteCheckpoint() => WriteCheckpoint(OpenLog());

    private string WriteCheckpoint(ITrainingLog log)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
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
        var files = new List<(string, Action<Stream>)>
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

        string path = CheckpointStore.Write(RunDirectory, Iteration, files, CheckpointFileWritten);
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
