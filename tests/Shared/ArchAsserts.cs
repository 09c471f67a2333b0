using Mcir.Core.Weights;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Tests.Shared;

/// <summary>Comparisons the architecture parity tests share (linked into each plugin test project).</summary>
internal static class ArchAsserts
{
    /// <summary>The engine's CPU-specific libtorch settings, before any test of this assembly runs a kernel.</summary>
    [System.Runtime.CompilerServices.ModuleInitializer]
    internal static void ApplyEngineCpuSettings() => Mcir.Core.Compute.OneDnnIsa.EnsureApplied();

    /// <summary>The module's state_dict as ordered name → shape.</summary>
    public static List<(string Name, long[] Shape)> StateDictShapes(nn.Module module) =>
        module.state_dict().Select(static kv => (kv.Key, kv.Value.shape)).ToList();

    /// <summary>Same names in the same order, same shapes; the message names the first differing key.</summary>
    public static void AssertSameManifest(List<(string Name, long[] Shape)> expected, List<(string Name, long[] Shape)> actual)
    {
        Assert.Equal(expected.Select(static e => e.Name), actual.Select(static a => a.Name));
        for (int i = 0; i < expected.Count; i++)
            Assert.True(expected[i].Shape.SequenceEqual(actual[i].Shape),
                $"{expected[i].Name}: expected [{string.Join(", ", expected[i].Shape)}], got [{string.Join(", ", actual[i].Shape)}]");
    }

    /// <summary>Same shape and every element equal.</summary>
    public static bool AllEqual(Tensor a, Tensor b)
    {
        if (!a.shape.SequenceEqual(b.shape)) return false;
        using var eq = a.eq(b).all();
        return eq.item<bool>();
    }

    /// <summary>max |a − b| computed in float64 (shapes must match).</summary>
    public static double MaxAbsDiff(Tensor a, Tensor b)
    {
        Assert.Equal(a.shape, b.shape);
        using var d = (a.to(ScalarType.Float64) - b.to(ScalarType.Float64)).abs().max();
        return d.item<double>();
    }

    /// <summary>Loads the reference state_dict.pth into <paramref name="model"/> by name, strictly, and sets eval mode.</summary>
    public static T LoadReference<T>(T model, ArchFixture fixture) where T : nn.Module
    {
        var (missing, unexpected) = model.load_state_dict(StateDictFile.Read(fixture.StateDictPath), strict: true);
        Assert.Empty(missing);
        Assert.Empty(unexpected);
        model.eval();
        // As the engine runs every model it builds (channels-last convolution inputs: see ChannelsLast).
        return Mcir.Core.Compute.ChannelsLast.ForConvolutions(model);
    }

    /// <summary>After a backward pass, every parameter has a gradient with a non-zero element.</summary>
    public static void AssertEveryParameterHasGradient(nn.Module model)
    {
        foreach (var (name, p) in model.named_parameters())
        {
            Assert.True(p.grad is not null, $"{name} has no gradient");
            Assert.True(p.grad!.abs().sum().item<float>() > 0, $"{name} has a zero gradient");
        }
    }
}
