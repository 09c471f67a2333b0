using System.Reflection;
using System.Runtime.Loader;
using Mcir.Abstractions;
using Mcir.Abstractions.Models;
using Microsoft.CodeAnalysis;
using Microsoft.Extensions.DependencyInjection;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Generators.Tests;

/// <summary>The generated code compiles with its input, and the resulting plugin assembly works through its registrar.</summary>
public sealed class CompilationTests
{
    private const string RegistrarHook = """
        using Microsoft.Extensions.DependencyInjection;

        namespace McirGenerated;

        partial class PluginRegistrar
        {
            partial void RegisterServices(IServiceCollection services) => services.AddSingleton("extra service");
        }
        """;

    [Fact]
    public void Generated_code_compiles_without_errors_or_warnings()
    {
        var (output, generatorDiagnostics, result) = GeneratorHarness.Run(Sources.TinyNet, Sources.Denoiser, RegistrarHook);

        Assert.Empty(generatorDiagnostics);
        Assert.Equal(
            ["Demo.Denoise.Denoiser.g.cs", "Demo.Sr.TinyNet.g.cs", "McirGenerated.PluginRegistrar.g.cs"],
            result.Results.Single().GeneratedSources.Select(s => s.HintName).Order(StringComparer.Ordinal));

        var diagnostics = output.GetDiagnostics();
        Assert.Empty(diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error));

        // Warnings (documentation included: DocumentationMode.Diagnose) must not come from generated code, since
        // plugin projects treat warnings as errors. The hand-written inputs have no XML docs, so skip those.
        var generatedTrees = result.GeneratedTrees.ToHashSet();
        Assert.Empty(diagnostics.Where(d => d.Location.SourceTree is { } tree && generatedTrees.Contains(tree)));
    }

    [Fact]
    public void Plugin_assembly_exposes_its_registrar_and_descriptors()
    {
        var (output, _, _) = GeneratorHarness.Run(Sources.TinyNet, Sources.Denoiser, RegistrarHook);
        using var image = new MemoryStream();
        var emit = output.Emit(image);
        Assert.True(emit.Success, string.Join(Environment.NewLine, emit.Diagnostics));

        // Loaded next to this test's Mcir.Abstractions, as the host does with shared contract types.
        var context = new AssemblyLoadContext("plugin", isCollectible: true);
        try
        {
            image.Position = 0;
            var assembly = context.LoadFromStream(image);
            var marker = assembly.GetCustomAttribute<McirPluginAttribute>();
            Assert.NotNull(marker);
            Assert.Equal(ContractVersion.Major, marker.ContractMajor);
            Assert.Equal("McirGenerated.PluginRegistrar", marker.RegistrarType.FullName);

            var registrar = Assert.IsAssignableFrom<IMcirPluginRegistrar>(Activator.CreateInstance(marker.RegistrarType));
            var services = new ServiceCollection();
            registrar.Register(services);

            var descriptors = services
                .Where(s => s.ServiceType == typeof(ModelDescriptor))
                .Select(s => Assert.IsType<ModelDescriptor>(s.ImplementationInstance))
                .ToArray();
            Assert.Equal(["denoiser-lite", "tiny-net"], descriptors.Select(d => d.Name));
            Assert.Contains(services, s => s.ServiceType == typeof(IModelRegistry));
            Assert.Contains(services, s => s.ServiceType == typeof(string) && (string?)s.ImplementationInstance == "extra service");

            var tiny = descriptors[1];
            Assert.Equal(["sr"], tiny.Tasks);
            Assert.Equal("A tiny network for tests", tiny.Description);
            Assert.Equal("Demo.Sr.TinyNet", tiny.ModelType.FullName);
            Assert.Equal("Demo.Sr.TinyOptions", tiny.OptionsType.FullName);
            Assert.Same(tiny.OptionsType, tiny.DefaultOptions.GetType());
            Assert.Equal("TinyOptions { Features = 8, Scale = 2 }", tiny.DefaultOptions.ToString());
            Assert.True(typeof(IArchitectureCloneable).IsAssignableFrom(tiny.ModelType));

            var denoiser = descriptors[0];
            Assert.Equal(["denoise", "jpeg-car"], denoiser.Tasks);
            Assert.Equal("", denoiser.Description);

            // A wrong options type is refused with a message naming the model, before any module is built.
            var error = Assert.Throws<ArgumentException>(() => tiny.Create("not options"));
            Assert.Contains("tiny-net", error.Message, StringComparison.Ordinal);
            Assert.Contains("Demo.Sr.TinyOptions", error.Message, StringComparison.Ordinal);
        }
        finally
        {
            context.Unload();
        }
    }

    [Fact]
    public void Tile_safety_reaches_the_descriptor()
    {
        var (output, _, _) = GeneratorHarness.Run(Sources.TinyNet, Sources.GlobalPoolNet);
        using var image = new MemoryStream();
        Assert.True(output.Emit(image).Success);
        var assembly = Assembly.Load(image.ToArray());
        ModelDescriptor Of(string type) => Assert.IsType<ModelDescriptor>(assembly.GetType(type)!.GetProperty("Descriptor")!.GetValue(null));

        var pool = Of("Demo.Dehaze.PoolNet");
        Assert.False(pool.TileSafe);
        Assert.Equal("global average pooling in its \"attention\"", pool.TileSafetyNote);
        Assert.Equal("pool-net", pool.Name);
        var tiny = Of("Demo.Sr.TinyNet");
        Assert.True(tiny.TileSafe);
        Assert.Equal("", tiny.TileSafetyNote);

        // Presets inherit the architecture's tile safety.
        var services = new ServiceCollection().AddMcirPresets(pool, new Dictionary<string, object> { ["pool-net-gray"] = pool.DefaultOptions }, _ => "gray");
        var preset = Assert.IsType<ModelDescriptor>(Assert.Single(services, s => s.ServiceType == typeof(ModelDescriptor)).ImplementationInstance);
        Assert.Equal(("pool-net-gray", false, pool.TileSafetyNote), (preset.Name, preset.TileSafe, preset.TileSafetyNote));
    }

    [Fact]
    public void Descriptor_builds_the_model_counts_parameters_and_clones_the_architecture()
    {
        var (output, _, _) = GeneratorHarness.Run(Sources.TinyNet);
        using var image = new MemoryStream();
        Assert.True(output.Emit(image).Success);
        var assembly = Assembly.Load(image.ToArray());
        var tiny = Assert.IsType<ModelDescriptor>(
            assembly.GetType("Demo.Sr.TinyNet")!.GetProperty("Descriptor")!.GetValue(null));

        // Conv2d(3 -> 8, 3x3) with bias: 8 * 3 * 3 * 3 + 8.
        Assert.Equal(224, tiny.ParameterCount);

        using var scope = torch.NewDisposeScope();
        using var model = tiny.CreateDefault();
        Assert.IsType(tiny.ModelType, model);
        var cloneable = Assert.IsAssignableFrom<IArchitectureCloneable>(model);
        using var clone = cloneable.CloneArchitecture();
        Assert.NotSame(model, clone);
        Assert.IsType(tiny.ModelType, clone);

        var original = model.state_dict();
        var cloned = clone.state_dict();
        Assert.Equal(original.Keys, cloned.Keys);
        Assert.All(original, pair => Assert.Equal(pair.Value.shape, cloned[pair.Key].shape));
        Assert.False(torch.equal(original["body.weight"], cloned["body.weight"]).all().item<bool>(), "The clone must be freshly initialised.");

        using var input = torch.rand(1, 3, 8, 8);
        using var result = model.forward(input);
        Assert.Equal([1L, 8, 8, 8], result.shape);
    }
}
