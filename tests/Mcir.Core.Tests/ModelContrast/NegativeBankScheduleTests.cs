using Mcir.Core.ModelContrast;
using Mcir.Core.Weights;
using Mcir.Core.Tests.ModelContrast.TestNetworks;
using TorchSharp.PyBridge;
using static Mcir.Core.Tests.ModelContrast.TestNetworks.NegativeBankTestData;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.ModelContrast;

/// <summary>Update schedule, kinds and option validation.</summary>
public class NegativeBankScheduleTests
{
    /// <summary>Runs iterations 1..12 with a target that changes every iteration; returns, per iteration, which
    /// negatives the bank reported and which negatives actually changed.</summary>
    private static List<(long It, int[] Reported, int[] Changed)> Run(NegativeBankOptions options)
    {
        using var target = new NegativeBankTestEdsr(4, 1, 2);
        using var bank = NegativeBank.Create(target, options);
        var log = new List<(long, int[], int[])>();
        for (long it = 1; it <= 12; it++)
        {
            Perturb(target, it);
            var before = bank.Negatives.Select(Snapshot).ToList();
            var reported = bank.OnIterationEnd(it, target).ToArray();
            var changed = Enumerable.Range(0, bank.Count).Where(j => !SameAs(bank.Negatives[j], before[j])).ToArray();
            before.ForEach(DisposeAll);
            log.Add((it, reported, changed));
            Assert.Equal(it, bank.LastIteration);
        }
        return log;
    }

    private static int[] Expected(long it, params long[] periods) =>
        Enumerable.Range(0, periods.Length).Where(j => it % periods[j] == 0).ToArray();

    [Fact]
    public void PaperOrder_Steps2And3_UpdatesNegativeJEveryStepsJ()
    {
        var log = Run(new NegativeBankOptions { Steps = [2, 3] });
        foreach (var (it, reported, changed) in log)
        {
            Assert.Equal(Expected(it, 2, 3), reported);
            Assert.Equal(reported, changed);
        }
        Assert.Equal([2L, 4, 6, 8, 10, 12], log.Where(l => l.Reported.Contains(0)).Select(l => l.It));
        Assert.Equal([3L, 6, 9, 12], log.Where(l => l.Reported.Contains(1)).Select(l => l.It));
    }

    [Fact]
    public void AuthorsOrder_Steps2And3_ReversesThePairing()
    {
        var options = new NegativeBankOptions { Steps = [2, 3], Decays = [0.1, 0.2], ScheduleOrder = NegativeScheduleOrder.Authors };
        var log = Run(options);
        foreach (var (it, reported, changed) in log)
        {
            Assert.Equal(Expected(it, 3, 2), reported);
            Assert.Equal(reported, changed);
        }
        Assert.Equal([3L, 6, 9, 12], log.Where(l => l.Reported.Contains(0)).Select(l => l.It));
        Assert.Equal([2L, 4, 6, 8, 10, 12], log.Where(l => l.Reported.Contains(1)).Select(l => l.It));
        // The decay keeps the forward index (as in the released code).
        Assert.Equal(3, options.PeriodOf(0));
        Assert.Equal(0.1, options.DecayOf(0));
        Assert.Equal(2, options.PeriodOf(1));
        Assert.Equal(0.2, options.DecayOf(1));
    }

    [Fact]
    public void AuthorsOrder_ReleasedDehazingConfig_Negative0Every1000AndNegative3Every100()
    {
        var o = new NegativeBankOptions { Steps = [100, 200, 500, 1000], ScheduleOrder = NegativeScheduleOrder.Authors };
        Assert.Equal([1000L, 500, 200, 100], Enumerable.Range(0, 4).Select(o.PeriodOf));
        var p = o with { ScheduleOrder = NegativeScheduleOrder.Paper };
        Assert.Equal([100L, 200, 500, 1000], Enumerable.Range(0, 4).Select(p.PeriodOf));
    }

    [Fact]
    public void Update_UsesEachNegativesOwnDecay()
    {
        using var target = new NegativeBankTestEdsr(4, 1, 2);
        using var bank = NegativeBank.Create(target, new NegativeBankOptions { Steps = [1, 1], Decays = [0.1, 0.5] });
        Perturb(target, 7);
        var before = bank.Negatives.Select(Snapshot).ToList();
        bank.OnIterationEnd(1, target);
        var tp = target.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        for (int j = 0; j < 2; j++)
        {
            double a = bank.DecayOf(j);
            foreach (var (name, p) in bank.Negatives[j].named_parameters())
            {
                using var expected = before[j][name].mul(a).add_(tp[name], alpha: 1 - a);
                Assert.True(Equal(p, expected), $"negative {j} '{name}'");
            }
        }
        before.ForEach(DisposeAll);
        Assert.Equal([1L, 1], bank.UpdateCounts);
        Assert.Equal([1L, 1], bank.LastUpdateIterations);
    }

    [Fact]
    public void FixedRandom_NeverChanges()
    {
        var log = Run(new NegativeBankOptions { Kind = NegativeKind.FixedRandom, Steps = [2, 3] });
        Assert.All(log, l => { Assert.Empty(l.Reported); Assert.Empty(l.Changed); });
    }

    [Fact]
    public void FixedRandom_IsNotTheTarget()
    {
        using var target = new NegativeBankTestEdsr(4, 1, 2);
        using var bank = NegativeBank.Create(target, new NegativeBankOptions { Kind = NegativeKind.FixedRandom, Steps = [1] });
        var tp = target.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        Assert.Contains(bank.Negatives[0].named_parameters(), p => !Equal(p.parameter, tp[p.name]));
    }

    [Fact]
    public void FixedPretrained_LoadsWrappedPthWithModulePrefix_AndNeverChanges()
    {
        string dir = Directory.CreateTempSubdirectory("negbank-").FullName;
        try
        {
            // A BasicSR-style checkpoint: {"params": {"module.<key>": tensor}} written with PyBridge's pickler.
            using var source = new NegativeBankTestEdsr(4, 1, 2);
            var inner = new System.Collections.Hashtable();
            foreach (var (k, t) in source.state_dict()) inner["module." + k] = t;
            var outer = new System.Collections.Hashtable { ["params"] = inner };
            string pth = Path.Combine(dir, "net_g.pth");
            PyTorchPickler.PickleStateDict(pth, outer);

            using var target = new NegativeBankTestEdsr(4, 1, 2);
            using var bank = NegativeBank.Create(target, new NegativeBankOptions { Kind = NegativeKind.FixedPretrained, Steps = [2, 3], PretrainedPaths = [pth] });
            var expected = Snapshot(source);
            foreach (var n in bank.Negatives) Assert.True(SameAs(n, expected));
            for (long it = 1; it <= 12; it++)
            {
                Perturb(target, it);
                Assert.Empty(bank.OnIterationEnd(it, target));
            }
            foreach (var n in bank.Negatives) Assert.True(SameAs(n, expected));
            DisposeAll(expected);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void FixedPretrained_ParamKeySelectsTheWrapper()
    {
        string dir = Directory.CreateTempSubdirectory("negbank-").FullName;
        try
        {
            using var plain = new NegativeBankTestEdsr(4, 1, 2);
            using var ema = new NegativeBankTestEdsr(4, 1, 2);
            var outer = new System.Collections.Hashtable
            {
                ["params"] = new System.Collections.Hashtable(plain.state_dict()),
                ["params_ema"] = new System.Collections.Hashtable(ema.state_dict()),
            };
            string pth = Path.Combine(dir, "net_g_1000.pth");
            PyTorchPickler.PickleStateDict(pth, outer);
            using var target = new NegativeBankTestEdsr(4, 1, 2);
            var options = new NegativeBankOptions { Kind = NegativeKind.FixedPretrained, Steps = [1], PretrainedPaths = [pth] };
            using (var byDefault = NegativeBank.Create(target, options))
            {
                var s = Snapshot(plain);
                Assert.True(SameAs(byDefault.Negatives[0], s)); // BasicSR's default key is 'params'
                DisposeAll(s);
            }
            using (var byKey = NegativeBank.Create(target, options with { PretrainedParamKey = "params_ema" }))
            {
                var s = Snapshot(ema);
                Assert.True(SameAs(byKey.Negatives[0], s));
                DisposeAll(s);
            }
            var e = Assert.Throws<InvalidDataException>(() => NegativeBank.Create(target, options with { PretrainedParamKey = "state_dict" }));
            Assert.Contains("no state dict under key 'state_dict'", e.Message);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void FixedPretrained_UnreadableCheckpoint_GivesClearError()
    {
        string dir = Directory.CreateTempSubdirectory("negbank-").FullName;
        try
        {
            string pth = Path.Combine(dir, "legacy.pth");
            File.WriteAllBytes(pth, [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8]); // pre-zip torch.save magic
            using var target = new NegativeBankTestEdsr(4, 1, 2);
            var options = new NegativeBankOptions { Kind = NegativeKind.FixedPretrained, Steps = [1], PretrainedPaths = [pth] };
            var e = Assert.Throws<InvalidDataException>(() => NegativeBank.Create(target, options));
            Assert.Contains(pth, e.Message);
            Assert.Contains("zip format of torch.save", e.Message);
            Assert.Throws<FileNotFoundException>(() => NegativeBank.Create(target, options with { PretrainedPaths = [Path.Combine(dir, "missing.pth")] }));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void FixedPretrained_LoadsBarePthAndSafetensors()
    {
        using var target = new NegativeBankTestEdsr(8, 1, 2);
        using (var bank = NegativeBank.Create(target, new NegativeBankOptions { Kind = NegativeKind.FixedPretrained, Steps = [5], PretrainedPaths = [TinyEdsr("theta2")] }))
        {
            using var theta2 = new NegativeBankTestEdsr(8, 1, 2);
            LoadPth(theta2, TinyEdsr("theta2"));
            var expected = Snapshot(theta2);
            Assert.True(SameAs(bank.Negatives[0], expected));

            string dir = Directory.CreateTempSubdirectory("negbank-").FullName;
            try
            {
                string st = Path.Combine(dir, "theta2.safetensors");
                theta2.save_safetensors(st);
                using var bank2 = NegativeBank.Create(target, new NegativeBankOptions { Kind = NegativeKind.FixedPretrained, Steps = [5], PretrainedPaths = [st] });
                Assert.True(SameAs(bank2.Negatives[0], expected));
            }
            finally { Directory.Delete(dir, recursive: true); }
            DisposeAll(expected);
        }
    }

    [Fact]
    public void FixedPretrained_WrongArchitecture_NamesTheKey()
    {
        using var target = new NegativeBankTestBnNet();
        var e = Assert.Throws<StateDictMismatchException>(() => NegativeBank.Create(target,
            new NegativeBankOptions { Kind = NegativeKind.FixedPretrained, Steps = [1], PretrainedPaths = [TinyEdsr("theta")] }));
        Assert.Contains("conv_first.weight", e.Message);
        Assert.Contains("theta.pth", e.Message);
    }

    [Fact]
    public void Iterations_MustStartAt1AndIncrease()
    {
        using var target = new NegativeBankTestEdsr(4, 1, 2);
        using var bank = NegativeBank.Create(target, new NegativeBankOptions { Steps = [2] });
        Assert.Throws<ArgumentOutOfRangeException>(() => bank.OnIterationEnd(0, target));
        bank.OnIterationEnd(2, target);
        var e = Assert.Throws<InvalidOperationException>(() => bank.OnIterationEnd(2, target));
        Assert.Contains("iteration 2", e.Message);
    }

    [Fact]
    public void Target_MustBeCloneable()
    {
        using var target = nn.Sequential(nn.Conv2d(3, 3, 3, padding: 1));
        var e = Assert.Throws<ArgumentException>(() => NegativeBank.Create(target, new NegativeBankOptions()));
        Assert.Contains("IArchitectureCloneable", e.Message);
    }

    [Fact]
    public void Update_AgainstDifferentArchitecture_NamesTheParameter()
    {
        using var target = new NegativeBankTestEdsr(4, 1, 2);
        using var other = new NegativeBankTestBnNet();
        using var bank = NegativeBank.Create(target, new NegativeBankOptions { Steps = [1] });
        var e = Assert.Throws<InvalidOperationException>(() => bank.OnIterationEnd(1, other));
        Assert.Contains("conv_first.weight", e.Message);
    }

    [Fact]
    public void Defaults_AreThePapers()
    {
        var o = new NegativeBankOptions();
        o.Validate();
        Assert.Equal(NegativeKind.Ema, o.Kind);
        Assert.Equal(NegativeInit.Blend, o.Init);
        Assert.Equal(0.1, o.NegStart);
        Assert.Equal(4, o.Count);
        Assert.Equal([100L, 500, 1000, 2000], Enumerable.Range(0, 4).Select(o.PeriodOf));
        Assert.All(Enumerable.Range(0, 4), j => Assert.Equal(0.1, o.DecayOf(j)));
        Assert.Equal(NegativeScheduleOrder.Paper, o.ScheduleOrder);
        Assert.Equal(NegativeKind.FixedPretrained, NegativeBankOptions.ParseKind("fixed-pretrained"));
        Assert.Equal(NegativeKind.FixedRandom, NegativeBankOptions.ParseKind("Fixed-Random"));
        Assert.Equal(NegativeInit.Copy, NegativeBankOptions.ParseInit("copy"));
        Assert.Equal(NegativeScheduleOrder.Authors, NegativeBankOptions.ParseScheduleOrder("authors"));
        Assert.Contains("ema, fixed-random or fixed-pretrained", Assert.Throws<ArgumentException>(() => NegativeBankOptions.ParseKind("emma")).Message);
    }

    public static TheoryData<string, string> InvalidOptions => new()
    {
        { "decays-length", "Decays has 2 values but Steps has 3" },
        { "alpha-one", "Decays[0] = 1; the EMA decay α must lie in [0, 1)" },
        { "alpha-negative", "Decays[1] = -0.1" },
        { "alpha-nan", "Decays[0] = NaN" },
        { "step-zero", "Steps[1] = 0; update periods must be > 0" },
        { "step-negative", "Steps[0] = -5" },
        { "no-steps", "Steps must list at least one" },
        { "no-decays", "Decays must hold one value" },
        { "beta", "NegStart = 1.5" },
        { "pretrained-without-path", "fixed-pretrained needs PretrainedPaths" },
        { "pretrained-count", "PretrainedPaths has 2 entries but there are 3 negatives" },
        { "path-without-pretrained", "only used by Kind fixed-pretrained" },
    };

    [Theory]
    [MemberData(nameof(InvalidOptions))]
    public void Validate_GivesClearErrors(string which, string message)
    {
        var o = new NegativeBankOptions { Steps = [1, 2, 3] };
        o = which switch
        {
            "decays-length" => o with { Decays = [0.1, 0.1] },
            "alpha-one" => o with { Decays = [1.0] },
            "alpha-negative" => o with { Decays = [0.1, -0.1, 0.1] },
            "alpha-nan" => o with { Decays = [double.NaN] },
            "step-zero" => o with { Steps = [1, 0, 3] },
            "step-negative" => o with { Steps = [-5, 1, 2] },
            "no-steps" => o with { Steps = [] },
            "no-decays" => o with { Decays = [] },
            "beta" => o with { NegStart = 1.5 },
            "pretrained-without-path" => o with { Kind = NegativeKind.FixedPretrained },
            "pretrained-count" => o with { Kind = NegativeKind.FixedPretrained, PretrainedPaths = ["a.pth", "b.pth"] },
            "path-without-pretrained" => o with { PretrainedPaths = ["a.pth"] },
            _ => throw new ArgumentException(which),
        };
        var e = Assert.Throws<ArgumentException>(o.Validate);
        Assert.Contains(message, e.Message);
        using var target = new NegativeBankTestEdsr(4, 1, 2);
        Assert.Throws<ArgumentException>(() => NegativeBank.Create(target, o));
    }
}
