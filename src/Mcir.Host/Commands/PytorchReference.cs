using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Mcir.Core;
using Mcir.Core.Runs;

namespace Mcir.Host.Commands;

/// <summary>
/// The PyTorch side of <c>mcir-host bench --compare-pytorch</c>: <c>benchmarks/pytorch/spn_bench.py</c> (embedded in
/// the host) run with <c>--serve</c> in a python3 that has torch. It builds the same shapes, warms up, prints a ready
/// line, then times one round (plain, spn_authors, spn_batched, and plain_cl, spn_batched_cl in channels-last: one
/// training step each) per <c>round</c> line on its
/// stdin and answers with one JSON line, so its rounds alternate with ours and neither side runs while the other is timed.
/// </summary>
internal sealed class PytorchReference : IDisposable
{
    /// <summary>The interpreters tried, in order, when <c>--python</c> is not given.</summary>
    internal static readonly string[] Candidates = ["python3", "/usr/bin/python3"];

    private const string Install = "install PyTorch for python3 (Debian/Ubuntu: apt-get install python3-torch) or give --python PATH";
    private readonly Process _process;
    private readonly string _script;
    private readonly string _python;
    private readonly List<string> _stderr = [];
    private readonly Dictionary<string, List<double>> _times = new() { ["plain"] = [], ["spn_authors"] = [], ["spn_batched"] = [], ["plain_cl"] = [], ["spn_batched_cl"] = [] };

    /// <summary>Variants an older script may not time (the channels-last copies).</summary>
    private static readonly HashSet<string> Optional = ["plain_cl", "spn_batched_cl"];

    private PytorchReference(Process process, string script, string python)
    {
        _process = process;
        _script = script;
        _python = python;
    }

    /// <summary>torch.__version__ of the reference.</summary>
    public string TorchVersion { get; private set; } = "";

    /// <summary>How the reference's native heap is set up, for the report line.</summary>
    public static string HeapNote => Mcir.Core.Compute.NativeHeap.EnvironmentEquivalent is { Count: > 0 } heap
        ? "native heap as ours (" + string.Join(" ", heap.Select(e => $"{e.Key}={e.Value}")) + ")"
        : "native heap from the environment";

    /// <summary>torch.get_num_threads() of the reference.</summary>
    public int Threads { get; private set; }

    /// <summary>Median seconds per step of each PyTorch variant over the rounds run so far.</summary>
    public double Median(string variant) => Mcir.Core.Runs.StepBenchmark.Median(_times[variant]);

    /// <summary>
    /// Finds the interpreter, starts the reference and waits for its warm-up to end.
    /// </summary>
    /// <exception cref="McirException">No interpreter with torch; the model is not edsr-light; the reference failed to start.</exception>
    public static PytorchReference Start(string? python, string model, int scale, int batch, int lrSize, int negatives, int threads, TextWriter log)
    {
        if (model != "edsr-light")
            throw new McirException($"--compare-pytorch: the PyTorch reference has the model edsr-light only, not '{model}'");
        if (scale is not (2 or 3 or 4))
            throw new McirException($"--compare-pytorch: the PyTorch reference has scales 2, 3 and 4, not {scale}");
        string interpreter = python ?? FindInterpreter()
            ?? throw new McirException($"--compare-pytorch: no python3 with torch found (tried {string.Join(", ", Candidates)}); {Install}");
        string script = Path.Combine(Path.GetTempPath(), $"mcir-spn-bench-{Environment.ProcessId}-{Guid.NewGuid():N}.py");
        using (var resource = typeof(PytorchReference).Assembly.GetManifestResourceStream("spn_bench.py")
            ?? throw new InvalidOperationException("the embedded spn_bench.py is missing from mcir-host"))
        using (var file = File.Create(script))
            resource.CopyTo(file);
        var info = new ProcessStartInfo(interpreter)
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        // The same native-heap settings as this process (glibc's defaults cost PyTorch page faults on every large tensor;
        // variables the user set are inherited as they are).
        foreach (var (name, value) in Mcir.Core.Compute.NativeHeap.EnvironmentEquivalent) info.Environment[name] = value;
        foreach (var arg in new[] { script, "--serve", "--model", model, "--scale", I(scale), "--batch", I(batch), "--lr-size", I(lrSize), "--negatives", I(negatives), "--threads", I(threads) })
            info.ArgumentList.Add(arg);
        Process process;
        try { process = Process.Start(info) ?? throw new McirException($"--python {interpreter}: could not be started"); }
        catch (System.ComponentModel.Win32Exception e)
        {
            File.Delete(script);
            throw new McirException($"--python {interpreter}: cannot run it ({e.Message}); {Install}");
        }
        var reference = new PytorchReference(process, script, interpreter);
        process.ErrorDataReceived += (_, e) => { if (e.Data is { } l) lock (reference._stderr) reference._stderr.Add(l); };
        process.BeginErrorReadLine();
        log.WriteLine($"pytorch reference: {interpreter} {Path.GetFileName(script)}: building and warming up ...");
        try
        {
            var ready = reference.ReadJson("start");
            if (ready["ready"]?.GetValue<bool>() != true) throw reference.Failure($"expected a ready line, got {ready.ToJsonString()}");
            reference.TorchVersion = ready["torch"]?.GetValue<string>() ?? "?";
            reference.Threads = ready["threads"]?.GetValue<int>() ?? 0;
        }
        catch
        {
            reference.Dispose();
            throw;
        }
        return reference;
    }

    /// <summary>Times one PyTorch round (the three variants, one step each).</summary>
    public void Round()
    {
        _process.StandardInput.WriteLine("round");
        _process.StandardInput.Flush();
        var line = ReadJson("a round");
        foreach (var (variant, times) in _times)
        {
            if (line[variant] is { } v) times.Add(v.GetValue<double>());
            else if (!Optional.Contains(variant)) throw Failure($"its round line has no '{variant}': {line.ToJsonString()}");
        }
    }

    /// <summary>Prints both sides' medians and the ratios ours / PyTorch with the issue's targets.</summary>
    public void Report(TextWriter output, StepBenchmarkResult ours)
    {
        double plain = Median("plain"), authors = Median("spn_authors"), batched = Median("spn_batched");
        double plainCl = _times["plain_cl"].Count > 0 ? Median("plain_cl") : double.NaN;
        double batchedCl = _times["spn_batched_cl"].Count > 0 ? Median("spn_batched_cl") : double.NaN;
        static string Cl(double s) => double.IsNaN(s) ? "" : $", channels_last {s:F3} s";
        output.WriteLine($"pytorch: torch {TorchVersion} ({_python}), {Threads} threads, the same shapes, {_times["plain"].Count} rounds alternating with ours, {HeapNote}");
        output.WriteLine($"pytorch plain L1 step:              median {plain:F3} s{Cl(plainCl)}");
        output.WriteLine($"pytorch L1 + SPN, authors' code:     median {authors:F3} s");
        output.WriteLine($"pytorch L1 + SPN, batched negatives: median {batched:F3} s{Cl(batchedCl)}");
        // Against PyTorch's faster memory format of each: its median, and round by round (each of ours against the
        // PyTorch round that ran right after it) the median of the ratios — a machine whose speed drifts between rounds
        // moves both sides of a round alike, so the latter is the steadier estimate when the machine is shared.
        var bestPlain = FasterFormat(_times["plain"], _times["plain_cl"]);
        var bestSpn = FasterFormat(_times["spn_batched"], _times["spn_batched_cl"]);
        output.WriteLine($"ratio ours / pytorch, plain:  {ours.PlainSeconds / Mcir.Core.Runs.StepBenchmark.Median(bestPlain):F2} of PyTorch's faster format (target <= 1.00)");
        output.WriteLine($"ratio ours / pytorch, SPN:    {ours.SpnSeconds / Mcir.Core.Runs.StepBenchmark.Median(bestSpn):F2} of the batched formulation in its faster format (target <= 0.85), {ours.SpnSeconds / authors:F2} of the authors'");
        output.WriteLine($"ratio ours / pytorch, paired rounds (median of per-round ratios): plain {PairedRatio(ours.PlainSteps, bestPlain):F2}, SPN {PairedRatio(ours.SpnSteps, bestSpn):F2}");
    }

    /// <summary>The step times of the faster of two formats by median (contiguous on a tie; the channels-last ones only if timed).</summary>
    internal static IReadOnlyList<double> FasterFormat(IReadOnlyList<double> contiguous, IReadOnlyList<double> channelsLast) =>
        channelsLast.Count > 0 && Mcir.Core.Runs.StepBenchmark.Median(channelsLast) < Mcir.Core.Runs.StepBenchmark.Median(contiguous) ? channelsLast : contiguous;

    /// <summary>Median over rounds of ours[r] / theirs[r] (as many rounds as both sides have).</summary>
    internal static double PairedRatio(IReadOnlyList<double> ours, IReadOnlyList<double> theirs)
    {
        int n = Math.Min(ours.Count, theirs.Count);
        if (n == 0) return double.NaN;
        return Mcir.Core.Runs.StepBenchmark.Median(Enumerable.Range(0, n).Select(r => ours[r] / theirs[r]));
    }

    public void Dispose()
    {
        try
        {
            if (!_process.HasExited)
            {
                try { _process.StandardInput.WriteLine("quit"); _process.StandardInput.Close(); } catch (IOException) { }
                if (!_process.WaitForExit(10_000)) _process.Kill();
            }
        }
        catch (InvalidOperationException) { }
        _process.Dispose();
        try { File.Delete(_script); } catch (IOException) { }
    }

    // The first candidate whose `import torch` succeeds.
    internal static string? FindInterpreter()
    {
        foreach (var candidate in Candidates)
        {
            try
            {
                var info = new ProcessStartInfo(candidate) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
                info.ArgumentList.Add("-c");
                info.ArgumentList.Add("import torch");
                using var p = Process.Start(info);
                if (p is null) continue;
                p.StandardOutput.ReadToEnd();
                p.StandardError.ReadToEnd();
                p.WaitForExit();
                if (p.ExitCode == 0) return candidate;
            }
            catch (System.ComponentModel.Win32Exception) { /* not installed */ }
        }
        return null;
    }

    private JsonObject ReadJson(string what)
    {
        var line = _process.StandardOutput.ReadLine();
        if (line is null)
        {
            _process.WaitForExit();
            throw Failure($"it stopped during {what} (exit code {_process.ExitCode})");
        }
        try { return JsonNode.Parse(line) as JsonObject ?? throw Failure($"expected a JSON object line, got '{line}'"); }
        catch (System.Text.Json.JsonException) { throw Failure($"expected a JSON line, got '{line}'"); }
    }

    // One line: what went wrong, the reference's last error line, and how to install torch when that is the cause.
    private McirException Failure(string what)
    {
        string last;
        lock (_stderr) last = _stderr.LastOrDefault(l => l.Trim().Length > 0)?.Trim() ?? "";
        string hint = last.Contains("No module named 'torch'", StringComparison.Ordinal) ? $"; {Install}" : "";
        return new McirException($"--compare-pytorch: the PyTorch reference ({_python}) failed: {what}{(last.Length > 0 ? $": {last}" : "")}{hint}");
    }

    private static string I(int v) => v.ToString(CultureInfo.InvariantCulture);
}
