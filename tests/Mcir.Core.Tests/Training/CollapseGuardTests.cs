using Mcir.Core.Training;

namespace Mcir.Core.Tests.Training;

public class CollapseGuardTests
{
    private static Dictionary<string, double> Parts(double l1, double spn) => new() { ["l1"] = l1, ["spn"] = spn, ["spn/neg0"] = -spn * 1000 };

    [Fact]
    public void HealthyRun_StaysOk()
    {
        var guard = new CollapseGuard();
        var rng = new Random(1);
        for (int i = 1; i <= 500; i++)
        {
            double l1 = 0.3 * Math.Exp(-i / 200.0) + 0.02 + 0.01 * rng.NextDouble();
            var v = guard.Observe(i, Parts(l1, -1e-4));
            Assert.False(v.IsCollapsed, v.Message);
        }
        Assert.Null(guard.Collapse);
    }

    [Theory]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(double.NegativeInfinity)]
    public void NonFinitePart_CollapsesImmediately_NamingPartAndIteration(double bad)
    {
        var guard = new CollapseGuard();
        Assert.False(guard.Observe(1, Parts(0.3, -1e-4)).IsCollapsed);
        var parts = Parts(0.3, -1e-4);
        parts["spn/neg0"] = bad;
        var v = guard.Observe(2, parts);
        Assert.True(v.IsCollapsed);
        Assert.Equal(CollapseCause.NonFinite, v.Cause);
        Assert.Equal(2, v.Iteration);
        Assert.Contains("spn/neg0", v.Message);
        Assert.Contains("iteration 2", v.Message);
    }

    [Fact]
    public void NegativeTermOutgrowingReconstruction_CollapsesAfterPatience()
    {
        var guard = new CollapseGuard(new CollapseGuardOptions { RatioLimit = 1.0, RatioPatience = 5 });
        for (int i = 1; i <= 10; i++) Assert.False(guard.Observe(i, Parts(0.1, -1e-3)).IsCollapsed);
        // four runaway iterations, then a healthy one: the streak resets
        for (int i = 11; i <= 14; i++) Assert.False(guard.Observe(i, Parts(0.1, -0.5)).IsCollapsed);
        Assert.False(guard.Observe(15, Parts(0.1, -0.01)).IsCollapsed);
        CollapseVerdict v = CollapseVerdict.Ok(0);
        long i2 = 16;
        for (; i2 <= 30 && !v.IsCollapsed; i2++) v = guard.Observe(i2, Parts(0.1, -0.5 * (i2 - 15)));
        Assert.True(v.IsCollapsed);
        Assert.Equal(CollapseCause.NegativeTermRunaway, v.Cause);
        Assert.Equal(20, v.Iteration); // 16..20: five consecutive
        Assert.Contains("'spn'", v.Message);
        Assert.Contains("iteration 20", v.Message);
        // sticky until reset
        Assert.Same(v, guard.Observe(21, Parts(0.1, -1e-4)));
        guard.Reset();
        Assert.False(guard.Observe(22, Parts(0.1, -1e-4)).IsCollapsed);
    }

    [Fact]
    public void ReconstructionJump_OverRunningMedian_Collapses()
    {
        var guard = new CollapseGuard(new CollapseGuardOptions { JumpFactor = 5, JumpWindow = 50, JumpMinHistory = 20, JumpPatience = 2 });
        for (int i = 1; i <= 40; i++) Assert.False(guard.Observe(i, Parts(0.05 + 0.001 * (i % 3), -1e-5)).IsCollapsed);
        Assert.False(guard.Observe(41, Parts(0.6, -1e-5)).IsCollapsed);   // one spike is tolerated (patience 2)
        Assert.False(guard.Observe(42, Parts(0.05, -1e-5)).IsCollapsed);
        Assert.False(guard.Observe(43, Parts(0.6, -1e-5)).IsCollapsed);
        var v = guard.Observe(44, Parts(0.8, -1e-5));
        Assert.True(v.IsCollapsed);
        Assert.Equal(CollapseCause.ReconstructionJump, v.Cause);
        Assert.Equal(44, v.Iteration);
        Assert.Contains("'l1'", v.Message);
        Assert.Contains("running median", v.Message);
    }

    [Fact]
    public void NoJudgementBeforeEnoughHistory_AndConfigurablePartNames()
    {
        var guard = new CollapseGuard(new CollapseGuardOptions { ReconstructionPart = "psnr_loss", NegativePart = "cr", JumpMinHistory = 10, JumpPatience = 1 });
        // large early values are fine while the window fills
        for (int i = 1; i <= 10; i++) Assert.False(guard.Observe(i, new Dictionary<string, double> { ["psnr_loss"] = i == 1 ? 50 : 1 }).IsCollapsed);
        var v = guard.Observe(11, new Dictionary<string, double> { ["psnr_loss"] = 30 });
        Assert.Equal(CollapseCause.ReconstructionJump, v.Cause);
        Assert.Contains("'psnr_loss'", v.Message);
        Assert.Throws<ArgumentException>(() => new CollapseGuard(new CollapseGuardOptions { JumpFactor = 0.5 }));
    }

    [Fact]
    public void RestoredStateJudgesExactlyAsTheUninterruptedGuard()
    {
        var options = new CollapseGuardOptions { JumpFactor = 5, JumpWindow = 30, JumpMinHistory = 10, JumpPatience = 2, RatioPatience = 3, RatioLimit = 0.5 };
        var uninterrupted = new CollapseGuard(options);
        var first = new CollapseGuard(options);
        var rng = new Random(4);
        var sequence = Enumerable.Range(1, 80).Select(i => (Rec: 0.05 + 0.01 * rng.NextDouble() + (i is 55 or 56 ? 1.0 : 0), Neg: i is 40 or 41 ? -0.1 : -1e-4)).ToList();
        for (int i = 1; i <= 50; i++) { uninterrupted.Observe(i, Parts(sequence[i - 1].Rec, sequence[i - 1].Neg)); first.Observe(i, Parts(sequence[i - 1].Rec, sequence[i - 1].Neg)); }

        // As a checkpoint stores it: through JSON.
        var json = System.Text.Json.JsonSerializer.Serialize(first.CaptureState());
        var resumed = new CollapseGuard(options);
        resumed.RestoreState(System.Text.Json.JsonSerializer.Deserialize<CollapseGuardState>(json)!);
        var fresh = new CollapseGuard(options);

        var verdicts = new List<(CollapseVerdict A, CollapseVerdict B, CollapseVerdict C)>();
        for (int i = 51; i <= 80; i++)
            verdicts.Add((uninterrupted.Observe(i, Parts(sequence[i - 1].Rec, sequence[i - 1].Neg)),
                          resumed.Observe(i, Parts(sequence[i - 1].Rec, sequence[i - 1].Neg)),
                          fresh.Observe(i, Parts(sequence[i - 1].Rec, sequence[i - 1].Neg))));
        Assert.All(verdicts, v => Assert.Equal(v.A, v.B));
        Assert.Contains(verdicts, v => v.A.Cause == CollapseCause.ReconstructionJump);
        // Without the history the jump at iterations 55-56 goes unnoticed (too little history): the state matters.
        Assert.DoesNotContain(verdicts, v => v.C.Cause == CollapseCause.ReconstructionJump);
    }

    [Fact]
    public void ValidationCliffAgainstTheBestValueCollapses_AndCanBeDisabled()
    {
        var guard = new CollapseGuard(new CollapseGuardOptions { ValidationDrop = 2.0 });
        Assert.False(guard.ObserveValidation(100, new Dictionary<string, double> { ["psnr"] = 28 }).IsCollapsed);
        Assert.False(guard.ObserveValidation(200, new Dictionary<string, double> { ["psnr"] = 30 }).IsCollapsed);
        Assert.False(guard.ObserveValidation(300, new Dictionary<string, double> { ["psnr"] = 28.5 }).IsCollapsed); // 1.5 dB below best
        Assert.False(guard.ObserveValidation(350, new Dictionary<string, double> { ["ssim"] = 0.1 }).IsCollapsed);   // metric absent
        var v = guard.ObserveValidation(400, new Dictionary<string, double> { ["psnr"] = 27.5 });
        Assert.Equal(CollapseCause.ValidationCliff, v.Cause);
        Assert.Contains("below its best 30", v.Message);

        var off = new CollapseGuard(new CollapseGuardOptions { ValidationDrop = null });
        off.ObserveValidation(1, new Dictionary<string, double> { ["psnr"] = 40 });
        Assert.False(off.ObserveValidation(2, new Dictionary<string, double> { ["psnr"] = 10 }).IsCollapsed);

        var nan = new CollapseGuard().ObserveValidation(5, new Dictionary<string, double> { ["psnr"] = double.NaN });
        Assert.Equal(CollapseCause.NonFinite, nan.Cause);
    }

    [Fact]
    public void BestValidationIsPartOfTheState()
    {
        var a = new CollapseGuard(new CollapseGuardOptions { ValidationDrop = 2.0 });
        a.ObserveValidation(1, new Dictionary<string, double> { ["psnr"] = 33 });
        var b = new CollapseGuard(new CollapseGuardOptions { ValidationDrop = 2.0 });
        b.RestoreState(System.Text.Json.JsonSerializer.Deserialize<CollapseGuardState>(System.Text.Json.JsonSerializer.Serialize(a.CaptureState()))!);
        Assert.Equal(CollapseCause.ValidationCliff, b.ObserveValidation(2, new Dictionary<string, double> { ["psnr"] = 30 }).Cause);
    }
}
