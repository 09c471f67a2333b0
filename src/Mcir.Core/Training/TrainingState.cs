using System.Text;
using System.Text.Json;
using Mcir.Abstractions.Losses;
using Mcir.Core.Config;
using Mcir.Core.ModelContrast;
using Mcir.Core.Weights;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mcir.Core.Training;

/// <summary>
/// <c>trainer.json</c> of a checkpoint: where the loop stands (BasicSR's training-state <c>iter</c>) and what wrote
/// it. Written and read with the shared settings <see cref="ConfigBinder.JsonOptions"/> (snake_case keys:
/// <c>format</c>, <c>version</c>, <c>iteration</c>, <c>next_lr</c>, <c>seed</c>, <c>optimizer</c>, <c>network</c>,
/// <c>loss_terms</c>).
/// </summary>
public sealed record TrainerJson
{
    /// <summary>The file name in a checkpoint folder.</summary>
    public const string FileName = "trainer.json";

    /// <summary>The value of <see cref="Format"/>.</summary>
    public const string FormatName = "mcir.trainer_state";

    /// <summary>The version this code writes and reads.</summary>
    public const int CurrentVersion = 1;

    /// <summary>Always <see cref="FormatName"/>.</summary>
    public string Format { get; init; } = FormatName;

    /// <summary>The format version (<see cref="CurrentVersion"/>).</summary>
    public int Version { get; init; } = CurrentVersion;

    /// <summary>The last completed iteration (≥ 0).</summary>
    public long Iteration { get; init; }

    /// <summary>The learning rate of iteration <see cref="Iteration"/> + 1 (informative: it is recomputed from the schedule).</summary>
    public double NextLr { get; init; }

    /// <summary>The seed of the run (informative: the generator state itself is <c>torch_rng.bin</c>).</summary>
    public long Seed { get; init; }

    /// <summary><c>optimizer.type</c> (informative).</summary>
    public string Optimizer { get; init; } = "";

    /// <summary>The .NET type of the target network (informative).</summary>
    public string? Network { get; init; }

    /// <summary>The names of the loss terms (informative).</summary>
    public IReadOnlyList<string> LossTerms { get; init; } = [];

    /// <summary>The file's bytes (indented UTF-8 JSON).</summary>
    public byte[] ToUtf8() => JsonSerializer.SerializeToUtf8Bytes(this, ConfigBinder.JsonOptions);

    /// <summary>Reads <c>trainer.json</c> of the checkpoint folder <paramref name="checkpointDirectory"/>.</summary>
    /// <exception cref="McirException">Malformed, another format, another version, or a negative iteration (one line naming the file).</exception>
    public static TrainerJson Read(string checkpointDirectory)
    {
        string path = Path.Combine(checkpointDirectory, FileName);
        TrainerJson? state;
        try
        {
            state = JsonSerializer.Deserialize<TrainerJson>(File.ReadAllBytes(path), ConfigBinder.JsonOptions);
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException)
        {
            throw new McirException($"checkpoint '{checkpointDirectory}' cannot be resumed: {FileName}: {e.Message}", e);
        }
        if (state is null || state.Format != FormatName)
            throw new McirException($"checkpoint '{checkpointDirectory}' cannot be resumed: {FileName} is not a trainer state (format '{state?.Format}', expected '{FormatName}')");
        if (state.Version != CurrentVersion)
            throw new McirException($"checkpoint '{checkpointDirectory}' cannot be resumed: {FileName} has format version {state.Version}; this version of mcir reads version {CurrentVersion} only");
        if (state.Iteration < 0) throw new McirException($"checkpoint '{checkpointDirectory}': negative iteration");
        return state;
    }
}

/// <summary>
/// Everything a checkpoint holds (BasicSR's <c>save_training_state</c> / <c>resume_training</c> plus the network
/// files), and the one place that writes and reads those files; <see cref="CheckpointStore"/> makes the folder atomic.
/// <list type="bullet">
/// <item><c>model.safetensors</c>: the target (<see cref="ModuleStateFile"/>, role <c>target</c>).</item>
/// <item><c>ema.safetensors</c>: the target EMA, when <c>ema_decay</c> is set (role <c>ema</c>).</item>
/// <item><c>negatives.safetensors</c>: the negative bank, when there is one (<see cref="NegativeBank.SaveState(Stream)"/>).</item>
/// <item><c>optimizer.bin</c>: TorchSharp's optimizer state (per-group options incl. lr — the scheduler position —,
/// per-parameter Adam step and moments).</item>
/// <item><c>batches.bin</c>: the batch source's position (<see cref="IBatchSource.GetState"/>).</item>
/// <item><c>torch_rng.bin</c>: the default CPU generator state.</item>
/// <item><c>trainer.json</c>: <see cref="TrainerJson"/> (iteration, next lr, seed).</item>
/// <item><c>collapse_guard.json</c>: the collapse guard's history (older checkpoints without it start the guard afresh).</item>
/// <item><c>options.json</c>: the resolved <see cref="TrainingOptions"/>.</item>
/// </list>
/// The names and contents are the on-disk format: a checkpoint written by an earlier version resumes.
/// </summary>
internal sealed class TrainingState(
    nn.Module<Tensor, Tensor> network,
    TargetEma? ema,
    NegativeBank? bank,
    OptimizerHelper optimizer,
    IBatchSource batches,
    CollapseGuard guard,
    TrainingOptions options,
    IReadOnlyList<ILossTerm> terms)
{
    private const string Model = "model.safetensors", Ema = "ema.safetensors", Negatives = "negatives.safetensors",
        Optimizer = "optimizer.bin", Batches = "batches.bin", Rng = "torch_rng.bin", Guard = "collapse_guard.json",
        Options = "options.json";

    /// <summary>The files of a checkpoint of the current state (name → writer), as <see cref="CheckpointStore.Write"/> takes them.</summary>
    public List<(string Name, Action<Stream> Write)> Files(long iteration, double nextLr)
    {
        // Captured now: the writers may run later (the generator and the batch position move on).
        byte[] rng;
        using (var state = random.get_rng_state()) rng = state.bytes.ToArray();
        byte[] position = batches.GetState();
        byte[] trainer = new TrainerJson
        {
            Iteration = iteration,
            NextLr = nextLr,
            Seed = options.Seed,
            Optimizer = options.Optimizer.Type,
            Network = network.GetType().FullName,
            LossTerms = terms.Select(t => t.Name).ToList(),
        }.ToUtf8();

        var files = new List<(string Name, Action<Stream> Write)> { (Model, s => ModuleStateFile.Write(s, network, "target")) };
        if (ema is not null) files.Add((Ema, s => ModuleStateFile.Write(s, ema.Network, "ema")));
        if (bank is not null) files.Add((Negatives, s => bank.SaveState(s)));
        files.Add((Optimizer, s =>
        {
            using var w = new BinaryWriter(s, Encoding.UTF8, leaveOpen: true);
            optimizer.save_state_dict(w);
            w.Flush();
        }));
        files.Add((Batches, s => s.Write(position)));
        files.Add((Rng, s => s.Write(rng)));
        files.Add((TrainerJson.FileName, s => s.Write(trainer)));
        files.Add((Guard, s => JsonSerializer.Serialize(s, guard.CaptureState())));
        files.Add((Options, s => s.Write(Encoding.UTF8.GetBytes(options.ToJson()))));
        return files;
    }

    /// <summary>
    /// Loads a checkpoint folder: checks it is complete, with every file's SHA-256 (the one hash check of a
    /// checkpoint), that it fits this run (target EMA and negative bank present alike), then restores every part.
    /// </summary>
    /// <returns>Its <c>trainer.json</c>.</returns>
    /// <exception cref="McirException">Incomplete, damaged (the file is named), another format version, or not this run's kind of state.</exception>
    public TrainerJson Load(string checkpointDirectory)
    {
        string dir = checkpointDirectory;
        if (CheckpointStore.Verify(dir) is { } why) throw new McirException($"checkpoint '{dir}' cannot be resumed: {why}");
        var saved = TrainerJson.Read(dir);
        bool hasEma = File.Exists(Path.Combine(dir, Ema)), hasBank = File.Exists(Path.Combine(dir, Negatives));
        if (hasEma != (ema is not null))
            throw new McirException($"checkpoint '{dir}': it {(hasEma ? "has" : "has no")} target EMA but this run {(ema is null ? "has none" : "has one")} (ema_decay must match)");
        if (hasBank != (bank is not null))
            throw new McirException($"checkpoint '{dir}': it {(hasBank ? "has" : "has no")} negative bank but this run {(bank is null ? "has none" : "has one")}");
        Restore(dir);
        return saved;
    }

    /// <summary>
    /// True when the checkpoint's <c>options.json</c> defines another trajectory than this run's options (frequencies,
    /// the name and — unless the schedule spans it — the length of the run may change on resume).
    /// </summary>
    public bool OptionsDiffer(string checkpointDirectory) =>
        Trajectory(TrainingOptions.FromJson(File.ReadAllText(Path.Combine(checkpointDirectory, Options)))) != Trajectory(options);

    /// <summary>The whole state as one buffer (the checkpoint's files, from memory), for a data-parallel start.</summary>
    public byte[] Pack(long iteration, double nextLr)
    {
        var buffer = new MemoryStream();
        using (var w = new BinaryWriter(buffer, Encoding.UTF8, leaveOpen: true))
        {
            var files = Files(iteration, nextLr);
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
        return buffer.ToArray();
    }

    /// <summary>Restores a <see cref="Pack"/> buffer (through a temporary checkpoint folder, removed after).</summary>
    /// <returns>Its <c>trainer.json</c>.</returns>
    public TrainerJson Unpack(byte[] bundle, string tempPrefix)
    {
        string tmp = Directory.CreateTempSubdirectory(tempPrefix).FullName;
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
            var saved = TrainerJson.Read(dir);
            Restore(dir);
            return saved;
        }
        finally
        {
            try { Directory.Delete(tmp, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>Reads the state files of a verified checkpoint folder into the network, EMA, bank, optimiser, batches, generator and guard.</summary>
    private void Restore(string dir)
    {
        string F(string name) => Path.Combine(dir, name);
        try
        {
            ModuleStateFile.Read(F(Model), network);
            if (ema is not null) ModuleStateFile.Read(F(Ema), ema.Network);
            bank?.LoadState(F(Negatives));
            using (var fs = File.OpenRead(F(Optimizer)))
            using (var reader = new BinaryReader(fs))
                optimizer.load_state_dict(reader);
            batches.SetState(File.ReadAllBytes(F(Batches)));
            using (var rng = tensor(File.ReadAllBytes(F(Rng)), ScalarType.Byte))
                random.set_rng_state(rng);
            // Older checkpoints have no guard history: the guard then starts afresh.
            if (File.Exists(F(Guard)))
                guard.RestoreState(JsonSerializer.Deserialize<CollapseGuardState>(File.ReadAllBytes(F(Guard)))
                    ?? throw new InvalidDataException($"{F(Guard)}: empty"));
        }
        catch (Exception e) when (e is InvalidDataException or StateDictMismatchException or IOException or ArgumentException or EndOfStreamException or JsonException)
        {
            throw new McirException($"checkpoint '{dir}' cannot be resumed: {e.Message}", e);
        }
    }

    /// <summary>The options that define the trajectory (frequencies and the length of the run may change on resume).</summary>
    private static string Trajectory(TrainingOptions o) =>
        (o with
        {
            // a cosine schedule without explicit periods spans total_iter, so there the length of the run matters
            TotalIter = (o.Scheduler.Type == SchedulerSettings.Cosine && o.Scheduler.Periods.Count == 0)
                || (o.Scheduler.Type == SchedulerSettings.TrueCosine && o.Scheduler.TMax is null) ? o.TotalIter : 0,
            PrintFreq = 1, ValFreq = 0, CheckpointFreq = 0, KeepCheckpoints = 0, Name = "",
        }).ToJson();
}
