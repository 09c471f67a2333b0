using System.Runtime.CompilerServices;
using static TorchSharp.torch;

namespace Mcir.Core.Compute;

/// <summary>
/// Routes the calls of a sealed TorchSharp layer (<c>Conv2d</c>, <c>PixelShuffle</c>: their <c>forward</c> cannot be
/// replaced) to the engine's own computation through the module's hooks: a forward pre-hook that takes a call passes the
/// module an empty batch (<c>x.narrow(0, 0, 0)</c>: libtorch returns an empty output for it without computing anything)
/// and keeps the real input, and a forward hook returns <see cref="Run"/> of that input in place of the empty output. A
/// call not taken (<see cref="Takes"/> false) runs as the module's own. Parameters, their names and the state_dict stay
/// the layer's. Used by <see cref="ConvolutionLayers"/> and <see cref="PixelShuffleLayers"/>.
/// </summary>
internal abstract class RoutedLayer
{
    private Tensor? _input, _marker;

    /// <summary>
    /// Registers the hooks once per layer: on every <typeparamref name="TLayer"/> of <paramref name="model"/> (itself
    /// included) for which <paramref name="create"/> returns a route and that <paramref name="hooked"/> does not hold yet.
    /// </summary>
    public static void Register<TLayer>(nn.Module model, ConditionalWeakTable<TLayer, RoutedLayer> hooked, Func<TLayer, RoutedLayer?> create)
        where TLayer : nn.Module<Tensor, Tensor>
    {
        ArgumentNullException.ThrowIfNull(model);
        foreach (var module in model.modules().Prepend(model))
        {
            if (module is not TLayer layer || hooked.TryGetValue(layer, out _) || create(layer) is not { } route) continue;
            layer.register_forward_pre_hook((_, x) => route.Before(x));
            layer.register_forward_hook((_, x, y) => route.After(x, y));
            hooked.Add(layer, route);
        }
    }

    /// <summary>Whether this call (the layer's input <paramref name="x"/>) runs by <see cref="Run"/>.</summary>
    protected abstract bool Takes(Tensor x);

    /// <summary>The layer's output for <paramref name="input"/>, a call <see cref="Takes"/> took.</summary>
    protected abstract Tensor Run(Tensor input);

    private Tensor Before(Tensor x)
    {
        if (_input is not null || !Takes(x)) return x;
        _input = x;
        _marker = x.narrow(0, 0, 0);
        return _marker;
    }

    private Tensor After(Tensor x, Tensor y)
    {
        if (_input is not { } input || !ReferenceEquals(x, _marker)) return y;
        _input = null;
        _marker = null;
        return Run(input);
    }
}
