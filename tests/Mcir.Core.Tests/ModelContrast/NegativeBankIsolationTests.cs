using Mcir.Core.ModelContrast;
using Mcir.Core.Tests.ModelContrast.TestNetworks;
using TorchSharp;
using static Mcir.Core.Tests.ModelContrast.TestNetworks.NegativeBankTestData;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.ModelContrast;

/// <summary>Buffers, eval mode, gradients, optimiser isolation and Produce.</summary>
public class NegativeBankIsolationTests
{
    private static void TrainSteps(nn.Module<Tensor, Tensor> target, int steps, NegativeBank? bank = null)
    {
        target.train();
        using var opt = optim.Adam(target.parameters(), lr: 1e-2);
        var g = new Generator(11);
        for (int i = 0; i < steps; i++)
        {
            using var scope = NewDisposeScope();
            var x = rand([2, 3, 8, 8], generator: g);
            var y = rand([2, 3, 8, 8], generator: g);
            opt.zero_grad();
            var o = target.call(x);
            var loss = (o - y).abs().mean();
            if (bank is not null)
            {
                var negs = bank.Produce(x);
                Assert.False(negs.requires_grad);
                loss = loss - 0.1 * (o.unsqueeze(0) - negs).abs().mean();
            }
            loss.backward();
            opt.step();
        }
    }

    [Fact]
    public void Buffers_AreLeftAloneByBlendAndUpdate()
    {
        using var target = new NegativeBankTestBnNet();
        TrainSteps(target, 3); // moves the target's BatchNorm running statistics away from 0 / 1
        var targetBuffers = target.named_buffers().ToDictionary(b => b.name, b => b.buffer);
        Assert.Contains("bn.running_mean", targetBuffers.Keys);
        Assert.Contains("bn.running_var", targetBuffers.Keys);
        using (var zero = zeros(4)) Assert.False(Equal(targetBuffers["bn.running_mean"], zero));

        foreach (var init in new[] { NegativeInit.Blend, NegativeInit.Copy })
        {
            using var bank = NegativeBank.Create(target, new NegativeBankOptions { Init = init, Steps = [1, 2] });
            foreach (var neg in bank.Negatives)
            {
                var nb = neg.named_buffers().ToDictionary(b => b.name, b => b.buffer);
                using var z = zeros(4);
                using var o = ones(4);
                Assert.True(Equal(nb["bn.running_mean"], z), $"{init}: running_mean was touched at creation");
                Assert.True(Equal(nb["bn.running_var"], o), $"{init}: running_var was touched at creation");
            }
            var before = bank.Negatives.Select(n => n.named_buffers().ToDictionary(b => b.name, b => b.buffer.clone())).ToList();
            TrainSteps(target, 2);
            for (long it = 1; it <= 4; it++) Assert.NotEmpty(bank.OnIterationEnd(it, target));
            for (int j = 0; j < bank.Count; j++)
            {
                foreach (var (name, b) in bank.Negatives[j].named_buffers())
                    Assert.True(Equal(b, before[j][name]), $"{init}: buffer '{name}' of negative {j} changed by an update");
                // ... while the parameters did move.
                Assert.Equal(j == 0 ? 4 : 2, bank.UpdateCounts[j]);
            }
            foreach (var d in before) DisposeAll(d);
        }
    }

    [Fact]
    public void Negatives_AreEvalFrozenAndOutsideTheTarget()
    {
        using var target = new NegativeBankTestBnNet();
        target.train();
        using var bank = NegativeBank.Create(target, new NegativeBankOptions { Steps = [1, 2, 3] });
        var targetHandles = target.parameters().Select(p => p.Handle).ToHashSet();
        foreach (var neg in bank.Negatives)
        {
            Assert.False(neg.training);
            Assert.All(neg.modules(), m => Assert.False(m.training));
            Assert.All(neg.parameters(), p => Assert.False(p.requires_grad));
            Assert.All(neg.parameters(), p => Assert.DoesNotContain(p.Handle, targetHandles));
        }
        Assert.Equal(target.parameters().Count(), targetHandles.Count);
        Assert.DoesNotContain(target.named_children(), c => bank.Negatives.Any(n => ReferenceEquals(n, c.module)));

        target.train(); // does not reach the negatives
        bank.OnIterationEnd(1, target);
        Assert.All(bank.Negatives, n => Assert.False(n.training));
        Assert.All(bank.Negatives.SelectMany(n => n.parameters()), p => Assert.False(p.requires_grad));
    }

    [Fact]
    public void Produce_StacksKOutputs_NoGrad_Deterministic()
    {
        using var target = new NegativeBankTestEdsr(4, 1, 2);
        using var bank = NegativeBank.Create(target, new NegativeBankOptions { Steps = [1, 2, 3] });
        using var x = rand(2, 3, 6, 5).requires_grad_(true);
        using var negs = bank.Produce(x);
        Assert.Equal([3L, 2, 3, 12, 10], negs.shape);
        Assert.False(negs.requires_grad);
        using var _ = no_grad();
        for (int j = 0; j < 3; j++)
        {
            // Produce runs the negatives on channels-last inputs (other oneDNN kernels than this NCHW call, and they
            // differ by CPU), so the two agree to float32 rounding of the convolutions' sums (≤ 4·9 terms of O(1)
            // values here: well below 1e-5), not bitwise.
            using var single = bank.Negatives[j].call(x);
            using var slice = negs[j];
            double err = (slice - single).abs().max().item<float>();
            Assert.True(err <= 1e-5, $"negative {j}: max |Produce − single call| = {err:E2}");
        }
        using var again = bank.Produce(x); // the same kernels on the same shapes: bitwise
        Assert.True(Equal(again, negs));
    }

    [Fact]
    public void Produce_InEvalMode_DropoutInactive()
    {
        using var target = new NegativeBankTestBnNet();
        using var bank = NegativeBank.Create(target, new NegativeBankOptions { Steps = [1, 2] });
        bank.Negatives[0].train(); // even if someone flips a negative to train mode, Produce runs it in eval mode
        using var x = rand(2, 3, 8, 8);
        using var a = bank.Produce(x);
        using var b = bank.Produce(x);
        Assert.True(Equal(a, b));
        Assert.False(bank.Negatives[0].training);
    }

    [Fact]
    public void Produce_ResultBelongsToTheCaller()
    {
        using var target = new NegativeBankTestEdsr(4, 1, 2);
        using var bank = NegativeBank.Create(target, new NegativeBankOptions { Steps = [1, 2] });
        using var x = rand(1, 3, 4, 4);

        Tensor inScope;
        using (var scope = NewDisposeScope())
        {
            int before = scope.DisposablesCount;
            inScope = bank.Produce(x);
            Assert.Equal(before + 1, scope.DisposablesCount); // only the result joins the caller's scope
            Assert.False(inScope.IsInvalid);
            Assert.Equal(2, inScope.shape[0]);
        }
        Assert.True(inScope.IsInvalid); // disposed with the caller's scope

        var free = bank.Produce(x); // no scope: the caller disposes it
        Assert.False(free.IsInvalid);
        free.Dispose();
    }

    [Fact]
    public void TrainingTheTarget_DoesNotChangeNegatives()
    {
        using var target = new NegativeBankTestBnNet();
        using var bank = NegativeBank.Create(target, new NegativeBankOptions { Steps = [1000, 2000] });
        var snaps = bank.Negatives.Select(Snapshot).ToList();
        var targetBefore = Snapshot(target);
        TrainSteps(target, 3, bank);
        Assert.False(SameAs(target, targetBefore)); // the target did train
        for (int j = 0; j < bank.Count; j++)
        {
            Assert.True(SameAs(bank.Negatives[j], snaps[j]), $"negative {j} changed during target training");
            Assert.All(bank.Negatives[j].parameters(), p => Assert.True(p.grad is null));
        }
        snaps.ForEach(DisposeAll);
        DisposeAll(targetBefore);
    }
}
