using System.Diagnostics;
using Mcir.Benchmarks;

// mcir-bench embeddings [--case NAME] [--batch 4] [--size 192] [--iterations 10] [--vgg-weights FILE]
// Without --case, every case runs in its own child process (clean RSS figures) and a Markdown table is printed.
string? Arg(string key) { int i = Array.IndexOf(args, key); return i >= 0 && i + 1 < args.Length ? args[i + 1] : null; }

if (args.Length == 0 || args[0] != "embeddings")
{
    Console.Error.WriteLine("usage: mcir-bench embeddings [--case resnet18-imagenet|resnet18-imagenet-nofold|vgg16-relu3_3] [--batch 4] [--size 192] [--iterations 10] [--vgg-weights FILE]");
    return 2;
}
int batch = int.Parse(Arg("--batch") ?? "4");
int size = int.Parse(Arg("--size") ?? "192");
int iterations = int.Parse(Arg("--iterations") ?? "10");
string? vgg = Arg("--vgg-weights");

if (Arg("--case") is { } one)
{
    var r = EmbeddingBenchmark.Run(one, batch, size, iterations: iterations, vggWeights: vgg);
    Console.WriteLine(EmbeddingBenchmark.Row(r));
    Console.WriteLine("weights: " + r.Weights);
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
