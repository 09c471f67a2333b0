using System.Globalization;
using System.Text.RegularExpressions;
using Mcir.Core.Compute;
using Mcir.Host.Commands;

namespace Mcir.Host.Tests;

/// <summary>
/// <c>bench --compare-pytorch</c> (against a fake interpreter speaking the reference's line protocol, and against a real
/// python3 with torch where one is installed) and <c>bench --long</c>'s memory records. Not timed: tiny shapes, 1–3 steps.
/// </summary>
public class BenchCommandTests
{
    private static readonly string[] Tiny = ["--batch", "1", "--lr-size", "8", "--scale", "2", "--negatives", "1"];

    // A stand-in for python3: ignores the script, records its arguments and commands, answers with fixed timings.
    private const string FakePython = """
        #!/bin/sh
        dir=$(dirname "$0")
        echo "$@" > "$dir/args.txt"
        env | grep '^MALLOC_' | sort > "$dir/env.txt"
        echo '{"ready": true, "torch": "0.0-fake", "python": "fake", "threads": 1}'
        n=0
        while read -r cmd; do
          echo "$cmd" >> "$dir/commands.txt"
          case "$cmd" in
            round) n=$((n+1))
              if [ $n -eq 1 ]; then echo '{"plain": 0.5, "spn_authors": 2.0, "spn_batched": 1.0, "plain_cl": 0.4, "spn_batched_cl": 1.5}'
              else echo '{"plain": 0.7, "spn_authors": 3.0, "spn_batched": 1.4, "plain_cl": 0.6, "spn_batched_cl": 1.7}'; fi ;;
            quit) exit 0 ;;
          esac
        done
        """;

    private const string PythonWithoutTorch = """
        #!/bin/sh
        echo "Traceback (most recent call last):" >&2
        echo "ModuleNotFoundError: No module named 'torch'" >&2
        exit 1
        """;

    private static string WriteScript(TempDir tmp, string name, string text)
    {
        string path = Path.Combine(tmp.Path, name);
        File.WriteAllText(path, text.Replace("\r\n", "\n") + "\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    private static double Number(string output, string pattern)
    {
        var m = Regex.Match(output, pattern, RegexOptions.Multiline);
        Assert.True(m.Success, $"no line matching {pattern} in:\n{output}");
        return double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    [Fact]
    public void PairedRatio_IsTheMedianOfPerRoundRatios()
    {
        // Rounds 1–3 of ours against the same rounds of theirs: ratios 0.8, 0.4 (theirs slow that round), 0.9 → 0.8.
        Assert.Equal(0.8, Mcir.Host.Commands.PytorchReference.PairedRatio([0.8, 0.4, 0.9], [1.0, 1.0, 1.0]), 12);
        Assert.Equal(0.75, Mcir.Host.Commands.PytorchReference.PairedRatio([1.0, 3.0], [2.0, 3.0]), 12);   // median of 0.5, 1.0
        Assert.Equal(2.0, Mcir.Host.Commands.PytorchReference.PairedRatio([2.0, 9.0], [1.0]), 12);          // rounds both sides have
        Assert.True(double.IsNaN(Mcir.Host.Commands.PytorchReference.PairedRatio([], [1.0])));
    }

    [Fact]
    public void FasterFormat_IsTheOneWithTheSmallerMedian()
    {
        double[] nchw = [1.0, 1.4, 1.2], cl = [1.5, 0.9, 1.1];                                  // medians 1.2, 1.1
        Assert.Same(cl, Mcir.Host.Commands.PytorchReference.FasterFormat(nchw, cl));
        Assert.Same(nchw, Mcir.Host.Commands.PytorchReference.FasterFormat(nchw, [1.3, 1.2, 1.25]));
        Assert.Same(nchw, Mcir.Host.Commands.PytorchReference.FasterFormat(nchw, [1.2]));      // a tie: contiguous
        Assert.Same(nchw, Mcir.Host.Commands.PytorchReference.FasterFormat(nchw, []));         // not timed
    }

    [Fact]
    public void PlainWorkload_IsTheSameModelAndShapesWithL1Only_AndItsSettingsLineSaysWhatRan()
    {
        var plain = BenchCommand.Workload("edsr-light", 4, 4, 48, 0, "cpu", spn: false);
        var spn = BenchCommand.Workload("edsr-light", 4, 4, 48, 4, "cpu");
        var boundPlain = Mcir.Core.Runs.RunComposition.Bind(plain);
        var boundSpn = Mcir.Core.Runs.RunComposition.Bind(spn);
        Assert.Null(boundPlain.Loss.Spn);
        Assert.Equal("l1", boundPlain.Loss.Reconstruction);
        Assert.NotNull(boundSpn.Loss.Spn);
        Assert.Equal((boundSpn.Model.Name, boundSpn.Model.Options.ToJsonString()), (boundPlain.Model.Name, boundPlain.Model.Options.ToJsonString()));
        Assert.Equal((boundSpn.Data.BatchSize, boundSpn.Data.Train.GtSize, boundSpn.Data.Train.Scale), (boundPlain.Data.BatchSize, boundPlain.Data.Train.GtSize, boundPlain.Data.Train.Scale));
        // Two workloads: each is measured and cached on its own.
        Assert.NotEqual(Mcir.Core.Runs.IsaProbeRun.WorkloadDescription(spn), Mcir.Core.Runs.IsaProbeRun.WorkloadDescription(plain));

        static IsaChoice Choice(ComputeSetting s) => new(s, new ComputeSetting(ComputeSetting.DefaultIsa), [new IsaProbeResult(s, null, 0.4, 0)], FromCache: false);
        var contiguous = Choice(new ComputeSetting(ComputeSetting.DefaultIsa, MemoryFormat.Contiguous));
        Assert.Equal("plain L1 step: compute settings measured for this workload on this machine: default ISA, model contiguous (default ISA, model contiguous 0.40 s; see IsaProbe)",
            BenchCommand.PlainSettingsNote(contiguous, Choice(new ComputeSetting(ComputeSetting.DefaultIsa))));
        // The ISA cap is the process's: where the plain workload measured another, the line says the plain rows did not run under it.
        Assert.EndsWith("; its ISA cap (AVX2) cannot change within this process, so the plain rows ran under the SPN step's (default ISA)",
            BenchCommand.PlainSettingsNote(Choice(new ComputeSetting("AVX2")), null));
    }

    [Fact]
    public void ComparePytorch_PrintsBothSidesMediansAndRatios_RoundsAlternatingWithTheReference()
    {
        if (!OperatingSystem.IsLinux()) return; // the fake interpreter is a shell script
        using var tmp = new TempDir();
        string fake = WriteScript(tmp, "python-fake", FakePython);

        var (code, stdout, stderr) = HostRunner.Run(["bench", "--compare-pytorch", "--python", fake, "--rounds", "2", .. Tiny]);

        Assert.True(code == 0, stdout + stderr);
        // The reference got the same shapes, in serving mode, and one command per round, then quit.
        string args = File.ReadAllText(Path.Combine(tmp.Path, "args.txt"));
        Assert.Contains("--serve --model edsr-light --scale 2 --batch 1 --lr-size 8 --negatives 1 --threads ", args);
        Assert.Equal(["round", "round", "quit"], File.ReadAllLines(Path.Combine(tmp.Path, "commands.txt")));
        Assert.Contains("pytorch: torch 0.0-fake", stdout);
        // Both sides allocate the same way: where the engine keeps the native heap, the reference is given the same
        // glibc settings as environment variables (else it inherits the environment, whose MALLOC_* made ours keep
        // glibc's defaults).
        var env = File.ReadAllLines(Path.Combine(tmp.Path, "env.txt"));
        if (stdout.Contains("native heap: kept between steps", StringComparison.Ordinal))
        {
            Assert.Equal(["MALLOC_MMAP_MAX_=0", "MALLOC_TOP_PAD_=268435456", "MALLOC_TRIM_THRESHOLD_=2147483647"], env);
            Assert.Contains("rounds alternating with ours, native heap as ours (MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647 MALLOC_TOP_PAD_=268435456)", stdout);
        }
        else
        {
            Assert.Equal(Environment.GetEnvironmentVariables().Keys.Cast<string>().Where(k => k.StartsWith("MALLOC_", StringComparison.Ordinal)).Order(StringComparer.Ordinal),
                env.Select(l => l[..l.IndexOf('=')]));
            Assert.Contains("native heap from the environment", stdout);
        }
        // Medians of the fake's two rounds, by hand: (0.5 + 0.7) / 2, (2.0 + 3.0) / 2, (1.0 + 1.4) / 2; channels-last
        // (0.4 + 0.6) / 2 and (1.5 + 1.7) / 2.
        Assert.Equal(0.6, Number(stdout, @"^pytorch plain L1 step: +median ([0-9.]+) s"), 6);
        Assert.Equal(0.5, Number(stdout, @"^pytorch plain L1 step: +median [0-9.]+ s, channels_last ([0-9.]+) s"), 6);
        Assert.Equal(1.6, Number(stdout, @"^pytorch L1 \+ SPN, batched negatives: +median [0-9.]+ s, channels_last ([0-9.]+) s"), 6);
        Assert.Equal(2.5, Number(stdout, @"^pytorch L1 \+ SPN, authors' code: +median ([0-9.]+) s"), 6);
        Assert.Equal(1.2, Number(stdout, @"^pytorch L1 \+ SPN, batched negatives: +median ([0-9.]+) s"), 6);
        double plain = Number(stdout, @"^plain L1 step: +median ([0-9.]+) s");
        double spn = Number(stdout, @"^L1 \+ SPN \(K=1[^)]*\): median ([0-9.]+) s");
        // Ratios against PyTorch's faster format of each (plain: channels-last 0.5; SPN: NCHW 1.2), printed with 2
        // decimals from unrounded medians; ours are printed with 3: 0.006 covers both roundings.
        Assert.Equal(plain / 0.5, Number(stdout, @"^ratio ours / pytorch, plain: +([0-9.]+)"), 0.006);
        Assert.Equal(spn / 1.2, Number(stdout, @"^ratio ours / pytorch, SPN: +([0-9.]+) of the batched"), 0.006);
        Assert.Equal(spn / 2.5, Number(stdout, @"of the batched formulation in its faster format \(target <= 0.85\), ([0-9.]+) of the authors'"), 0.006);
        // Paired rounds: each of our rounds against the same round of PyTorch's faster format (plain: channels-last
        // 0.4, 0.6; SPN: NCHW 1.0, 1.4), the median of the two ratios = their mean. Our round times are printed with 3
        // decimals (each within 0.0005 s): 0.01 covers that on these tiny steps.
        var rounds = Regex.Matches(stderr, @"^round (\d)/2: plain ([0-9.]+) s, spn ([0-9.]+) s", RegexOptions.Multiline)
            .Select(m => (Plain: double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture), Spn: double.Parse(m.Groups[3].Value, CultureInfo.InvariantCulture)))
            .ToArray();
        Assert.Equal(2, rounds.Length);
        Assert.Equal((rounds[0].Plain / 0.4 + rounds[1].Plain / 0.6) / 2, Number(stdout, @"^ratio ours / pytorch, paired rounds \(median of per-round ratios\): plain ([0-9.]+)"), 0.01);
        Assert.Equal((rounds[0].Spn / 1.0 + rounds[1].Spn / 1.4) / 2, Number(stdout, @"^ratio ours / pytorch, paired rounds \(median of per-round ratios\): plain [0-9.]+, SPN ([0-9.]+)"), 0.01);
        Assert.Contains("cpu: ", stdout);
        Assert.Contains("threads: ", stdout);
    }

    [Fact]
    public void ComparePytorch_WithTheInstalledPython_WhenItHasTorch()
    {
        if (PytorchReference.FindInterpreter() is null) return; // no python3 with torch on this machine
        var (code, stdout, stderr) = HostRunner.Run(["bench", "--compare-pytorch", "--rounds", "1", .. Tiny]);

        Assert.True(code == 0, stdout + stderr);
        Assert.Matches(@"pytorch: torch \d+\.\d+", stdout);
        Assert.True(Number(stdout, @"^pytorch plain L1 step: +median ([0-9.]+) s") > 0);
        Assert.True(Number(stdout, @"^ratio ours / pytorch, plain: +([0-9.]+)") > 0);
        Assert.True(Number(stdout, @"^ratio ours / pytorch, SPN: +([0-9.]+)") > 0);
    }

    [Fact]
    public void ComparePytorch_InterpreterWithoutTorch_IsOneErrorLineSayingHowToInstall()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var tmp = new TempDir();
        string python = WriteScript(tmp, "python-no-torch", PythonWithoutTorch);

        var (code, stdout, stderr) = HostRunner.Run(["bench", "--compare-pytorch", "--python", python, .. Tiny]);

        UserErrorTests.AssertUserError(code, stdout, stderr, "No module named 'torch'", "apt-get install python3-torch");
        Assert.DoesNotContain("plain L1 step", stdout); // stopped before our side ran
    }

    [Fact]
    public void ComparePytorch_MissingInterpreter_IsOneErrorLineSayingHowToInstall()
    {
        using var tmp = new TempDir();
        string missing = Path.Combine(tmp.Path, "missing", "python3");

        var (code, stdout, stderr) = HostRunner.Run(["bench", "--compare-pytorch", "--python", missing, .. Tiny]);

        UserErrorTests.AssertUserError(code, stdout, stderr, $"--python {missing}: cannot run it", "apt-get install python3-torch");
        Assert.Single((stdout + stderr).Split('\n'), l => l.StartsWith("error:", StringComparison.Ordinal));
    }

    [Fact]
    public void ComparePytorch_OtherModel_IsAnError()
    {
        var (code, stdout, stderr) = HostRunner.Run(["bench", "--compare-pytorch", "--model", "edsr", .. Tiny]);
        UserErrorTests.AssertUserError(code, stdout, stderr, "--compare-pytorch: the PyTorch reference has the model edsr-light only, not 'edsr'");
    }

    [Fact]
    public void Long_PrintsAMemoryRecordAtWarmupAndEndAndTheGrowth()
    {
        if (!OperatingSystem.IsLinux()) return; // /proc/self/status
        var (code, stdout, stderr) = HostRunner.Run(["bench", "--long", "3", .. Tiny]);

        Assert.True(code == 0, stdout + stderr);
        // N = 3: warm-up at max(1, min(N / 10, 1000)) = 1, then the last iteration (no multiple of 100 in between).
        var records = Regex.Matches(stdout, @"^iteration (\d+): RSS ([0-9.]+) MB, managed heap ([0-9.]+) MB, live tensors (\d+)", RegexOptions.Multiline);
        Assert.Equal(["1", "3"], records.Select(m => m.Groups[1].Value));
        double warm = double.Parse(records[0].Groups[2].Value, CultureInfo.InvariantCulture);
        double last = double.Parse(records[1].Groups[2].Value, CultureInfo.InvariantCulture);
        Assert.InRange(warm, 10, 1e6); // a process with libtorch loaded holds tens of MB at least
        Assert.Equal(warm, Number(stdout, @"^RSS after warm-up \(iteration 1\): ([0-9.]+) MB"), 6);
        Assert.Equal(last, Number(stdout, @"final \(iteration 3\): ([0-9.]+) MB"), 6);
        // The growth is computed from unrounded bytes; the printed MB have 0.05 MB rounding each.
        Assert.Equal(100 * (last - warm) / warm, Number(stdout, @"growth ([-+0-9.]+) %"), 0.1);
        // Every iteration frees its tensors: the live count does not grow between the records.
        Assert.Equal(records[0].Groups[4].Value, records[1].Groups[4].Value);
        // glibc: what malloc holds from the system, per record and as a growth line.
        var held = Regex.Matches(stdout, @"^iteration \d+: .*, native heap held ([0-9.]+) MB$", RegexOptions.Multiline);
        Assert.Equal(2, held.Count);
        double heldWarm = double.Parse(held[0].Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.InRange(heldWarm, 1, 1e6);
        Assert.Equal(heldWarm, Number(stdout, @"^native heap held after warm-up: ([0-9.]+) MB"), 6);
    }

    [Theory]
    [InlineData("--rounds", "0")]
    [InlineData("--batch", "0")]
    [InlineData("--lr-size", "-1")]
    [InlineData("--negatives", "0")]
    [InlineData("--scale", "0")]
    public void ZeroCountsAndSizes_AreOneErrorLineEachBeforeAnythingRuns(string option, string value)
    {
        // The tiny shapes, one rounds, with the option under test replaced by the bad value (each option once).
        var args = new List<string> { "bench" };
        string[] given = [.. Tiny, "--rounds", "1"];
        for (int i = 0; i < given.Length; i += 2)
            args.AddRange(given[i] == option ? [option, value] : [given[i], given[i + 1]]);
        var (code, stdout, stderr) = HostRunner.Run([.. args]);
        UserErrorTests.AssertUserError(code, stdout, stderr, $"{option} {value}: expected 1 or more");
        Assert.DoesNotContain("median", stdout); // no NaN medians
    }

    [Fact]
    public void Long_ZeroIterations_IsAnError()
    {
        var (code, stdout, stderr) = HostRunner.Run(["bench", "--long", "0", .. Tiny]);
        UserErrorTests.AssertUserError(code, stdout, stderr, "--long 0: expected 1 or more iterations");
    }
}
