using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Mcir.Core.Weights;
using static TorchSharp.torch;

namespace Mcir.Core.Compute;

/// <summary>What one probe child reported for one oneDNN ISA cap.</summary>
/// <param name="Isa">The <c>ONEDNN_MAX_CPU_ISA</c> value the child ran with.</param>
/// <param name="Failure">Null when it ran and agreed with the baseline; else why it is rejected (crash, exit code,
/// disagreement with the size of the error).</param>
/// <param name="StepSeconds">Median time of the child's training steps (forward, loss, backward), when it ran.</param>
/// <param name="MaxRelativeError">The larger of its forward and gradient disagreement with the baseline
/// (<see cref="IsaProbe.RelativeErrors"/>; 0 for the baseline itself), when it ran.</param>
public sealed record IsaProbeResult(string Isa, string? Failure, double? StepSeconds, double? MaxRelativeError)
{
    /// <summary>One line for logs: "AVX2 0.81 s" or "AVX512_CORE rejected (…)".</summary>
    public string Describe() => Failure is null
        ? $"{Isa} {StepSeconds!.Value.ToString("F2", CultureInfo.InvariantCulture)} s"
        : $"{Isa} rejected ({Failure})";
}

/// <summary>The cap chosen for a workload on this machine, with the measurements it rests on.</summary>
public sealed record IsaChoice(string Isa, string Baseline, IReadOnlyList<IsaProbeResult> Results, bool FromCache)
{
    /// <summary>For the run log and <c>bench</c>.</summary>
    public string Describe() =>
        $"oneDNN: ISA {Isa}, measured for this workload on this machine ({string.Join(", ", Results.Select(r => r.Describe()))}" +
        $"{(FromCache ? "; cached" : "")}; see IsaProbe)";
}

/// <summary>
/// Chooses libtorch's oneDNN instruction-set cap for one workload on this machine by measurement, as cuDNN's benchmark
/// mode chooses convolution algorithms: where the engine caps oneDNN for a known fault (<see cref="OneDnnIsa"/>: no
/// CPU caches reported, or Zen 5's AVX-512 kernels), the faults are in some kernels only (1×1 convolutions), so a network
/// without them can run at the full ISA — 2× faster on the machine where this was measured. Each candidate ISA runs the
/// workload's real training step in a child process (a crash kills only the child); it is accepted when its output, the
/// negatives' outputs and the embedding's features agree with the baseline cap's (the engine's safe default) within
/// <see cref="Tolerance"/> and every gradient within <see cref="GradientTolerance"/>, and the
/// fastest accepted one wins; the baseline wins ties and whenever nothing else is accepted. The choice is cached per
/// machine (CPU model, family, ISA flags, libtorch version) and workload in
/// <c>$XDG_CACHE_HOME/mcir/onednn-isa.json</c> (default <c>~/.cache/mcir/</c>).
/// </summary>
/// <remarks>
/// What the probe checks is the workload's step at its batch (up to 4) and patch size: convolutions that only other
/// shapes reach (validation images of another size, the negatives' K·B batch) are run by the same kernels in practice
/// but are not compared. The cap is a process-wide setting that oneDNN reads at its first kernel, so the host decides
/// before the first kernel, once the configuration has been checked (<c>TrainingRun.Execute</c>'s <c>beforeFirstKernel</c>); a user's <c>ONEDNN_MAX_CPU_ISA</c> always wins and disables the probe, as does
/// <c>MCIR_ISA_PROBE=off</c>.
/// </remarks>
public static class IsaProbe
{
    /// <summary>Largest accepted relative disagreement of a forward quantity (output, negatives, embedding features:
    /// max|a − b| / max|b|) with the baseline. float32 kernels that block their reductions differently differ by about
    /// 1e-6; the faults this guards against are off by 10⁻¹ to 10⁺¹, or NaN.</summary>
    public const double Tolerance = 1e-3;

    /// <summary>Largest accepted relative disagreement of a gradient (‖a − b‖₂ / ‖b‖₂): where a ReLU input or an L1
    /// residual is within rounding of zero, another summation order flips its derivative, which moves the gradients by
    /// up to about 1e-2 (measured: 2e-3); a wrong kernel moves them by far more.</summary>
    public const double GradientTolerance = 5e-2;

    /// <summary>Name prefix of the gradients in a probe's output file.</summary>
    public const string GradientPrefix = "grad.";

    /// <summary>Environment variable that turns the probe off (<c>off</c>).</summary>
    public const string SwitchVariable = "MCIR_ISA_PROBE";

    /// <summary>Metadata key of the child's median step time (seconds) in its output file.</summary>
    public const string SecondsKey = "step_seconds";

    /// <summary>
    /// The caps worth trying above <paramref name="baseline"/> on <paramref name="cpu"/>, widest first: <c>ALL</c> (no
    /// cap) and <c>AVX512_CORE</c> where AVX-512F exists, <c>AVX2</c> where AVX2 exists and the baseline is below it.
    /// </summary>
    public static IReadOnlyList<string> Candidates(CpuFeatures cpu, string baseline)
    {
        ArgumentNullException.ThrowIfNull(cpu);
        int rank = Rank(baseline);
        var list = new List<string>();
        if (cpu.Avx512F) { list.Add("ALL"); list.Add("AVX512_CORE"); }
        if (cpu.Avx2) list.Add("AVX2");
        return list.Where(isa => Rank(isa) > rank).ToList();
    }

    private static int Rank(string isa) => isa.Trim().ToUpperInvariant() switch
    {
        "SSE41" => 1, "AVX" => 2, "AVX2" => 3, "AVX2_VNNI" or "AVX2_VNNI_2" => 4,
        "AVX512_CORE" => 5, "AVX512_CORE_VNNI" => 6, "AVX512_CORE_BF16" => 7, "AVX512_CORE_FP16" => 8,
        "AVX512_CORE_AMX" or "AVX512_CORE_AMX_FP16" => 9, "ALL" => 10, _ => 0,
    };

    /// <summary>Null when the probe may run in this process; else why not (a user's cap, the switch, no engine cap).</summary>
    public static string? ReasonNotToProbe()
    {
        if (string.Equals(Environment.GetEnvironmentVariable(SwitchVariable), "off", StringComparison.OrdinalIgnoreCase)) return $"{SwitchVariable}=off";
        if (OneDnnIsa.UserCap is not null) return "ONEDNN_MAX_CPU_ISA set by the environment";
        if (OneDnnIsa.EngineCap is null) return "no cap in force";
        return null;
    }

    /// <summary>The cache file: <c>$XDG_CACHE_HOME/mcir/onednn-isa.json</c>, default <c>~/.cache/mcir/onednn-isa.json</c>.</summary>
    public static string DefaultCachePath()
    {
        string root = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } x ? x
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(root, "mcir", "onednn-isa.json");
    }

    /// <summary>This machine's part of a cache key: CPU model, family, ISA flags and the libtorch build.</summary>
    public static string MachineKey(CpuFeatures cpu) =>
        $"{cpu.ModelName}|family {cpu.Family}|{string.Join(",", cpu.Flags.Where(f => f.StartsWith("avx", StringComparison.Ordinal) || f.StartsWith("amx", StringComparison.Ordinal)).Order(StringComparer.Ordinal))}" +
        $"|TorchSharp {typeof(TorchSharp.torch).Assembly.GetName().Version}";

    /// <summary>A short hash of a workload description (e.g. the run's model and shapes), for the cache key.</summary>
    public static string WorkloadKey(string description) =>
        Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(description)))[..16].ToLowerInvariant();

    /// <summary>
    /// The cap for <paramref name="workload"/>: from the cache when this machine measured it before, else by running
    /// <paramref name="runChild"/> for the baseline and each candidate and comparing what they wrote.
    /// </summary>
    /// <param name="workload">Cache key of the workload (see <see cref="WorkloadKey"/>).</param>
    /// <param name="baseline">The engine's safe cap (<see cref="OneDnnIsa.EngineCap"/>), the reference of the comparison.</param>
    /// <param name="candidates">Caps to try (<see cref="Candidates"/>).</param>
    /// <param name="runChild">Runs the workload's probe under the given cap, writing its safetensors file (output,
    /// gradients, <see cref="SecondsKey"/> metadata) to the given path; returns null on success, else the failure
    /// (e.g. "killed by SIGFPE").</param>
    /// <param name="cachePath">The cache file (<see cref="DefaultCachePath"/>).</param>
    /// <param name="machine">This machine's key (<see cref="MachineKey"/>).</param>
    /// <exception cref="McirException">The baseline itself failed: the workload cannot run here (the child's error).</exception>
    public static IsaChoice Choose(string workload, string baseline, IReadOnlyList<string> candidates, Func<string, string, string?> runChild,
        string cachePath, string machine)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        ArgumentNullException.ThrowIfNull(runChild);
        string key = machine + "|" + workload;
        if (ReadCache(cachePath, key) is { } cached) return cached with { FromCache = true };

        string dir = Path.Combine(Path.GetTempPath(), $"mcir-isa-probe-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            string basePath = Path.Combine(dir, "baseline.safetensors");
            if (runChild(baseline, basePath) is { } baseFailure)
                throw new McirException($"the ISA probe's baseline run ({baseline}) failed: {baseFailure}");
            using var reference = SafetensorsFile.Read(basePath, "ISA probe output");
            var results = new List<IsaProbeResult> { new(baseline, null, Seconds(reference), 0) };
            foreach (var isa in candidates)
            {
                string path = Path.Combine(dir, isa + ".safetensors");
                if (runChild(isa, path) is { } failure) { results.Add(new(isa, failure, null, null)); continue; }
                using var probe = SafetensorsFile.Read(path, "ISA probe output");
                var (forward, gradient) = RelativeErrors(reference, probe);
                string? disagreement = forward > Tolerance || !double.IsFinite(forward)
                    ? $"disagrees with {baseline}: relative error {Format(forward)} in the forward pass"
                    : gradient > GradientTolerance || !double.IsFinite(gradient) ? $"disagrees with {baseline}: relative error {Format(gradient)} in the gradients" : null;
                double err = Math.Max(forward, gradient);
                results.Add(new(isa, disagreement, Seconds(probe), err));
            }
            // The fastest accepted cap; the baseline unless another is faster.
            var best = results.Where(r => r.Failure is null).OrderBy(r => r.StepSeconds).First();
            var choice = new IsaChoice(best.Isa, baseline, results, false);
            WriteCache(cachePath, key, choice);
            return choice;
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private static double Seconds(TensorFile f) =>
        f.Metadata.TryGetValue(SecondsKey, out var s) && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v
            : throw new InvalidDataException($"ISA probe output has no '{SecondsKey}' metadata");

    private static string Format(double e) => double.IsFinite(e) ? e.ToString("G3", CultureInfo.InvariantCulture) : "non-finite";

    /// <summary>
    /// How far <paramref name="probe"/> is from <paramref name="reference"/>: the largest max|a − b| / max|b| over the
    /// forward tensors, and the largest ‖a − b‖₂ / ‖b‖₂ over the gradients (<see cref="GradientPrefix"/>), each tensor
    /// with its own scale (an all-zero reference compares absolutely). A missing tensor, another shape or a non-finite
    /// value gives +∞. Elementwise ATen operations only: no oneDNN kernel runs.
    /// </summary>
    public static (double Forward, double Gradient) RelativeErrors(TensorFile reference, TensorFile probe)
    {
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(probe);
        var other = probe.Tensors.ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        double forward = 0, gradient = 0;
        foreach (var (name, b) in reference.Tensors)
        {
            bool isGradient = name.StartsWith(GradientPrefix, StringComparison.Ordinal);
            double e;
            if (!other.TryGetValue(name, out var a) || !a.shape.SequenceEqual(b.shape)) e = double.PositiveInfinity;
            else
            {
                using var scope = NewDisposeScope();
                var a64 = a.to(ScalarType.Float64);
                var b64 = b.to(ScalarType.Float64);
                if (b64.numel() == 0) e = 0;
                else if (!a64.isfinite().all().item<bool>()) e = double.PositiveInfinity;
                else if (isGradient)
                {
                    double scale = b64.norm().item<double>(), diff = (a64 - b64).norm().item<double>();
                    e = scale > 0 ? diff / scale : diff;
                }
                else
                {
                    double scale = b64.abs().max().item<double>(), diff = (a64 - b64).abs().max().item<double>();
                    e = scale > 0 ? diff / scale : diff;
                }
            }
            if (isGradient) gradient = Math.Max(gradient, e);
            else forward = Math.Max(forward, e);
        }
        return (forward, gradient);
    }

    private static IsaChoice? ReadCache(string path, string key)
    {
        try
        {
            if (!File.Exists(path)) return null;
            var root = JsonNode.Parse(File.ReadAllText(path)) as JsonObject;
            if (root?[key] is not JsonObject entry) return null;
            return entry.Deserialize<IsaChoice>(CacheJson);
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            return null; // an unreadable cache is measured again and rewritten
        }
    }

    private static void WriteCache(string path, string key, IsaChoice choice)
    {
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            JsonObject root;
            try { root = File.Exists(path) ? JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? [] : []; }
            catch (JsonException) { root = []; }
            root[key] = JsonSerializer.SerializeToNode(choice, CacheJson);
            string tmp = path + $".{Environment.ProcessId}.tmp";
            File.WriteAllText(tmp, root.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            File.Move(tmp, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A read-only home: the choice holds for this process and is measured again next time.
        }
    }

    private static readonly JsonSerializerOptions CacheJson = new(JsonSerializerDefaults.Web);
}
