using System.Text.Json;
using Mcir.Core.IO;
using Mcir.Core.ModelContrast;
using Mcir.Core.Tests.ModelContrast.TestNetworks;
using static Mcir.Core.Tests.ModelContrast.TestNetworks.NegativeBankTestData;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.ModelContrast;

/// <summary>Parity with the reference PyTorch bookkeeping (MCLIR <c>model_neg</c>) stored in TestData/negatives.</summary>
public class NegativeBankParityTests
{
    private static readonly NegativeBankOptions OneNegative = new() { Steps = [1], Decays = [0.1], NegStart = 0.1 };

    [Fact]
    public void TinyEdsr_BlendThenUpdate_EqualsReferenceBitForBit()
    {
        using var target = new NegativeBankTestEdsr(8, 1, 2);
        LoadPth(target, TinyEdsr("theta"));
        target.OnClone = clone => LoadPth(clone, TinyEdsr("theta_rand"));
        using var bank = NegativeBank.Create(target, OneNegative);

        using var afterBlend = new NegativeBankTestEdsr(8, 1, 2);
        LoadPth(afterBlend, TinyEdsr("after_blend"));
        AssertParametersEqual(afterBlend, bank.Negatives[0], "after_blend");

        LoadPth(target, TinyEdsr("theta2"));
        var updated = bank.OnIterationEnd(1, target);
        Assert.Equal([0], updated);
        using var afterUpdate = new NegativeBankTestEdsr(8, 1, 2);
        LoadPth(afterUpdate, TinyEdsr("after_update"));
        AssertParametersEqual(afterUpdate, bank.Negatives[0], "after_update");
    }

    [Fact]
    public void TinyEdsr_FixtureFilesMatchTheirChecksums()
    {
        var states = Expected.GetProperty("tiny_edsr").GetProperty("states");
        foreach (var name in new[] { "theta", "theta_rand", "after_blend", "theta2", "after_update" })
        {
            using var m = new NegativeBankTestEdsr(8, 1, 2);
            LoadPth(m, TinyEdsr(name));
            AssertChecksums(m, states.GetProperty(name));
        }
    }

    [Fact]
    public void TinyEdsr_CopyInit_EqualsTheta()
    {
        using var target = new NegativeBankTestEdsr(8, 1, 2);
        LoadPth(target, TinyEdsr("theta"));
        using var bank = NegativeBank.Create(target, OneNegative with { Init = NegativeInit.Copy });
        AssertParametersEqual(target, bank.Negatives[0], "theta");
    }

    /// <summary>
    /// The full-size edsr_x2 fixture has only checksums. theta is available (archs/edsr_x2/state_dict.pth), theta_rand
    /// and theta2 cannot be reproduced from C# (PyTorch's RNG), so what is checked is: every theta tensor's SHA-256;
    /// the 12 bias tensors (full values stored for every state) blended and updated, by SHA-256 and value; and the
    /// first 8 stored values of every weight tensor (seeded into theta_rand/theta2, the rest of those tensors random).
    /// </summary>
    [Fact]
    public void EdsrX2_CheckablePartsOfBlendAndUpdate_MatchReference()
    {
        var fixture = Expected.GetProperty("edsr_x2");
        Assert.True(fixture.GetProperty("theta_equals_archs_edsr_x2_state_dict").GetBoolean());
        var states = fixture.GetProperty("states");
        var full = fixture.GetProperty("tensors_with_full_values").EnumerateArray().Select(e => e.GetString()!).ToHashSet();
        Assert.Equal(12, full.Count);

        using var target = new NegativeBankTestEdsr(64, 4, 2);
        LoadPth(target, Path.Combine(Dir, "edsr_x2_theta.pth"));
        AssertChecksums(target, states.GetProperty("theta"));

        target.OnClone = clone => SeedKnownValues(clone, states.GetProperty("theta_rand"), full);
        using var bank = NegativeBank.Create(target, OneNegative);
        AssertKnownValues(bank.Negatives[0], states.GetProperty("after_blend"), full);

        SeedKnownValues(target, states.GetProperty("theta2"), full);
        bank.OnIterationEnd(1, target);
        AssertKnownValues(bank.Negatives[0], states.GetProperty("after_update"), full);
    }

    /// <summary>The test EDSR is a faithful BasicSR EDSR: its output on the fixture input matches PyTorch's.</summary>
    [Fact]
    public void TestEdsr_ForwardMatchesBasicSR()
    {
        using var net = new NegativeBankTestEdsr(64, 4, 2);
        LoadPth(net, Path.Combine(Dir, "edsr_x2_theta.pth"));
        net.eval();
        using var x = Npy.Load(Path.Combine(Dir, "edsr_x2_input.npy"));
        using var expected = Npy.Load(Path.Combine(Dir, "edsr_x2_output.npy"));
        using var _ = no_grad();
        using var y = net.call(x);
        Assert.Equal(expected.shape, y.shape);
        Assert.True(MaxAbsDiff(y, expected) < 2e-5, $"max |diff| = {MaxAbsDiff(y, expected)}");
    }

    private static void AssertParametersEqual(nn.Module expected, nn.Module actual, string what)
    {
        var exp = expected.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var act = actual.named_parameters().ToList();
        Assert.Equal(exp.Count, act.Count);
        foreach (var (name, p) in act)
            AssertWithinEmaRounding(exp[name].detach().reshape(-1).data<float>().ToArray(), p.detach().reshape(-1).data<float>().ToArray(), $"{what}: {name}");
    }

    private static void AssertChecksums(nn.Module m, JsonElement state)
    {
        var sd = m.state_dict();
        Assert.Equal(state.EnumerateObject().Count(), sd.Count);
        foreach (var entry in state.EnumerateObject())
        {
            var t = sd[entry.Name];
            Assert.Equal(entry.Value.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()).ToArray(), t.shape);
            Assert.Equal(entry.Value.GetProperty("sha256_float32_le").GetString(), Sha256(t));
        }
    }

    private static float[] Floats(JsonElement arr) => arr.EnumerateArray().Select(e => (float)e.GetDouble()).ToArray();

    /// <summary>Writes the values the fixture knows (full biases, first 8 values of weights) into <paramref name="m"/>.</summary>
    private static void SeedKnownValues(nn.Module m, JsonElement state, HashSet<string> full)
    {
        using var _ = no_grad();
        foreach (var (name, p) in m.named_parameters())
        {
            var e = state.GetProperty(name);
            if (full.Contains(name))
            {
                using var v = tensor(Floats(e.GetProperty("values")));
                p.copy_(v.view(p.shape));
                Assert.Equal(e.GetProperty("sha256_float32_le").GetString(), Sha256(p));
            }
            else
            {
                var first = Floats(e.GetProperty("first_values"));
                using var flat = p.view(-1);
                using var v = tensor(first);
                using var head = flat.narrow(0, 0, first.Length);
                head.copy_(v);
            }
        }
    }

    /// <summary>
    /// PyTorch's EMA numbers against ours: the same formula (mul_, then add_ with alpha) but other kernels and other
    /// vector widths (PyTorch 1.13 here vs libtorch 2.10, AVX2 vs AVX-512: an element goes through the fused
    /// multiply-add vector path or the scalar tail depending on the width), so each update may round differently by
    /// one float32 ulp of its terms. A few updates stay within 4 ulps of the value, plus a floor of 1e-3 of the
    /// tensor's largest value for elements where the two terms cancel.
    /// </summary>
    private static void AssertWithinEmaRounding(float[] expected, float[] got, string name)
    {
        Assert.Equal(expected.Length, got.Length);
        double floor = 1e-3 * expected.Max(v => Math.Abs((double)v));
        for (int i = 0; i < expected.Length; i++)
        {
            double tol = 4 * Math.Pow(2, -23) * (Math.Abs((double)expected[i]) + floor);
            Assert.True(Math.Abs((double)got[i] - expected[i]) <= tol, $"'{name}'[{i}]: {got[i]:R} vs PyTorch {expected[i]:R} (tolerance {tol:E2})");
        }
    }

    private static void AssertKnownValues(nn.Module m, JsonElement state, HashSet<string> full)
    {
        foreach (var (name, p) in m.named_parameters())
        {
            var e = state.GetProperty(name);
            if (full.Contains(name))
                AssertWithinEmaRounding(Floats(e.GetProperty("values")), p.detach().reshape(-1).data<float>().ToArray(), name);
            else
            {
                var first = Floats(e.GetProperty("first_values"));
                using var flat = p.detach().reshape(-1);
                AssertWithinEmaRounding(first, flat.narrow(0, 0, first.Length).data<float>().ToArray(), name);
            }
        }
    }
}
