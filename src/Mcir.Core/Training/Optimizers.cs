using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mcir.Core.Training;

/// <summary>
/// The optimiser factory: <c>optimizer.type</c> → a TorchSharp optimiser over the trainable parameters (BasicSR's
/// <c>get_optimizer</c> / <c>setup_optimizers</c>). The settings are checked by <see cref="OptimizerSettings.Validate"/>.
/// </summary>
public static class Optimizers
{
    /// <summary>
    /// Creates the optimiser of <paramref name="settings"/>: <c>adam</c> → <c>torch.optim.Adam</c> (weight decay as L2
    /// on the gradient), <c>adamw</c> → <c>torch.optim.AdamW</c> (decoupled weight decay); both with
    /// <c>lr</c>, <c>betas</c>, <c>eps</c>, <c>weight_decay</c>.
    /// </summary>
    /// <exception cref="McirException">An invalid setting (the key and the accepted values are named).</exception>
    public static OptimizerHelper Create(IEnumerable<Parameter> parameters, OptimizerSettings settings)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(settings);
        settings.Validate();
        var o = settings;
        return o.Type switch
        {
            "adam" => optim.Adam(parameters, o.Lr, o.Betas[0], o.Betas[1], o.Eps, o.WeightDecay),
            "adamw" => optim.AdamW(parameters, o.Lr, o.Betas[0], o.Betas[1], o.Eps, o.WeightDecay),
            _ => throw new InvalidOperationException($"optimizer.type '{o.Type}' passed validation but has no factory"),
        };
    }
}
