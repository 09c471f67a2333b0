using System.Security.Cryptography;
using System.Text.Json;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.ModelContrast.TestNetworks;

/// <summary>Paths and helpers shared by the negative-bank tests.</summary>
public static class NegativeBankTestData
{
    public static string Dir => Path.Combine(AppContext.BaseDirectory, "TestData", "negatives");

    public static string TinyEdsr(string state) => Path.Combine(Dir, "tiny_edsr", state + ".pth");

    public static JsonElement Expected { get; } = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Dir, "expected.json"))).RootElement;

    /// <summary>Strictly loads a PyTorch state-dict file into <paramref name="module"/> (PyBridge).</summary>
    public static void LoadPth(nn.Module module, string path)
    {
        using var _ = no_grad();
        module.load_py(path, strict: true);
    }

    public static bool Equal(Tensor a, Tensor b)
    {
        if (!a.shape.SequenceEqual(b.shape) || a.dtype != b.dtype) return false;
        using var eq = a.eq(b);
        using var all = eq.all();
        return all.item<bool>();
    }

    public static double MaxAbsDiff(Tensor a, Tensor b)
    {
        using var d = (a.detach().to(float64) - b.detach().to(float64)).abs().max();
        return d.item<double>();
    }

    public static string Sha256(Tensor t)
    {
        using var c = t.detach().cpu().contiguous();
        return Convert.ToHexStringLower(SHA256.HashData(c.bytes));
    }

    /// <summary>Deep copies of every state_dict entry (parameters and buffers).</summary>
    public static Dictionary<string, Tensor> Snapshot(nn.Module m) =>
        m.state_dict().ToDictionary(kv => kv.Key, kv =>
        {
            var c = kv.Value.detach().clone();
            c.DetachFromDisposeScope();
            return c;
        });

    public static void DisposeAll(Dictionary<string, Tensor> d)
    {
        foreach (var t in d.Values) t.Dispose();
    }

    /// <summary>True when every state_dict entry of <paramref name="m"/> equals the snapshot bit for bit.</summary>
    public static bool SameAs(nn.Module m, Dictionary<string, Tensor> snapshot)
    {
        var sd = m.state_dict();
        return sd.Count == snapshot.Count && sd.All(kv => snapshot.TryGetValue(kv.Key, out var s) && Equal(kv.Value, s));
    }

    /// <summary>Adds small deterministic noise to every parameter (stands in for an optimiser step).</summary>
    public static void Perturb(nn.Module m, long seed)
    {
        using var _ = no_grad();
        var g = new Generator((ulong)seed);
        foreach (var p in m.parameters())
        {
            using var n = randn(p.shape, generator: g) * 0.01;
            p.add_(n);
        }
    }
}
