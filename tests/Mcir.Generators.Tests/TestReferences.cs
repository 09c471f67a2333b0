using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Testing;

namespace Mcir.Generators.Tests;

/// <summary>
/// Metadata references for test compilations, all local: the running .NET's own assemblies (from the trusted platform
/// assemblies list) plus TorchSharp, Mcir.Abstractions and the DI abstractions from the test output folder. Nothing is
/// downloaded (the testing library's <see cref="ReferenceAssemblies"/> would fetch NuGet packages otherwise).
/// </summary>
internal static class TestReferences
{
    /// <summary>Reference assemblies that resolve to nothing (no package): the references come from <see cref="All"/>.</summary>
    public static ReferenceAssemblies NoDownload { get; } = new("net10.0");

    /// <summary>Every reference a test compilation needs.</summary>
    public static ImmutableArray<MetadataReference> All { get; } = Create();

    private static ImmutableArray<MetadataReference> Create()
    {
        var runtimeDirectory = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        var trusted = ((string?)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries);
        var framework = trusted
            .Where(path => string.Equals(Path.GetDirectoryName(path), runtimeDirectory, StringComparison.Ordinal))
            .Where(path => path.EndsWith(".dll", StringComparison.OrdinalIgnoreCase));
        var contract = new[]
            {
                "TorchSharp.dll",
                "Mcir.Abstractions.dll",
                "Microsoft.Extensions.DependencyInjection.Abstractions.dll",
            }
            .Select(file => Path.Combine(AppContext.BaseDirectory, file));

        var references = framework.Concat(contract)
            .Select(path => (MetadataReference)MetadataReference.CreateFromFile(path))
            .ToImmutableArray();
        Assert.True(references.Length > 100, "The trusted platform assemblies list did not provide the framework.");
        return references;
    }
}
