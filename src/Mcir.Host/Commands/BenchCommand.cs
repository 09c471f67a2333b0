using System.CommandLine;
using System.Text.Json.Nodes;
using Mcir.Abstractions.Models;
using Mcir.Core;
using Mcir.Core.Compute;
using Mcir.Core.Embeddings;
using Mcir.Core.ModelContrast;
using Mcir.Core.Runs;
using Microsoft.Extensions.DependencyInjection;

namespace Mcir.Host.Commands;

/// <summary><c>mcir-host bench</c>: the cost of SPN against plain training, on this machine.</summary>
internal static class BenchCommand
{
    public static Command Create(HostConsole console)
    {
        var model = new Option<string>("--model") { Description = "Registered model name", DefaultValueFactory = _ => "edsr-light" };
        var scale = new Option<int>("--scale") { Description = "Sets the model's upscale option", DefaultValueFactory = _ => 4 };
        var batch = new Option<int>("--batch") { Description = "Batch size", DefaultValueFactory = _ => 4 };
        var patch = new Option<int>("--lr-size") { Description = "LR patch size", DefaultValueFactory = _ => 48 };
        var negatives = new Option<int>("--negatives") { Description = "Number of negative models K", DefaultValueFactory = _ => 4 };
        var rounds = new Option<int>("--rounds") { Description = $"Timed rounds (after {Mcir.Core.Runs.StepBenchmark.WarmUpSteps} warm-up steps)", DefaultValueFactory = _ => 5 };
        var precision = new Option<NegativePrecision>("--negative-precision") { Description = "Arithmetic of the negatives' passes: Float32 (the authors' numbers), BFloat16, or Auto (bfloat16 where the CPU has it natively, else float32)", DefaultValueFactory = _ => NegativePrecision.Float32 };
        var device = new Option<string>("--device") { Description = "auto (the first CUDA device when the CUDA backend is present, else the CPU), cpu, cuda or cuda:N", DefaultValueFactory = _ => "auto" };
        var ranks = BenchRanks.RanksOption();
        var threadsPerRank = BenchRanks.ThreadsOption();
        var rankWorker = BenchRanks.WorkerOption();
        var longRun = new Option<long?>("--long") { Description = "Instead of timing: N L1 + SPN training iterations, printing the process's resident memory every 100 and its growth after warm-up" };
        var comparePytorch = new Option<bool>("--compare-pytorch") { Description = "Also time the PyTorch reference (edsr-light), rounds alternating with ours, and print the ratios" };
        var python = new Option<string?>("--python") { Description = "Python interpreter with torch for --compare-pytorch (default: the first of python3, /usr/bin/python3 that imports torch)" };
        var plugins = new PluginOptions();
        var command = new Command("bench", "Median training-step time of plain L1 and of L1 + SPN (VGG16 to relu3_3), and their ratio")
        {
            model, scale, batch, patch, negatives, rounds, precision, device,
            ranks, threadsPerRank, rankWorker, longRun, comparePytorch, python,
        };
        plugins.AddTo(command);
        command.SetAction(r =>
        {
            // Counts and sizes are checked before anything is probed or built: a zero would time nothing (NaN medians).
            foreach (var (option, least) in new[] { (rounds, 1), (batch, 1), (patch, 1), (scale, 1), (negatives, 1) })
                if (r.GetValue(option) is var value && value < least)
                    throw new McirException($"{option.Name} {value}: expected {least} or more");
            var on = TorchDevice.Resolve(r.GetValue(device), "--device");
            // The compute settings measured for each workload, as run measures them for its own: a plain L1 run's for the
            // plain step (not applied: switched to before each plain step), the SPN run's for the SPN step (applied: its
            // oneDNN ISA cap holds for the process). Not with --ranks: every rank keeps the engine's settings, as run
            // under MPI does; --long times nothing and runs the SPN step only.
            IsaChoice? plainChoice = null;
            int defaultThreads = TorchSharp.torch.get_num_threads();
            if (RunCommand.ProbeIsa && r.GetValue(ranks) is null)
            {
                if (r.GetValue(longRun) is null)
                    plainChoice = IsaProbeCommand.SelectFor(Workload(r.GetValue(model)!, r.GetValue(scale), r.GetValue(batch), r.GetValue(patch), 0, r.GetValue(device)!, spn: false),
                        plugins.Arguments(r), console.Error, apply: false, step: "the plain L1 step");
                IsaProbeCommand.SelectFor(Workload(r.GetValue(model)!, r.GetValue(scale), r.GetValue(batch), r.GetValue(patch), r.GetValue(negatives), r.GetValue(device)!, r.GetValue(precision)),
                    plugins.Arguments(r), console.Error, step: plainChoice is null ? "this run's step" : "the L1 + SPN step");
            }
            using var services = new ServiceCollection().AddMcirPlugins(plugins.Load(r)).BuildServiceProvider();
            var registry = services.GetRequiredService<IModelRegistry>();
            var section = new ModelSection { Name = r.GetValue(model)!, Options = new JsonObject { [RunComposition.UpscaleKey] = r.GetValue(scale) } };
            if (r.GetValue(ranks) is { } rankList)
                return BenchRanks.Run(r, console, rankList, r.GetValue(threadsPerRank), r.GetValue(rankWorker), () => RunComposition.CreateModel(registry, section, out _),
                    r.GetValue(batch), r.GetValue(patch), r.GetValue(scale), r.GetValue(rounds), on, $"{section.Name} x{r.GetValue(scale)}");
            // Timing does not depend on the embedding's weight values; random weights keep the benchmark offline.
            var spn = new SpnLossOptions { EmbeddingType = "vgg", Embedding = new VggEmbeddingOptions { AllowRandomWeights = true } };
            if (r.GetValue(longRun) is { } n)
                return BenchLong.Run(console, () => RunComposition.CreateModel(registry, section, out _), spn, r.GetValue(negatives),
                    r.GetValue(batch), r.GetValue(patch), r.GetValue(scale), n, r.GetValue(precision), on);
            using var pytorch = r.GetValue(comparePytorch) ? PytorchReference.Start(r.GetValue(python), section.Name, r.GetValue(scale),
                r.GetValue(batch), r.GetValue(patch), r.GetValue(negatives), TorchSharp.torch.get_num_threads(), console.Error) : null;
            console.Error.WriteLine($"bench: {section.Name} x{r.GetValue(scale)}, batch {r.GetValue(batch)} of {r.GetValue(patch)}x{r.GetValue(patch)} LR patches, K = {r.GetValue(negatives)}");
            var spnChoice = IsaProbe.Applied;
            var (beforePlain, beforeSpn) = plainChoice is null ? (null, null)
                : (IsaProbe.Switcher(plainChoice.Setting, defaultThreads), IsaProbe.Switcher(spnChoice?.Setting ?? new ComputeSetting(ComputeSetting.DefaultIsa), defaultThreads));
            var result = StepBenchmark.Run(() => RunComposition.CreateModel(registry, section, out _), spn, r.GetValue(negatives),
                r.GetValue(batch), r.GetValue(patch), r.GetValue(scale), rounds: r.GetValue(rounds), progress: console.Error.WriteLine,
                negativePrecision: r.GetValue(precision), device: on, afterRound: pytorch is null ? null : _ => pytorch.Round(),
                beforePlain: beforePlain, beforeSpn: beforeSpn);
            console.Out.WriteLine($"device: {TorchDevice.Describe(on)}");
            console.Out.WriteLine($"cpu: {CpuFeatures.Machine.Describe()}");
            console.Out.WriteLine($"threads: {result.Threads} libtorch threads (of {Environment.ProcessorCount} logical processors); {OneDnnIsa.Note}; {ConvolutionLayout.Note}; {NativeHeap.Note}; {FusedConvolution.Note}; {WinogradConvolution.Note}; {IntraOpParallel.Note}");
            if (plainChoice is not null) console.Out.WriteLine(PlainSettingsNote(plainChoice, spnChoice));
            if (IsaProbe.Note is { } probed) console.Out.WriteLine((plainChoice is null ? "" : "L1 + SPN step: ") + probed);
            console.Out.WriteLine($"precision: {r.GetValue(precision).Describe()}");
            console.Out.WriteLine($"plain L1 step:   median {result.PlainSeconds:F3} s");
            console.Out.WriteLine($"L1 + SPN (K={result.Negatives}, negatives in {r.GetValue(precision).Resolve().ToString().ToLowerInvariant()}): median {result.SpnSeconds:F3} s");
            console.Out.WriteLine($"ratio SPN / plain: {result.Ratio:F2}");
            pytorch?.Report(console.Out, result);
            return 0;
        });
        return command;
    }

    /// <summary>The line saying under which settings the plain rows were timed: the plain L1 workload's measured choice,
    /// of which only the memory format and thread count can differ from the SPN step's in one process (the ISA cap is
    /// the SPN workload's: it is fixed at the first kernel).</summary>
    internal static string PlainSettingsNote(IsaChoice plain, IsaChoice? spn)
    {
        ArgumentNullException.ThrowIfNull(plain);
        string isa = spn?.Isa ?? ComputeSetting.DefaultIsa;
        string timed = plain.Isa == isa ? ""
            : $"; its ISA cap ({new ComputeSetting(plain.Isa).Describe()}) cannot change within this process, so the plain rows ran under the SPN step's ({new ComputeSetting(isa).Describe()})";
        return $"plain L1 step: compute settings {plain.Describe()}{timed}";
    }

    /// <summary>The benchmark's step as a run configuration, for the ISA probe's child: the same model and shapes, and
    /// with <paramref name="spn"/> the same K and VGG16 embedding with random weights; without it, plain L1.</summary>
    internal static JsonObject Workload(string model, int scale, int batch, int lrSize, int negatives, string device,
        NegativePrecision precision = NegativePrecision.Float32, bool spn = true)
    {
        var root = new JsonObject
        {
            ["device"] = device,
            ["model"] = new JsonObject { ["name"] = model, ["options"] = new JsonObject { [RunComposition.UpscaleKey] = scale } },
            ["data"] = new JsonObject
            {
                ["train"] = new JsonObject { ["dataroot_gt"] = ".", ["scale"] = scale, ["gt_size"] = lrSize * scale },
                ["batch_size"] = batch,
            },
        };
        if (!spn)
        {
            root["loss"] = new JsonObject { ["reconstruction"] = "l1" };
            return root;
        }
        root["loss"] = new JsonObject { ["spn"] = new JsonObject { ["embedding_type"] = "vgg", ["embedding"] = new JsonObject { ["allow_random_weights"] = true }, ["negative_precision"] = precision.ToString().ToLowerInvariant() } };
        root["negatives"] = new JsonObject { ["steps"] = new JsonArray(Enumerable.Range(1, Math.Max(1, negatives)).Select(j => (JsonNode)(100 * j)).ToArray()), ["precision"] = precision.ToString().ToLowerInvariant() };
        return root;
    }
}
