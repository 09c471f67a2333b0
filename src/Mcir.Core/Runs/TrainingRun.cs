using System.Globalization;
using System.Text.Json.Nodes;
using Mcir.Abstractions.Losses;
using Mcir.Abstractions.Models;
using Mcir.Core.Data.Datasets;
using Mcir.Core.Compute;
using Mcir.Core.IO;
using Mcir.Core.Metrics;
using Mcir.Core.Metrics.Protocols;
using Mcir.Core.ModelContrast;
using Mcir.Core.Training;
using Mcir.Core.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Runs;

/// <summary>What a finished run reports: how training ended and the test tables (model beside the baseline).</summary>
public sealed record RunOutcome(TrainingResult Training, IReadOnlyList<TestTable> Tests, string RunDirectory);

/// <summary>One test set's scores for the trained model and for the baseline (bicubic for SR, the input otherwise).</summary>
/// <param name="Dataset">The test set's display name.</param>
/// <param name="Model">The trained model's scores.</param>
/// <param name="Baseline">The baseline's scores.</param>
/// <param name="BaselineName">What the baseline is, for the table header ("bicubic", "input").</param>
/// <param name="Start">The scores of the weights training started from (<c>path.pretrain_network_g</c>), or null
/// when the run trained from scratch.</param>
public sealed record TestTable(string Dataset, MetricsReport Model, MetricsReport Baseline, string BaselineName = "bicubic", MetricsReport? Start = null)
{
    /// <summary>The table in the shared test-set schema (<see cref="ResultsJson"/>) of <c>results.json</c> and <c>test --json</c>; <c>metrics --json</c> writes the same schema through FolderEvaluation.</summary>
    public JsonObject ToJson() => ResultsJson.TestSet(Dataset, Model, Baseline, BaselineName, Start);
}

/// <summary>
/// One training run from a configuration: composes the model, data, loss terms and negative bank, trains with the
/// <see cref="Trainer"/>, then scores the test sets. The engine side of <c>mcir-host run</c>.
/// </summary>
public static class TrainingRun
{
    /// <summary>Trains and tests the run configured by <paramref name="resolvedRoot"/>.</summary>
    /// <param name="resolvedRoot">The configuration (file plus <c>--set</c> overrides).</param>
    /// <param name="registries">Where the model, degradation and loss-term names are resolved (engine and plugins).</param>
    /// <param name="resume">Null, <c>auto</c> or a checkpoint folder.</param>
    /// <param name="log">Progress lines.</param>
    /// <param name="cancel">Stops training after the current iteration (a checkpoint is written).</param>
    /// <param name="progress">An extra event sink, e.g. the host's live progress line (every iteration's <see cref="StepProgress"/>).</param>
    /// <param name="communicator">The ranks of a data-parallel job (default: one process); every rank calls this with
    /// the same configuration, rank 0 alone writes the run folder and scores the test sets.</param>
    /// <param name="beforeFirstKernel">Called once the configuration's model, device, data sets and distribution settings
    /// have been checked and just before the first tensor operation that runs a compute kernel: where the host measures
    /// libtorch's oneDNN ISA cap (<see cref="Compute.IsaProbe"/>), so that a configuration error is reported at once.</param>
    public static RunOutcome Execute(JsonObject resolvedRoot, RunRegistries registries, string? resume, TextWriter log, CancellationToken cancel = default,
        ITrainingLog? progress = null, Distributed.ICommunicator? communicator = null, Action? beforeFirstKernel = null)
    {
        ArgumentNullException.ThrowIfNull(registries);
        var comm = communicator ?? Distributed.SingleProcess.Instance;
        if (!comm.IsRoot) log = TextWriter.Null; // rank 0 speaks for the job
        var config = RunComposition.Bind(resolvedRoot);
        string runDir = Path.GetFullPath(Path.Combine(config.OutputRoot, config.Name));
        if (comm.IsRoot) RunFolderLock.ThrowIfHeld(runDir); // before anything is built or measured; Acquire below is the lock
        if (comm.Size > 1)
        {
            int? threads = Distributed.Communicators.SplitThreads(comm);
            log.WriteLine($"distributed: {comm.Describe()}, global batch {config.Data.BatchSize} = {comm.Size} x {config.Data.BatchSize / Math.Max(1, comm.Size)}" +
                (threads is { } t ? $", {t} libtorch threads per rank" : ", threads per rank from OMP_NUM_THREADS"));
        }

        // Everything the configuration names is built before the run folder is touched, so a configuration error
        // leaves no folder behind.
        var device = TorchDevice.Resolve(config.Device, "device");
        if (comm.Size > 1 && device.type == DeviceType.CUDA)
            device = new Device(DeviceType.CUDA, Distributed.Communicators.RankDevice(config.Device, Math.Max(0, (int)device.index), Distributed.Communicators.LocalRank(), cuda.device_count()));
        var gradients = Distributed.Communicators.ForGradients(comm, config.DistBackend, device, log);
        using var ownGradients = ReferenceEquals(gradients, comm) ? null : gradients; // NCCL's communicator; comm is the caller's
        torch.manual_seed(config.Train.Seed);
        using var net = RunComposition.CreateModel(registries.Models, config.Model, out var modelOptions);
        log.WriteLine($"run {config.Name}: model {config.Model.Name} ({net.parameters().Sum(p => p.numel()):N0} parameters), folder {runDir}");
        log.WriteLine($"device: {TorchDevice.Describe(device)} (device = {config.Device})");
        string? checkpoint = comm.IsRoot ? CheckpointStore.ResolveResume(runDir, resume) : null; // rank 0 sends its state to the others
        if (config.Path.PretrainNetworkG is { Length: > 0 } && checkpoint is null)
            LoadPretrained(net, config.Path, log);
        // The target first: the negatives, the target EMA and the optimiser's state follow its device.
        if (!TorchDevice.Same(device, CPU)) net.to(device);

        int modelChannels = RunComposition.ModelInputChannels(net, modelOptions, out string channelSource);
        var layouts = registries.Layouts ?? RunComposition.BuiltInLayouts;
        IPairedDataset Dataset(DatasetSection s, string where, bool training) => RunComposition.CreateDataset(s, where, training, registries.Degradations, layouts,
            RunComposition.DataChannels(s, where, modelChannels, $"model '{config.Model.Name}', {channelSource}"));
        var train = Dataset(config.Data.Train, "data.train", training: true);
        if (train.Channels == 1)
        {
            // The SPN/CR embeddings (VGG, ResNet18, ONNX) take RGB images.
            if (config.Loss.Spn is not null || config.Loss.Cr is not null)
                throw new McirException($"loss.{(config.Loss.Spn is not null ? "spn" : "cr")}: its ImageNet embedding takes RGB images, but model '{config.Model.Name}' takes 1 channel ({channelSource}); set loss.{(config.Loss.Spn is not null ? "spn" : "cr")}=null for a gray model");
            log.WriteLine($"images are read as 1 channel (gray) for model '{config.Model.Name}' ({channelSource})");
        }
        beforeFirstKernel?.Invoke();
        // The settings in force, after the probe (if any) chose them.
        log.WriteLine($"cpu: {Compute.CpuFeatures.Machine.Describe()}, {torch.get_num_threads()} libtorch threads; {Compute.OneDnnIsa.Note}; {Compute.ConvolutionLayout.Note}; {Compute.NativeHeap.Note}; {Compute.FusedConvolution.Note}; {Compute.WinogradConvolution.Note}; {Compute.IntraOpParallel.Note}");
        if (Compute.IsaProbe.Note is { } probed) log.WriteLine(probed);
        ProbeModel(net, train, config.Model.Name, device);
        var loader = RunComposition.Configured("data", () => new PairedBatchLoader(train, new PairedLoaderOptions
        {
            BatchSize = config.Data.BatchSize, Shuffle = true, DropLast = true, Seed = (int)config.Train.Seed, Prefetch = true, Device = device, Shard = comm.Rank, Shards = comm.Size,
        }));
        if (config.Data.Train.Protocol is { } trainProtocol)
            throw new McirException($"data.train.protocol: '{trainProtocol}' is not used (only validation and test sets are scored); set it on data.val or data.test[i], or metrics.protocol");
        var val = config.Data.Val is { } v ? Dataset(v, "data.val", training: false) : null;
        var valProtocol = config.Data.Val is { } vs ? Protocol(vs, config.Metrics, "data.val") : null;
        var tests = config.Data.Test.Select((t, i) => (Section: t, Data: Dataset(t, $"data.test[{i}]", training: false), Protocol: Protocol(t, config.Metrics, $"data.test[{i}]"))).ToList();

        var terms = RunComposition.CreateLosses(config.Loss, registries.LossTerms, registries.Embeddings);
        try
        {
            RunComposition.MoveTo(terms, device);
            // model.eval_name: validation and tests score another registered model (e.g. nafnet-local) with the trained weights.
            using var evalNet = RunComposition.CreateEvalModel(registries.Models, config.Model, net, modelOptions);
            if (evalNet is not null) log.WriteLine($"validation and test sets are scored with model {config.Model.EvalName} (model.eval_name), given the trained weights");
            nn.Module<Tensor, Tensor> ForEvaluation(nn.Module<Tensor, Tensor> trained)
            {
                if (evalNet is null) return trained;
                RunComposition.CopyWeights(trained, evalNet, config.Model);
                return evalNet;
            }
            using var bank = terms.Any(t => t.NeedsNegatives) ? RunComposition.Configured("negatives", () => NegativeBank.Create(net, config.Negatives)) : null;
            // The collapse guard watches the reconstruction term's part, whichever term that is.
            var guard = RunComposition.Configured("collapse_guard", () => new CollapseGuard(config.CollapseGuard with { ReconstructionPart = terms[0].Name }));

            // A new run into a folder an earlier run wrote to: the earlier one is kept aside, as BasicSR's
            // mkdir_and_rename does (<run>_archived_<yyyyMMdd_HHmmss>), so logs, metrics and curves never mix two runs.
            if (comm.IsRoot && checkpoint is null && Directory.Exists(runDir) && Directory.EnumerateFileSystemEntries(runDir).Any())
            {
                string archived = $"{runDir}_archived_{DateTime.Now.ToString("yyyyMMdd_HHmmss", CultureInfo.InvariantCulture)}";
                for (int n = 2; Directory.Exists(archived); n++) archived = $"{runDir}_archived_{DateTime.Now.ToString("yyyyMMdd_HHmmss", CultureInfo.InvariantCulture)}_{n}";
                Directory.Move(runDir, archived);
                log.WriteLine($"{runDir} holds an earlier run and this one does not resume it: moved it to {archived}");
            }
            string? created = comm.IsRoot ? IO.CreatedFolders.TopmostMissing(runDir) : null;
            bool started = false;
            if (comm.IsRoot) Directory.CreateDirectory(runDir);
            try
            {
                // One run writes to a folder at a time (a requeued job while the old one still stops is refused).
                using var folderLock = comm.IsRoot ? RunFolderLock.Acquire(runDir) : null;
                if (folderLock?.PreviousHolder is { } stale)
                    log.WriteLine($"took over the lock of a run that ended without releasing it ({stale})");
                if (comm.IsRoot) WriteResolvedConfig(runDir, config, modelOptions, registries, terms.OfType<SpnLoss>().FirstOrDefault());
                foreach (var t in terms) log.WriteLine($"loss term {t.Name}{(t is SpnLoss spn ? ": " + spn.Describe() : "")}");
                if (bank is not null)
                    log.WriteLine($"negatives: {NegativeBankOptions.FormatKind(config.Negatives.Kind)}, K = {bank.Count}, steps {string.Join("/", config.Negatives.Steps)}, init {NegativeBankOptions.FormatInit(config.Negatives.Init)}; {config.Negatives.Precision.Describe()}");

                Func<nn.Module<Tensor, Tensor>, long, IReadOnlyDictionary<string, double>>? validate = null;
                if (val is not null && comm.IsRoot)
                {
                    validate = (model, iter) =>
                    {
                        var report = RestorationEvaluator.Evaluate(ForEvaluation(model), val, valProtocol!, Path.Combine(runDir, "visualization", $"iter_{iter:D6}"));
                        return new Dictionary<string, double> { ["psnr"] = report.MeanPsnr, ["ssim"] = report.MeanSsim };
                    };
                }

                using var tensorBoard = comm.IsRoot ? new TensorBoardLog(runDir) : null; // <run>/tb: tensorboard --logdir runs
                using var batches = new LoaderBatchSource(loader);
                using var trainer = RunComposition.Configured("train", () => new Trainer(net, terms, batches, config.Train with { Name = config.Name }, runDir, bank, validate,
                    log: progress is null ? tensorBoard : tensorBoard is null ? progress : new CompositeTrainingLog(tensorBoard, progress),
                    progress: comm.IsRoot ? log : null, collapseGuard: guard, communicator: gradients));
                if (checkpoint is not null)
                {
                    trainer.LoadCheckpoint(checkpoint);
                    log.WriteLine($"resumed from {checkpoint} (iteration {trainer.Iteration})");
                }
                started = true;
                var result = trainer.Run(cancel);
                // MCIR_WINOGRAD=benchmark: what each shape ran as (measured during the first iterations).
                if (Compute.WinogradConvolution.Mode == "benchmark") log.WriteLine(Compute.WinogradConvolution.Note);
                if (!comm.IsRoot) return new RunOutcome(result, [], runDir);
                RunCurves.TryWrite(runDir, log); // <run>/curves.png, also after a collapse or an interrupt
                if (result.Status != TrainingStatus.Completed)
                    return new RunOutcome(result, [], runDir);

                // A fine-tuning run also scores the weights it started from, so the table shows what training added.
                using var startNet = tests.Count > 0 && config.Path.PretrainNetworkG is { Length: > 0 } ? RunComposition.CreateModel(registries.Models, config.Model, out _) : null;
                if (startNet is not null)
                {
                    LoadPretrained(startNet, config.Path, TextWriter.Null);
                    if (!TorchDevice.Same(device, CPU)) startNet.to(device);
                }
                var tables = tests.Select(t => new TestTable(RunComposition.DisplayName(t.Section),
                    RestorationEvaluator.Evaluate(ForEvaluation(trainer.Ema?.Network ?? net), t.Data, t.Protocol, Path.Combine(runDir, "test", RunComposition.DisplayName(t.Section))),
                    RestorationEvaluator.EvaluateBaseline(t.Data, t.Protocol), t.Section.Scale > 1 ? "bicubic" : "input",
                    startNet is null ? null : RestorationEvaluator.Evaluate(ForEvaluation(startNet), t.Data, t.Protocol))).ToList();
                WriteResults(runDir, tables);
                return new RunOutcome(result, tables, runDir);
            }
            finally
            {
                // Set-up failed before the first iteration: remove the folder this call created (nothing in it is a
                // result yet). Runs after the using declarations above are disposed (the event file is closed).
                if (!started && created is not null) TryDeleteFolder(created);
            }
        }
        finally
        {
            foreach (var t in terms) (t as IDisposable)?.Dispose();
        }
    }

    /// <summary>
    /// The evaluation protocol of a validation or test set: its own <c>protocol</c>, else <c>metrics.protocol</c>
    /// (<c>sr</c> crops the set's scale; <c>basicsr</c> takes <c>metrics.crop_border</c> / <c>metrics.y_channel</c>).
    /// </summary>
    public static EvaluationProtocol Protocol(DatasetSection set, MetricsProtocol metrics, string where)
    {
        ArgumentNullException.ThrowIfNull(set);
        ArgumentNullException.ThrowIfNull(metrics);
        return set.Protocol is { } own
            ? EvaluationProtocols.Create(own, metrics, set.Scale, $"{where}.protocol")
            : EvaluationProtocols.Create(metrics.Protocol, metrics, set.Scale, "metrics.protocol");
    }

    /// <summary>
    /// Runs the model once (evaluation mode, no gradient) on the first training sample: a model that cannot take the
    /// data (channels, sizes) or whose output does not have the GT's shape (upscale against the data's scale) is a
    /// configuration error before anything is written, not a failure in iteration 1.
    /// </summary>
    private static void ProbeModel(nn.Module<Tensor, Tensor> net, IPairedDataset train, string modelName, Device device)
    {
        if (train.Count == 0) return; // the batch loader names the empty set
        var pair = train.Load(0, new Random(0));
        static string Shape(long[] s) => "[" + string.Join(", ", s) + "]";
        bool wasTraining = net.training;
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        using var sample = pair.ToSample(device, train.Channels);
        using var lq = sample.Lq.unsqueeze(0);
        using var gt = sample.Gt.unsqueeze(0);
        net.eval();
        try
        {
            Tensor output;
            try { output = net.forward(lq); }
            // A model refuses a bad input with ArgumentException; libtorch's own shape errors arrive as ExternalException.
            catch (Exception e) when (e is ArgumentException or System.Runtime.InteropServices.ExternalException)
            {
                string message = e is ArgumentException { ParamName: { } p } ? e.Message.Replace($" (Parameter '{p}')", "") : FirstLine(e.Message);
                throw new McirException($"model '{modelName}' cannot take the training data (data.train, {pair.Name}: LQ {Shape(lq.shape)}): {message.ReplaceLineEndings(" ")}", e);
            }
            if (!output.shape.SequenceEqual(gt.shape))
                throw new McirException($"model '{modelName}' turns the LQ {Shape(lq.shape)} of {pair.Name} (data.train) into {Shape(output.shape)}, but its GT is {Shape(gt.shape)}: " +
                    "check model.options (upscale, channels) against the data (scale, image channels)");
        }
        finally
        {
            if (wasTraining) net.train();
        }
    }

    private static string FirstLine(string text) => text.Split('\n', 2)[0].TrimEnd();

    // The outermost folder of path's chain that does not exist yet (what creating path creates), or null.
    private static void TryDeleteFolder(string path)
    {
        try { if (Directory.Exists(path)) Directory.Delete(path, recursive: true); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* best effort; the original error matters */ }
    }

    /// <summary>
    /// Loads <c>path.pretrain_network_g</c> into <paramref name="net"/> (strictly unless <c>path.strict_load_g</c> is
    /// false) and logs what was loaded and every key that was not.
    /// </summary>
    public static StateDictLoadReport LoadPretrained(nn.Module net, PathSection path, TextWriter log)
    {
        ArgumentNullException.ThrowIfNull(net);
        ArgumentNullException.ThrowIfNull(path);
        string file = path.PretrainNetworkG ?? throw new ArgumentException("path.pretrain_network_g is not set", nameof(path));
        const string what = "path.pretrain_network_g";
        Dictionary<string, Tensor> state;
        try { state = StateDictFile.Read(file, path.ParamKeyG, what); }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            throw new McirException(e.Message, e);
        }
        try
        {
            var report = StateDictLoader.Load(net, state, $"{what} '{file}'",
                new StateDictLoadOptions { Strict = path.StrictLoadG, NonStrictHint = "path.strict_load_g: false" });
            string key = path.ParamKeyG is { } k ? $"'{k}'" : "default wrapper rule";
            log.WriteLine($"pretrained weights {file} ({key}, {(path.StrictLoadG ? "strict" : "non-strict")}): {report.Loaded.Count} keys loaded");
            if (report.Recomputed.Count > 0)
                log.WriteLine($"  skipped {report.Recomputed.Count} buffers the model recomputes: {string.Join(", ", report.Recomputed)}");
            foreach (var line in report.Describe()) log.WriteLine("  " + line);
            return report;
        }
        finally
        {
            foreach (var t in state.Values) t.Dispose();
        }
    }

    /// <summary>
    /// The configuration as it runs: every section with its defaults; the full options of the model, of the
    /// reconstruction term and of every degradation.
    /// </summary>
    private static void WriteResolvedConfig(string runDir, RunConfig config, object modelOptions, RunRegistries registries, SpnLoss? spn)
    {
        var resolved = (JsonObject)Config.ConfigBinder.ToJson(config with { Train = config.Train with { Name = config.Name } });
        // The SPN options as they run: the embedding actually chosen and its layers.
        if (spn is not null) resolved["loss"]!["spn"] = Config.ConfigBinder.ToJson(spn.Options);
        resolved["model"]!["options"] = Config.ConfigBinder.ToJson(modelOptions);
        var reconstruction = RunComposition.Resolve(registries.LossTerms, config.Loss.Reconstruction, "loss.reconstruction");
        resolved["loss"]!["reconstruction_options"] = Config.ConfigBinder.ToJson(
            RunComposition.ComponentOptions(reconstruction, config.Loss.ReconstructionOptions, "loss.reconstruction_options"));
        var sets = new List<(DatasetSection Section, JsonNode? Node, string Where)> { (config.Data.Train, resolved["data"]!["train"], "data.train") };
        if (config.Data.Val is { } val) sets.Add((val, resolved["data"]!["val"], "data.val"));
        sets.AddRange(config.Data.Test.Select((t, i) => (t, resolved["data"]!["test"]![i], $"data.test[{i}]")));
        foreach (var (section, node, where) in sets)
        {
            if (section.Degradation is not { } d || node?["degradation"] is not JsonObject degradation) continue;
            var descriptor = RunComposition.Resolve(registries.Degradations, d.Name, $"{where}.degradation.name");
            degradation["options"] = Config.ConfigBinder.ToJson(RunComposition.ComponentOptions(descriptor, d.Options, $"{where}.degradation.options"));
        }
        AtomicFile.WriteAllText(Path.Combine(runDir, "config.resolved.json"), resolved.ToJsonString(Config.ConfigBinder.JsonOptions));
    }

    // results.json: one object per test set in the shared schema (ResultsJson).
    private static void WriteResults(string runDir, IReadOnlyList<TestTable> tables) =>
        ResultsJson.Write(Path.Combine(runDir, "results.json"), new JsonArray(tables.Select(t => (JsonNode)t.ToJson()).ToArray()));

    /// <summary>The test tables as text: per image and mean, model beside each table's own baseline.</summary>
    public static string FormatTables(IReadOnlyList<TestTable> tables) => Format(tables, null);

    /// <summary>The test tables as text: per image and mean, model beside the baseline called <paramref name="baselineName"/>.</summary>
    public static string FormatTables(IReadOnlyList<TestTable> tables, string baselineName) => Format(tables, baselineName);

    private static string Format(IReadOnlyList<TestTable> tables, string? fixedBaselineName)
    {
        var sb = new System.Text.StringBuilder();
        foreach (var t in tables)
        {
            string baselineName = fixedBaselineName ?? t.BaselineName;
            int w = Math.Max(8, t.Model.Images.Max(i => i.Name.Length));
            // The pretrained start (fine-tuning runs) sits between the baseline and the trained model.
            static string Cells(double psnr, double ssim, int width) => $"  {psnr.ToString("F4", System.Globalization.CultureInfo.InvariantCulture).PadLeft(width)}  {ssim.ToString("F6", System.Globalization.CultureInfo.InvariantCulture),8}";
            sb.AppendLine($"test set {t.Dataset} ({t.Model.Protocol.Header})");
            sb.AppendLine($"  {"image".PadRight(w)}  {baselineName + " PSNR",14}  {"SSIM",8}" + (t.Start is null ? "" : $"  {"start PSNR",11}  {"SSIM",8}") + $"  {"model PSNR",11}  {"SSIM",8}");
            for (int i = 0; i < t.Model.Images.Count; i++)
            {
                var (m, b) = (t.Model.Images[i], t.Baseline.Images[i]);
                sb.AppendLine($"  {m.Name.PadRight(w)}" + Cells(b.Psnr, b.Ssim, 14) + (t.Start is { } s ? Cells(s.Images[i].Psnr, s.Images[i].Ssim, 11) : "") + Cells(m.Psnr, m.Ssim, 11));
            }
            sb.AppendLine($"  {"mean".PadRight(w)}" + Cells(t.Baseline.MeanPsnr, t.Baseline.MeanSsim, 14) + (t.Start is { } sm ? Cells(sm.MeanPsnr, sm.MeanSsim, 11) : "") + Cells(t.Model.MeanPsnr, t.Model.MeanSsim, 11));
        }
        return sb.ToString().TrimEnd();
    }
}
