using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Mcir.Generators.Tests;

/// <summary>The pipeline caches: an unrelated edit reuses every step's output and regenerates nothing.</summary>
public sealed class IncrementalityTests
{
    private static readonly string[] TrackedSteps =
    [
        TrackingNames.Inspect,
        TrackingNames.Models,
        TrackingNames.Entries,
        TrackingNames.DuplicateNames,
        TrackingNames.Registrar,
    ];

    [Fact]
    public void Unrelated_edit_reuses_cached_outputs()
    {
        var compilation = GeneratorHarness.CreateCompilation(Sources.TinyNet, Sources.Denoiser, Sources.Unrelated);
        var driver = GeneratorHarness.CreateDriver().RunGenerators(compilation);
        var first = driver.GetRunResult().Results.Single();
        Assert.Equal(3, first.GeneratedSources.Length);

        // Edit the unrelated file (a new method), and add a new unrelated file.
        var unrelated = compilation.SyntaxTrees.Single(t => t.FilePath == "Input2.cs");
        var edited = unrelated.WithChangedText(unrelated.GetText().Replace(
            Sources.Unrelated.IndexOf("public static int Twice", StringComparison.Ordinal),
            0,
            "public static int Thrice(int x) => 3 * x;\n    "));
        var next = compilation
            .ReplaceSyntaxTree(unrelated, edited)
            .AddSyntaxTrees(CSharpSyntaxTree.ParseText("namespace Demo.More; public class Extra { }", GeneratorHarness.ParseOptions));
        driver = driver.RunGenerators(next);
        var second = driver.GetRunResult().Results.Single();

        foreach (var step in TrackedSteps)
        {
            Assert.True(second.TrackedSteps.TryGetValue(step, out var runs), $"Step '{step}' was not tracked.");
            var reasons = runs.SelectMany(run => run.Outputs).Select(output => output.Reason).ToArray();
            Assert.NotEmpty(reasons);
            Assert.All(reasons, reason => Assert.True(
                reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged,
                $"Step '{step}' output was {reason}."));
        }

        var outputs = second.TrackedOutputSteps.SelectMany(kv => kv.Value).SelectMany(run => run.Outputs).ToArray();
        Assert.NotEmpty(outputs);
        Assert.All(outputs, output => Assert.Equal(IncrementalStepRunReason.Cached, output.Reason));
        Assert.Equal(
            first.GeneratedSources.Select(s => s.SourceText.ToString()),
            second.GeneratedSources.Select(s => s.SourceText.ToString()));
    }

    [Fact]
    public void Editing_a_model_attribute_regenerates_that_model()
    {
        var compilation = GeneratorHarness.CreateCompilation(Sources.TinyNet, Sources.Denoiser);
        var driver = GeneratorHarness.CreateDriver().RunGenerators(compilation);

        var tree = compilation.SyntaxTrees.Single(t => t.FilePath == "Input0.cs");
        var changed = tree.WithChangedText(Microsoft.CodeAnalysis.Text.SourceText.From(
            Sources.TinyNet.Replace("A tiny network for tests", "A tiny network, edited", StringComparison.Ordinal)));
        driver = driver.RunGenerators(compilation.ReplaceSyntaxTree(tree, changed));
        var result = driver.GetRunResult().Results.Single();

        var models = result.TrackedSteps[TrackingNames.Models].SelectMany(run => run.Outputs).ToArray();
        Assert.Contains(models, output => output.Reason == IncrementalStepRunReason.Modified);
        Assert.Contains(models, output => output.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged);
        Assert.Contains("A tiny network, edited", result.GeneratedSources.Single(s => s.HintName == "Demo.Sr.TinyNet.g.cs").SourceText.ToString(), StringComparison.Ordinal);
    }
}
