using System.CommandLine;
using System.Diagnostics;
using Mcir.Benchmarks;

// mcir-bench embeddings [--case NAME] [--batch 4] [--size 192] [--iterations 10] [--vgg-weights FILE]
// Without --case, every case runs in its own child process (clean RSS figures) and a Markdown table is printed.
var caseOption = new Option<string?>("--case") { Description = "Run one case in this process (default: every case, each in a child process)" };
caseOption.AcceptOnlyFromAmong(EmbeddingBenchmark.Cases);
var batchOption = new Option<int>("--batch") { Description = "Images per forward", DefaultValueFactory = _ => 4 };
var sizeOption = new Option<int>("--size") { Description = "Image height and width (pixels)", DefaultValueFactory = _ => 192 };
var iterationsOption = new Option<int>("--iterations") { Description = "Timed iterations after one warm-up", DefaultValueFactory = _ => 10 };
var vggOption = new Option<string?>("--vgg-weights") { Description = "torchvision VGG16 weights (.pth/.safetensors) for the vgg16 case (default: random weights)" };

var embeddings = new Command("embeddings", "Embedding load, forward and backward timings and memory (docs/embeddings.md)")
{
    caseOption, batchOption, sizeOption, iterationsOption, vggOption,
};
embeddings.SetAction(r =>
{
    int batch = r.GetValue(batchOption), size = r.GetValue(sizeOption), iterations = r.GetValue(iterationsOption);
    string? vgg = r.GetValue(vggOption);
    if (r.GetValue(caseOption) is { } one)
    {
        var result = EmbeddingBenchmark.Run(one, batch, size, iterations: iterations, vggWeights: vgg);
        Console.WriteLine(EmbeddingBenchmark.Row(result));
        Console.WriteLine("weights: " + result.Weights);
        return 0;
    }

    Console.WriteLine(EmbeddingBenchmark.Header(batch, size));
    var notes = new List<string>();
    foreach (var c in EmbeddingBenchmark.Cases)
    {
        var psi = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add("--case");
        psi.ArgumentList.Add(c);
        if (!psi.Environment.ContainsKey("OMP_WAIT_POLICY")) psi.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) { Console.Error.WriteLine($"{c}: exit {p.ExitCode}"); return 1; }
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Console.WriteLine(lines[0]);
        notes.AddRange(lines.Skip(1).Select(l => $"- {c}: {l}"));
    }
    Console.WriteLine();
    foreach (var n in notes) Console.WriteLine(n);
    return 0;
});

// mcir-bench grouped-negatives [--negatives 4] [--batch 4] [--lr-size 48] [--scale 4] [--rounds 9]
var negativesOption = new Option<int>("--negatives") { Description = "Negative models K", DefaultValueFactory = _ => 4 };
var lrSizeOption = new Option<int>("--lr-size") { Description = "LR patch side (pixels)", DefaultValueFactory = _ => 48 };
var scaleOption = new Option<int>("--scale") { Description = "EDSR-light scale (2, 3, 4)", DefaultValueFactory = _ => 4 };
var roundsOption = new Option<int>("--rounds") { Description = "Alternating timed rounds", DefaultValueFactory = _ => 9 };
var groupedBatchOption = new Option<int>("--batch") { Description = "LR patches per batch", DefaultValueFactory = _ => 4 };
var grouped = new Command("grouped-negatives", "The K negatives' forwards as K calls against one grouped call (weights stacked)")
{
    negativesOption, groupedBatchOption, lrSizeOption, scaleOption, roundsOption,
};
grouped.SetAction(r =>
{
    Mcir.Core.Compute.OneDnnIsa.EnsureApplied(); // the engine's oneDNN cap, as mcir-host runs
    var result = GroupedNegativesBenchmark.Run(r.GetValue(negativesOption), r.GetValue(groupedBatchOption), r.GetValue(lrSizeOption),
        r.GetValue(scaleOption), rounds: r.GetValue(roundsOption));
    Console.WriteLine($"{Mcir.Core.Compute.OneDnnIsa.Note}; {TorchSharp.torch.get_num_threads()} libtorch threads");
    Console.WriteLine(result.Describe());
    return 0;
});

var root = new RootCommand("mcir-bench: measurements that are not tests (timings, memory)") { embeddings, grouped };
return root.Parse(args).Invoke();
