using Mcir.Abstractions.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Weights;

/// <summary>How <see cref="StateDictLoader.Load(nn.Module, IReadOnlyDictionary{string, Tensor}, string, StateDictLoadOptions)"/> matches a state dict to a module.</summary>
public sealed record StateDictLoadOptions
{
    /// <summary>
    /// True (default, PyTorch's <c>strict=True</c>): every key of the module must be in the state dict with the same
    /// shape and no other key may be there, else nothing is loaded. False: the keys with the same name and shape are
    /// loaded; missing, unexpected and shape-mismatched keys are reported (<see cref="StateDictLoadReport"/>) and the
    /// module keeps its own values for the missing ones.
    /// </summary>
    public bool Strict { get; init; } = true;

    /// <summary>Buffers (not parameters) may be missing from the state dict even in strict mode (they keep their values).</summary>
    public bool AllowMissingBuffers { get; init; }

    /// <summary>The dtype must match too (checkpoints of our own runs); otherwise values are converted to the module's dtype.</summary>
    public bool ExactDtype { get; init; }

    /// <summary>
    /// The module's key <c>k</c> is the state dict's <c>Prefix + k</c>; state-dict keys without the prefix are not
    /// considered (e.g. <c>negatives.0.</c> for one negative of the bank's file). Default: none.
    /// </summary>
    public string Prefix { get; init; } = "";

    /// <summary>How to load non-strictly, for the strict-mode error (e.g. <c>--strict false</c>); null: not mentioned.</summary>
    public string? NonStrictHint { get; init; }
}

/// <summary>What a load did: every key not loaded, by reason.</summary>
public sealed record StateDictLoadReport
{
    /// <summary>Keys loaded (same name and shape).</summary>
    public required IReadOnlyList<string> Loaded { get; init; }

    /// <summary>Keys of the module not in the state dict (they keep the module's values).</summary>
    public required IReadOnlyList<string> Missing { get; init; }

    /// <summary>Keys of the state dict the module does not have (ignored).</summary>
    public required IReadOnlyList<string> Unexpected { get; init; }

    /// <summary>Keys in both with different shapes, as <c>key: file [..], model [..]</c> (not loaded).</summary>
    public required IReadOnlyList<string> ShapeMismatches { get; init; }

    /// <summary>Keys of the state dict the module recomputes (<see cref="IRecomputedStateKeys"/>), skipped by name.</summary>
    public required IReadOnlyList<string> Recomputed { get; init; }

    /// <summary>True when every key of the module was loaded and nothing else was in the state dict (recomputed keys aside).</summary>
    public bool IsExact => Missing.Count == 0 && Unexpected.Count == 0 && ShapeMismatches.Count == 0;

    /// <summary>
    /// One line per kind of key that was not loaded, every key listed (for a run log), e.g.
    /// <c>unexpected keys (9, ignored): g1.la.gamma, …</c>. Empty for an exact load.
    /// </summary>
    public IReadOnlyList<string> Describe()
    {
        var lines = new List<string>();
        if (Unexpected.Count > 0) lines.Add($"unexpected keys ({Unexpected.Count}, ignored): {string.Join(", ", Unexpected)}");
        if (Missing.Count > 0) lines.Add($"missing keys ({Missing.Count}, left at the model's initialisation): {string.Join(", ", Missing)}");
        if (ShapeMismatches.Count > 0) lines.Add($"shape mismatches ({ShapeMismatches.Count}, not loaded): {string.Join(", ", ShapeMismatches)}");
        return lines;
    }
}

/// <summary>A state dict does not fit the module in strict mode; the message names every mismatch and its likely cause.</summary>
public sealed class StateDictMismatchException(string message, StateDictLoadReport report) : McirException(message)
{
    /// <summary>What did not match.</summary>
    public StateDictLoadReport Report { get; } = report;
}

/// <summary>
/// The one way weights go into a module (PyTorch's <c>load_state_dict</c>): by state-dict key (parameters and
/// buffers), checked before anything is changed.
/// </summary>
public static class StateDictLoader
{
    /// <summary>Loads <paramref name="state"/> into <paramref name="module"/>, strictly unless <paramref name="strict"/> is false.</summary>
    /// <inheritdoc cref="Load(nn.Module, IReadOnlyDictionary{string, Tensor}, string, StateDictLoadOptions)"/>
    public static StateDictLoadReport Load(nn.Module module, IReadOnlyDictionary<string, Tensor> state, string where, bool strict = true) =>
        Load(module, state, where, new StateDictLoadOptions { Strict = strict });

    /// <summary>
    /// Copies the entries of <paramref name="state"/> into <paramref name="module"/>'s parameters and buffers of the same
    /// name (values converted to the module's dtype and device unless <see cref="StateDictLoadOptions.ExactDtype"/>).
    /// Keys the module recomputes (<see cref="IRecomputedStateKeys"/>) are skipped by name.
    /// </summary>
    /// <param name="module">The network.</param>
    /// <param name="state">Name → tensor (not modified, not disposed).</param>
    /// <param name="where">Names the source in errors, e.g. <c>weights 'x.pth'</c>.</param>
    /// <param name="options">Strict or not, see <see cref="StateDictLoadOptions"/>.</param>
    /// <returns>What was loaded and what was not (in strict mode only recomputed keys can be left out).</returns>
    /// <exception cref="StateDictMismatchException">Strict mode and the keys or shapes (or dtypes, with
    /// <see cref="StateDictLoadOptions.ExactDtype"/>) differ; the module is unchanged. The message lists every mismatch
    /// and says what it most likely means: only extra keys (e.g. branches the saving class defined but did not use) or
    /// a different architecture/options (missing keys, shape mismatches).</exception>
    public static StateDictLoadReport Load(nn.Module module, IReadOnlyDictionary<string, Tensor> state, string where, StateDictLoadOptions options) =>
        Match(module, state, where, options, dryRun: false);

    private static StateDictLoadReport Match(nn.Module module, IReadOnlyDictionary<string, Tensor> state, string where, StateDictLoadOptions options, bool dryRun)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(options);
        var own = module.state_dict();
        var recomputer = module as IRecomputedStateKeys;
        var buffers = options.AllowMissingBuffers ? module.named_buffers().Select(b => b.name).ToHashSet(StringComparer.Ordinal) : null;

        var loaded = new List<string>();
        var missing = new List<string>();
        var shapes = new List<string>();
        var dtypes = new List<string>();
        var pairs = new List<(Tensor Dst, Tensor Src)>();
        string prefix = options.Prefix;
        foreach (var (ownKey, dst) in own)
        {
            string key = prefix + ownKey;
            if (!state.TryGetValue(key, out var src))
            {
                if (buffers is null || !buffers.Contains(ownKey)) missing.Add(key);
                continue;
            }
            if (!src.shape.SequenceEqual(dst.shape)) { shapes.Add($"{key}: file {Shape(src.shape)}, model {Shape(dst.shape)}"); continue; }
            if (options.ExactDtype && src.dtype != dst.dtype) { dtypes.Add($"{key}: file {src.dtype}, model {dst.dtype}"); continue; }
            loaded.Add(key);
            pairs.Add((dst, src));
        }
        var recomputed = new List<string>();
        var unexpected = new List<string>();
        foreach (var key in state.Keys.Order(StringComparer.Ordinal))
        {
            if (!key.StartsWith(prefix, StringComparison.Ordinal) || own.ContainsKey(key[prefix.Length..])) continue;
            if (recomputer is not null && recomputer.IsRecomputed(key[prefix.Length..])) recomputed.Add(key);
            else unexpected.Add(key);
        }
        var report = new StateDictLoadReport
        {
            Loaded = loaded, Missing = missing, Unexpected = unexpected, ShapeMismatches = shapes, Recomputed = recomputed,
        };
        if (options.Strict && (!report.IsExact || dtypes.Count > 0))
            throw new StateDictMismatchException(Explain(module, where, report, dtypes, options.NonStrictHint), report);

        if (!dryRun)
            using (no_grad())
                foreach (var (dst, src) in pairs) dst.copy_(src);
        return report;
    }

    /// <summary>
    /// What <see cref="Load(nn.Module, IReadOnlyDictionary{string, Tensor}, string, StateDictLoadOptions)"/> would do,
    /// without changing the module (same errors): to check several modules before loading any.
    /// </summary>
    public static StateDictLoadReport Check(nn.Module module, IReadOnlyDictionary<string, Tensor> state, string where, StateDictLoadOptions options) =>
        Match(module, state, where, options, dryRun: true);

    private static string Explain(nn.Module module, string where, StateDictLoadReport r, List<string> dtypes, string? hint)
    {
        var parts = new List<string>();
        if (r.Missing.Count > 0) parts.Add($"missing keys ({r.Missing.Count}): {List(r.Missing)}");
        if (r.Unexpected.Count > 0) parts.Add($"unexpected keys ({r.Unexpected.Count}): {List(r.Unexpected)}");
        if (r.ShapeMismatches.Count > 0) parts.Add($"shape mismatches ({r.ShapeMismatches.Count}): {List(r.ShapeMismatches)}");
        if (dtypes.Count > 0) parts.Add($"dtype mismatches ({dtypes.Count}): {List(dtypes)}");
        string cause;
        if (r.Missing.Count == 0 && r.ShapeMismatches.Count == 0 && dtypes.Count == 0)
        {
            cause = "Every key of the model is there with the right shape; the extra keys look like parts of another class " +
                    "(e.g. unused branches the original code defines but never calls, or a training-only head)" +
                    (hint is null ? "." : $": load non-strictly ({hint}) to skip them.");
        }
        else
        {
            cause = "This looks like a different architecture or different options (missing keys or other shapes): are the " +
                    "model and its options (--model, --set, --scale) the ones the weights were trained with?" +
                    (hint is null ? "" : $" To start from the matching keys only (e.g. another scale's upsampler), load non-strictly ({hint}).");
        }
        return $"{where} does not fit the model ({module.GetType().Name}): {string.Join("; ", parts)}. {cause}";
    }

    private static string Shape(long[] shape) => "[" + string.Join(", ", shape) + "]";

    private static string List(IReadOnlyList<string> items, int max = 12) =>
        string.Join(", ", items.Take(max)) + (items.Count > max ? $", … ({items.Count - max} more)" : "");
}
