using System.Globalization;
using Mcir.Abstractions.ModelContrast;
using Mcir.Abstractions.Models;
using Mcir.Core.Compute;
using Mcir.Core.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.ModelContrast;

/// <summary>
/// The K negative models of model-contrastive learning ("learning from history"): past versions of the target
/// network whose outputs serve as hard negatives of the SPN loss.
/// <list type="bullet">
/// <item>Negatives are built with <see cref="IArchitectureCloneable.CloneArchitecture"/> and then, by
/// <see cref="NegativeBankOptions.Kind"/>: <c>ema</c> + <c>blend</c> (default, the authors' code):
/// <c>p_neg ← β·p_neg + (1−β)·p</c> once, in place, multiply then add, the same float32 operation order as the
/// authors' <c>p_neg.mul_(β).add_(p, alpha=1−β)</c>; <c>ema</c> + <c>copy</c>: <c>p_neg ← p</c>;
/// <c>fixed-random</c>: left at the fresh random initialisation; <c>fixed-pretrained</c>: loaded from a
/// checkpoint.</item>
/// <item>Negatives are always in eval mode (no dropout / stochastic depth), their parameters never require grad,
/// they are not submodules of the target (so an optimiser built from <c>target.parameters()</c> never sees them),
/// and <see cref="Produce"/> runs them under <c>no_grad</c>.</item>
/// <item>Only <b>parameters</b> are blended and updated, matched by name; <b>buffers are left alone</b>: every
/// negative keeps its own buffers (for BatchNorm: the running statistics of its fresh initialisation, or of the
/// checkpoint for fixed-pretrained). This is what the authors' code does (it walks <c>named_parameters()</c>
/// only; EDSR has no buffers and the buffers of the other architectures are deterministic functions of the
/// configuration, such as SwinIR's attention masks). An average of running statistics would not describe the
/// averaged weights anyway.</item>
/// </list>
/// The bank is part of the training state: <see cref="SaveState(string)"/> / <see cref="LoadState(string)"/>
/// keep every negative's parameters and buffers, the settings and the schedule position, so a resumed run continues
/// bit-exactly. Format: a safetensors file (<see cref="SafetensorsFile"/>) with tensor <c>negatives.{j}.{key}</c> for
/// every entry of negative j's <c>state_dict()</c> (parameters and buffers) and metadata <c>format</c> =
/// <c>mcir.negative_bank</c>, <c>format_version</c> = <c>1</c>, <c>kind</c>, <c>init</c>, <c>schedule_order</c>,
/// <c>count</c> (K), <c>neg_start</c>, <c>steps</c> and <c>decays</c> (comma-separated per negative, decays in
/// round-trip notation), <c>last_iteration</c> (0 before the first iteration), <c>update_counts</c> and
/// <c>last_update_iterations</c> (comma-separated per negative).
/// </summary>
public sealed class NegativeBank : INegativeSource, IDisposable
{
    private const string FormatName = "mcir.negative_bank";
    private const string FormatVersion = "1";
    private const string StateWhat = "negative bank state";

    private readonly List<nn.Module<Tensor, Tensor>> _negatives;
    // Low-precision copies used for Produce when Options.Precision is not float32; null otherwise.
    private readonly List<nn.Module<Tensor, Tensor>>? _mirrors;
    private readonly long[] _updateCounts;
    private readonly long[] _lastUpdateIterations;
    private bool _disposed;

    private NegativeBank(NegativeBankOptions options, List<nn.Module<Tensor, Tensor>> negatives, List<nn.Module<Tensor, Tensor>>? mirrors)
    {
        Options = options;
        _negatives = negatives;
        _mirrors = mirrors;
        for (int j = 0; j < negatives.Count; j++) SyncMirror(j);
        _updateCounts = new long[negatives.Count];
        _lastUpdateIterations = new long[negatives.Count];
    }

    /// <summary>The validated options.</summary>
    public NegativeBankOptions Options { get; }

    /// <inheritdoc />
    public int Count => _negatives.Count;

    /// <summary>The negative models (read-only use: do not train or register them).</summary>
    public IReadOnlyList<nn.Module<Tensor, Tensor>> Negatives => _negatives;

    /// <summary>The last iteration passed to <see cref="OnIterationEnd"/> (0 before the first).</summary>
    public long LastIteration { get; private set; }

    /// <summary>How many times each negative has been updated.</summary>
    public IReadOnlyList<long> UpdateCounts => _updateCounts;

    /// <summary>The iteration of each negative's latest update (0: never updated).</summary>
    public IReadOnlyList<long> LastUpdateIterations => _lastUpdateIterations;

    /// <summary>Update period of negative <paramref name="j"/> (see <see cref="NegativeBankOptions.ScheduleOrder"/>).</summary>
    public long PeriodOf(int j) => Options.PeriodOf(j);

    /// <summary>EMA decay α of negative <paramref name="j"/>.</summary>
    public double DecayOf(int j) => Options.DecayOf(j);

    /// <summary>
    /// Builds the bank for <paramref name="target"/>, which must implement <see cref="IArchitectureCloneable"/>.
    /// Negatives are placed on the device and in the dtype of the target's first parameter.
    /// </summary>
    public static NegativeBank Create(nn.Module<Tensor, Tensor> target, NegativeBankOptions options)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (target is not IArchitectureCloneable cloneable)
            throw new ArgumentException($"negative bank: the target network {target.GetType().Name} does not implement {nameof(IArchitectureCloneable)}, so no negative models can be built from it", nameof(target));

        var negatives = new List<nn.Module<Tensor, Tensor>>();
        try
        {
            var first = target.parameters().FirstOrDefault();
            for (int j = 0; j < options.Count; j++)
            {
                var neg = cloneable.CloneArchitecture() is { } clone ? Compute.ChannelsLast.ForConvolutions(clone)
                    : throw new InvalidOperationException($"negative bank: {target.GetType().Name}.CloneArchitecture() returned null");
                if (ReferenceEquals(neg, target))
                    throw new InvalidOperationException($"negative bank: {target.GetType().Name}.CloneArchitecture() returned the target itself, not a new instance");
                negatives.Add(neg);
                if (first is not null)
                {
                    neg.to(first.device);
                    var own = neg.parameters().FirstOrDefault();
                    if (own is not null && own.dtype != first.dtype) neg.to(first.dtype);
                }
                using (no_grad())
                {
                    switch (options.Kind)
                    {
                        case NegativeKind.Ema when options.Init == NegativeInit.Blend:
                            MoveTowards(neg, target, options.NegStart, $"negative {j}");
                            break;
                        case NegativeKind.Ema:
                            CopyParameters(neg, target, $"negative {j}");
                            break;
                        case NegativeKind.FixedRandom:
                            break;
                        case NegativeKind.FixedPretrained:
                            LoadPretrained(neg, options.PretrainedPathOf(j), options.PretrainedParamKey);
                            break;
                    }
                }
                Freeze(neg);
            }
        }
        catch
        {
            foreach (var n in negatives) n.Dispose();
            throw;
        }
        List<nn.Module<Tensor, Tensor>>? mirrors = null;
        if (options.Precision.Resolve() != Compute.NegativePrecision.Float32)
        {
            mirrors = [];
            try
            {
                foreach (var neg in negatives)
                {
                    var mirror = Compute.ChannelsLast.ForConvolutions(cloneable.CloneArchitecture());
                    mirrors.Add(mirror);
                    mirror.to(options.Precision.ToScalarType());
                    Freeze(mirror);
                }
            }
            catch
            {
                foreach (var n in negatives.Concat(mirrors)) n.Dispose();
                throw;
            }
        }
        return new NegativeBank(options, negatives, mirrors);
    }

    // Copies negative j's parameters and buffers into its low-precision mirror (converting the dtype).
    private void SyncMirror(int j)
    {
        if (_mirrors is null) return;
        using var _ = no_grad();
        var source = _negatives[j].state_dict();
        foreach (var (key, dst) in _mirrors[j].state_dict())
            dst.copy_(source[key]);
    }

    /// <summary>
    /// Call once per training iteration, after the optimiser step (iterations count from 1 and must increase).
    /// Every <c>ema</c> negative j with <c>iteration % PeriodOf(j) == 0</c> is moved towards the target:
    /// <c>p_neg ← α_j·p_neg + (1−α_j)·p</c> for every parameter, matched by name (buffers untouched, see the class
    /// remarks). Fixed kinds are never updated. Returns the indices of the negatives updated at this iteration.
    /// </summary>
    public IReadOnlyList<int> OnIterationEnd(long iteration, nn.Module target)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(target);
        if (iteration < 1) throw new ArgumentOutOfRangeException(nameof(iteration), iteration, "negative bank: iterations count from 1");
        if (iteration <= LastIteration)
            throw new InvalidOperationException($"negative bank: iteration {iteration} is not after the last one seen ({LastIteration}); each iteration may end only once");
        var updated = new List<int>();
        if (Options.Kind == NegativeKind.Ema)
        {
            for (int j = 0; j < Count; j++)
                if (iteration % PeriodOf(j) == 0) updated.Add(j);
            if (updated.Count > 0)
            {
                using var _ = no_grad();
                foreach (int j in updated)
                {
                    MoveTowards(_negatives[j], target, DecayOf(j), $"negative {j}");
                    SyncMirror(j);
                    _updateCounts[j]++;
                    _lastUpdateIterations[j] = iteration;
                }
            }
        }
        LastIteration = iteration;
        return updated;
    }

    /// <summary>
    /// The K negative outputs for <paramref name="input"/>, stacked as [K, B, C, H, W], computed in eval mode under
    /// <c>no_grad</c>. Intermediates are disposed here; the result belongs to the caller (it joins the caller's
    /// dispose scope if one is open, otherwise the caller disposes it).
    /// </summary>
    public Tensor Produce(Tensor input)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(input);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var outputs = new Tensor[Count];
        input = Compute.ConvolutionLayout.ForModel(input);
        if (_mirrors is not null) input = input.to(Options.Precision.ToScalarType());
        for (int j = 0; j < Count; j++)
        {
            var neg = _mirrors?[j] ?? _negatives[j];
            if (neg.training) neg.eval();
            outputs[j] = neg.call(input);
            if (_mirrors is not null) outputs[j] = outputs[j].to(ScalarType.Float32);
        }
        return stack(outputs, 0).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The in-place blend used for initialisation and updates: for every parameter of <paramref name="negative"/>,
    /// <c>p_neg.mul_(decay).add_(p, alpha: 1 − decay)</c> with <c>p</c> the same-named parameter of
    /// <paramref name="target"/>. Buffers are not touched. Both modules must have the same parameter names and
    /// shapes (the error names the first mismatch).
    /// </summary>
    public static void MoveTowards(nn.Module negative, nn.Module target, double decay, string what = "negative")
    {
        var pairs = MatchParameters(negative, target, what);
        using var _ = no_grad();
        foreach (var (pn, pg) in pairs) pn.mul_(decay).add_(pg, alpha: 1.0 - decay);
    }

    private static void CopyParameters(nn.Module negative, nn.Module target, string what)
    {
        var pairs = MatchParameters(negative, target, what);
        using var _ = no_grad();
        foreach (var (pn, pg) in pairs) pn.copy_(pg);
    }

    private static List<(Tensor Neg, Tensor Target)> MatchParameters(nn.Module negative, nn.Module target, string what)
    {
        var tp = new Dictionary<string, Tensor>();
        foreach (var (name, p) in target.named_parameters()) tp[name] = p;
        var pairs = new List<(Tensor, Tensor)>();
        var seen = new HashSet<string>();
        foreach (var (name, p) in negative.named_parameters())
        {
            if (!tp.TryGetValue(name, out var g))
                throw new InvalidOperationException($"negative bank: {what} has parameter '{name}' that the target lacks (different architecture?)");
            if (!p.shape.SequenceEqual(g.shape))
                throw new InvalidOperationException($"negative bank: parameter '{name}' has shape ({string.Join(", ", p.shape)}) in {what} but ({string.Join(", ", g.shape)}) in the target");
            if (p.dtype != g.dtype)
                throw new InvalidOperationException($"negative bank: parameter '{name}' is {p.dtype} in {what} but {g.dtype} in the target");
            pairs.Add((p, g));
            seen.Add(name);
        }
        foreach (var name in tp.Keys)
            if (!seen.Contains(name))
                throw new InvalidOperationException($"negative bank: the target has parameter '{name}' that {what} lacks (different architecture?)");
        return pairs;
    }

    private static void Freeze(nn.Module module)
    {
        foreach (var p in module.parameters()) p.requires_grad = false;
        module.eval();
    }

    private static void LoadPretrained(nn.Module negative, string path, string? paramKey)
    {
        const string what = "pretrained negative checkpoint";
        var sd = StateDictFile.Read(path, paramKey, what);
        try
        {
            // Strict, except that buffers may be omitted (e.g. deterministic attention masks); parameters may not.
            StateDictLoader.Load(negative, sd, $"{what} '{path}'", new StateDictLoadOptions { AllowMissingBuffers = true });
        }
        finally
        {
            foreach (var t in sd.Values) t.Dispose();
        }
    }

    /// <summary>
    /// A snapshot of the bank (copies of every negative's parameters and buffers, settings and schedule position)
    /// for a checkpoint writer; the caller owns (disposes) it.
    /// </summary>
    public TensorFile CaptureState()
    {
        ThrowIfDisposed();
        var tensors = new List<KeyValuePair<string, Tensor>>();
        using (NewDisposeScope())
        using (no_grad())
        {
            for (int j = 0; j < Count; j++)
                foreach (var (key, t) in _negatives[j].state_dict())
                {
                    var copy = t.detach().cpu().clone();
                    copy.DetachFromDisposeScope();
                    tensors.Add(new($"negatives.{j}.{key}", copy));
                }
        }
        var inv = CultureInfo.InvariantCulture;
        var meta = new Dictionary<string, string>
        {
            ["format"] = FormatName,
            ["format_version"] = FormatVersion,
            ["kind"] = NegativeBankOptions.FormatKind(Options.Kind),
            ["init"] = NegativeBankOptions.FormatInit(Options.Init),
            ["schedule_order"] = NegativeBankOptions.FormatScheduleOrder(Options.ScheduleOrder),
            ["count"] = Count.ToString(inv),
            ["neg_start"] = Options.NegStart.ToString("R", inv),
            ["steps"] = string.Join(",", Options.Steps.Select(s => s.ToString(inv))),
            ["decays"] = string.Join(",", Enumerable.Range(0, Count).Select(j => DecayOf(j).ToString("R", inv))),
            ["last_iteration"] = LastIteration.ToString(inv),
            ["update_counts"] = string.Join(",", _updateCounts.Select(c => c.ToString(inv))),
            ["last_update_iterations"] = string.Join(",", _lastUpdateIterations.Select(c => c.ToString(inv))),
        };
        return new TensorFile(tensors, meta);
    }

    /// <summary>
    /// Restores a snapshot taken by <see cref="CaptureState"/> into this bank. The settings that define the
    /// schedule (kind, K, steps, decays, order) must equal this bank's; every negative's state dict must match key
    /// for key, shape and dtype. Everything is checked before anything is changed; errors name the offending key.
    /// </summary>
    public void RestoreState(TensorFile state, string source = "<state>")
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(state);
        string where = $"negative bank state '{source}'";
        var inv = CultureInfo.InvariantCulture;
        string Meta(string key) => state.Metadata.TryGetValue(key, out var v) ? v
            : throw new InvalidDataException($"{where}: metadata entry '{key}' is missing");
        if (Meta("format") != FormatName) throw new InvalidDataException($"{where}: not a negative-bank state (format '{Meta("format")}')");
        if (Meta("format_version") != FormatVersion) throw new InvalidDataException($"{where}: unsupported format_version '{Meta("format_version")}' (expected {FormatVersion})");
        void Same(string key, string expected)
        {
            string actual = Meta(key);
            if (actual != expected)
                throw new InvalidDataException($"{where}: '{key}' is '{actual}' in the state but '{expected}' in this bank's options; resume with the same negative-bank settings");
        }
        Same("kind", NegativeBankOptions.FormatKind(Options.Kind));
        Same("schedule_order", NegativeBankOptions.FormatScheduleOrder(Options.ScheduleOrder));
        Same("count", Count.ToString(inv));
        Same("steps", string.Join(",", Options.Steps.Select(s => s.ToString(inv))));
        Same("decays", string.Join(",", Enumerable.Range(0, Count).Select(j => DecayOf(j).ToString("R", inv))));
        long last = ParseLong(Meta("last_iteration"), "last_iteration", where);
        long[] counts = ParseLongs(Meta("update_counts"), "update_counts", where);
        long[] lastUpd = ParseLongs(Meta("last_update_iterations"), "last_update_iterations", where);
        if (last < 0 || counts.Length != Count || lastUpd.Length != Count)
            throw new InvalidDataException($"{where}: schedule position does not fit {Count} negatives");

        var byName = new Dictionary<string, Tensor>();
        foreach (var (k, t) in state.Tensors)
            if (!byName.TryAdd(k, t)) throw new InvalidDataException($"{where}: key '{k}' occurs twice");
        var foreign = byName.Keys.Where(k => !Enumerable.Range(0, Count).Any(j => k.StartsWith($"negatives.{j}.", StringComparison.Ordinal))).Order(StringComparer.Ordinal).ToList();
        if (foreign.Count > 0)
            throw new InvalidDataException($"{where}: unexpected key '{foreign[0]}' (not in this bank's networks; different architecture?)");
        // Every negative is checked before any is changed; each key must match in name, shape and dtype.
        var load = Enumerable.Range(0, Count).Select(j => new StateDictLoadOptions { ExactDtype = true, Prefix = $"negatives.{j}." }).ToList();
        for (int j = 0; j < Count; j++) StateDictLoader.Check(_negatives[j], byName, where, load[j]);
        for (int j = 0; j < Count; j++) StateDictLoader.Load(_negatives[j], byName, where, load[j]);

        foreach (var n in _negatives) Freeze(n);
        for (int j = 0; j < Count; j++) SyncMirror(j);
        LastIteration = last;
        counts.CopyTo(_updateCounts, 0);
        lastUpd.CopyTo(_lastUpdateIterations, 0);
    }

    /// <summary>Writes the bank's state to <paramref name="path"/> atomically (format: see the class remarks).</summary>
    public void SaveState(string path)
    {
        using var state = CaptureState();
        SafetensorsFile.Write(path, state);
    }

    /// <summary>Writes the bank's state to <paramref name="stream"/> (left open).</summary>
    public void SaveState(Stream stream)
    {
        using var state = CaptureState();
        SafetensorsFile.Write(stream, state);
    }

    /// <summary>Restores the bank from a file written by <see cref="SaveState(string)"/> (see <see cref="RestoreState"/>).</summary>
    public void LoadState(string path)
    {
        using var state = SafetensorsFile.Read(path, StateWhat);
        RestoreState(state, path);
    }

    /// <summary>Restores the bank from a stream written by <see cref="SaveState(Stream)"/>.</summary>
    public void LoadState(Stream stream, string name = "<stream>")
    {
        using var state = SafetensorsFile.Read(stream, name, StateWhat);
        RestoreState(state, name);
    }

    /// <summary>Disposes the negative models.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var n in _negatives) n.Dispose();
        foreach (var n in _mirrors ?? []) n.Dispose();
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    private static long ParseLong(string s, string key, string where) =>
        long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out long v) ? v
            : throw new InvalidDataException($"{where}: metadata '{key}' = '{s}' is not an integer");

    private static long[] ParseLongs(string s, string key, string where) =>
        s.Length == 0 ? [] : s.Split(',').Select(x => ParseLong(x, key, where)).ToArray();
}
