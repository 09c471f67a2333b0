using Mcir.Abstractions.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Training;

/// <summary>
/// The target EMA (BasicSR <c>net_g_ema</c>, <c>model_ema(decay)</c>): a separate instance of the target architecture,
/// in eval mode, without gradients, never seen by the optimiser, and unrelated to the negative bank. Created as an
/// exact copy of the target (BasicSR's <c>model_ema(0)</c>); after every optimiser step
/// <c>p_ema ← decay · p_ema + (1 − decay) · p</c> for every parameter (matched by name, in place, multiply then add),
/// while <b>buffers are copied</b> from the target (BatchNorm running statistics follow the target; BasicSR leaves
/// them at the copy made at start, which goes stale).
/// </summary>
public sealed class TargetEma : IDisposable
{
    private readonly List<(Tensor Ema, Tensor Target)> _parameters = [];
    private readonly List<(Tensor Ema, Tensor Target)> _buffers = [];

    /// <summary>Builds the EMA network from <paramref name="target"/> (which must implement <see cref="IArchitectureCloneable"/>).</summary>
    public TargetEma(nn.Module<Tensor, Tensor> target, double decay)
    {
        ArgumentNullException.ThrowIfNull(target);
        if (!(decay >= 0 && decay < 1)) throw new ArgumentOutOfRangeException(nameof(decay), decay, "ema decay must be in [0, 1)");
        if (target is not IArchitectureCloneable cloneable)
            throw new McirException($"ema_decay is set but the network {target.GetType().Name} does not implement {nameof(IArchitectureCloneable)}, so no EMA copy can be built");
        Decay = decay;
        Network = Compute.ChannelsLast.ForConvolutions(cloneable.CloneArchitecture());
        var first = target.parameters().FirstOrDefault();
        if (first is not null) Network.to(first.device);
        var tp = target.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        foreach (var (name, p) in Network.named_parameters())
        {
            if (!tp.TryGetValue(name, out var t) || !t.shape.SequenceEqual(p.shape))
                throw new McirException($"target ema: parameter '{name}' of the clone does not match the target (CloneArchitecture built a different architecture?)");
            _parameters.Add((p, t));
            p.requires_grad = false;
        }
        if (_parameters.Count != tp.Count) throw new McirException("target ema: the clone has a different number of parameters than the target");
        var tb = target.named_buffers().ToDictionary(b => b.name, b => b.buffer);
        foreach (var (name, b) in Network.named_buffers())
        {
            if (!tb.TryGetValue(name, out var t) || !t.shape.SequenceEqual(b.shape))
                throw new McirException($"target ema: buffer '{name}' of the clone does not match the target");
            _buffers.Add((b, t));
        }
        Network.eval();
        CopyFrom();
    }

    /// <summary>The EMA decay.</summary>
    public double Decay { get; }

    /// <summary>The EMA network (eval mode; read-only use).</summary>
    public nn.Module<Tensor, Tensor> Network { get; }

    /// <summary>Sets every parameter and buffer to the target's (the state at creation).</summary>
    public void CopyFrom()
    {
        using var _ = no_grad();
        foreach (var (e, t) in _parameters) e.copy_(t);
        foreach (var (e, t) in _buffers) e.copy_(t);
    }

    /// <summary>One EMA step with <see cref="Decay"/>: parameters blended, buffers copied.</summary>
    public void Update()
    {
        using var _ = no_grad();
        foreach (var (e, t) in _parameters) e.mul_(Decay).add_(t, alpha: 1.0 - Decay);
        foreach (var (e, t) in _buffers) e.copy_(t);
    }

    /// <summary>Disposes the EMA network.</summary>
    public void Dispose() => Network.Dispose();
}
