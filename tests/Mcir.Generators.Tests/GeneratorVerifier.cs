using System.Runtime.CompilerServices;
using System.Text;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Testing;
using Microsoft.CodeAnalysis.Testing;
using Microsoft.CodeAnalysis.Text;

namespace Mcir.Generators.Tests;

/// <summary>
/// <see cref="CSharpSourceGeneratorTest{TSourceGenerator, TVerifier}"/> with local references only, plus snapshot files:
/// the expected generated code of a case lives in <c>Snapshots/&lt;case&gt;/&lt;hint name&gt;</c>. Set
/// <c>MCIR_UPDATE_SNAPSHOTS=1</c> to rewrite the snapshot files from the generator's current output. The snapshots hold
/// <c>GENERATOR_VERSION</c> where the generated <c>[GeneratedCode]</c> names the generator's assembly version (the
/// package version of Directory.Build.props), so a version change does not change them.
/// </summary>
internal static class GeneratorVerifier
{
    private const string UpdateVariable = "MCIR_UPDATE_SNAPSHOTS";
    private const string VersionToken = "GENERATOR_VERSION";

    private static string GeneratedCode(string version) => $"GeneratedCode(\"Mcir.Generators\", \"{version}\")";

    private static string GeneratorVersion => typeof(McirModelGenerator).Assembly.GetName().Version!.ToString();

    /// <summary>A test over <paramref name="sources"/> (markup such as <c>{|MCIR001:Name|}</c> declares expected diagnostics).</summary>
    public static Test Create(params string[] sources)
    {
        var test = new Test();
        foreach (var source in sources)
        {
            test.TestState.Sources.Add(source);
        }

        return test;
    }

    /// <summary>Checks the generated files of <paramref name="sources"/> against <c>Snapshots/<paramref name="caseName"/>/</c>.</summary>
    public static async Task VerifySnapshotsAsync(string caseName, string[] sources, [CallerFilePath] string callerPath = "")
    {
        var snapshotFolder = Path.Combine(AppContext.BaseDirectory, "Snapshots", caseName);
        if (Environment.GetEnvironmentVariable(UpdateVariable) == "1")
        {
            snapshotFolder = Path.Combine(Path.GetDirectoryName(callerPath)!, "Snapshots", caseName);
            WriteSnapshots(snapshotFolder, sources);
        }

        Assert.True(Directory.Exists(snapshotFolder), $"No snapshots for '{caseName}'; run once with {UpdateVariable}=1.");
        var test = Create(sources);
        foreach (var file in Directory.GetFiles(snapshotFolder, "*.cs").OrderBy(f => f, StringComparer.Ordinal))
        {
            var text = (await File.ReadAllTextAsync(file)).Replace(GeneratedCode(VersionToken), GeneratedCode(GeneratorVersion), StringComparison.Ordinal);
            test.TestState.GeneratedSources.Add((typeof(McirModelGenerator), Path.GetFileName(file), SourceText.From(text, Encoding.UTF8)));
        }

        await test.RunAsync();
    }

    private static void WriteSnapshots(string folder, string[] sources)
    {
        var (_, diagnostics, result) = GeneratorHarness.Run(sources);
        Assert.Empty(diagnostics);
        if (Directory.Exists(folder))
        {
            Directory.Delete(folder, recursive: true);
        }

        Directory.CreateDirectory(folder);
        foreach (var generated in result.Results.Single().GeneratedSources)
        {
            File.WriteAllText(Path.Combine(folder, generated.HintName),
                generated.SourceText.ToString().Replace(GeneratedCode(GeneratorVersion), GeneratedCode(VersionToken), StringComparison.Ordinal));
        }
    }

    /// <summary>The generator test with local references and the same language settings as the harness.</summary>
    internal sealed class Test : CSharpSourceGeneratorTest<McirModelGenerator, DefaultVerifier>
    {
        public Test()
        {
            ReferenceAssemblies = TestReferences.NoDownload;
            TestState.AdditionalReferences.AddRange(TestReferences.All);
        }

        protected override ParseOptions CreateParseOptions() =>
            ((CSharpParseOptions)base.CreateParseOptions()).WithLanguageVersion(LanguageVersion.Latest);

        protected override CompilationOptions CreateCompilationOptions() =>
            ((CSharpCompilationOptions)base.CreateCompilationOptions()).WithNullableContextOptions(NullableContextOptions.Enable);
    }
}
