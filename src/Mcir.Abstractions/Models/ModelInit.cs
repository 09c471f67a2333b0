using static TorchSharp.torch;

namespace Mcir.Abstractions.Models;

/// <summary>Parameter initialisers that model plugins need and TorchSharp 0.107 does not provide correctly.</summary>
public static class ModelInit
{
    /// <summary>
    /// timm's / PyTorch's <c>nn.init.trunc_normal_(tensor, mean, std, a, b)</c>: fills <paramref name="tensor"/> in place
    /// with N(mean, std²) truncated to the absolute bounds [a, b], by inverse-CDF sampling (PyTorch's method). Needed
    /// because TorchSharp 0.107's <c>nn.init.trunc_normal_</c> fills the tensor with the value <c>std</c> instead of
    /// sampling. Draws from the default generator (seed it with <c>torch.manual_seed</c>).
    /// </summary>
    /// <param name="tensor">Any shape, floating point; modified in place without recording gradients.</param>
    /// <param name="mean">Mean of the normal.</param>
    /// <param name="std">Standard deviation of the normal (&gt; 0).</param>
    /// <param name="a">Lower bound (absolute, as in PyTorch; not in units of std).</param>
    /// <param name="b">Upper bound (absolute).</param>
    public static void TruncNormal_(Tensor tensor, double mean = 0.0, double std = 1.0, double a = -2.0, double b = 2.0)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        static double NormCdf(double x) => (1.0 + Erf(x / Math.Sqrt(2.0))) / 2.0;
        double l = NormCdf((a - mean) / std), u = NormCdf((b - mean) / std);
        using var guard = no_grad();
        tensor.uniform_(2 * l - 1, 2 * u - 1);
        tensor.erfinv_();
        tensor.mul_(std * Math.Sqrt(2.0));
        tensor.add_(mean);
        tensor.clamp_(a, b);
    }

    /// <summary>erf(x), accurate to 1.2e-7 (Numerical Recipes' <c>erfcc</c>); it only sets the sampling interval.</summary>
    private static double Erf(double x)
    {
        double z = Math.Abs(x);
        double t = 1.0 / (1.0 + 0.5 * z);
        double r = t * Math.Exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
            + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
        return x >= 0 ? 1 - r : r - 1;
    }
}
