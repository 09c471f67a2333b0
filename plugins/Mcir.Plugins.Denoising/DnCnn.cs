using Mcir.Abstractions.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mcir.Plugins.Denoising;

/// <summary>
/// DnCNN (Zhang et al., "Beyond a Gaussian Denoiser: Residual Learning of Deep CNN for Image Denoising", TIP 2017):
/// conv + ReLU, (depth − 2) × (conv + BN + ReLU), conv, all 3×3 with padding 1; residual learning, the network predicts
/// the noise: <c>output = input − model(input)</c>.
/// </summary>
/// <remarks>
/// One <c>Sequential</c> named <c>model</c>, numbered as KAIR's <c>DnCNN</c> (<c>models/network_dncnn.py</c>):
/// <c>model.0</c> first conv, <c>model.2</c>/<c>model.3</c> the first conv/BN of the body, …, and with
/// <see cref="DnCnnOptions.Mode"/> <c>"R"</c> (no BN) <c>model.0, 2, 4, …</c>. The middle convolutions have a bias only
/// with <see cref="DnCnnOptions.Bias"/> (KAIR's default <c>bias=True</c>; without it, the layout of our own runs); the
/// first and the last always have one. KAIR's <c>{"params"}</c>-less bare state dicts load by name with the matching
/// options (<c>bias: true</c>, and <c>mode: "R"</c> for a BN-free model).
/// </remarks>
[McirModel("dncnn", Tasks = new[] { "denoise" }, Description = "DnCNN (Zhang et al., 2017), residual noise prediction; presets dncnn (64/17) and dncnn-light (32/8)")]
public sealed partial class DnCnn : nn.Module<Tensor, Tensor>
{
    // The field name is the state_dict prefix.
    private readonly Sequential model;

    /// <summary>Builds a DnCNN with PyTorch-default initialisation.</summary>
    /// <param name="options">The configuration; see <see cref="DnCnnOptions"/>.</param>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public DnCnn(DnCnnOptions options) : base("DnCNN")
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        options.Validate();

        int c = options.Channels, f = options.Features;
        var layers = new List<nn.Module<Tensor, Tensor>> { nn.Conv2d(c, f, 3, padding: 1), nn.ReLU(inplace: true) };
        bool batchNorm = options.Mode == "BR";
        for (int i = 0; i < options.Depth - 2; i++)
        {
            layers.Add(nn.Conv2d(f, f, 3, padding: 1, bias: options.Bias));
            if (batchNorm) layers.Add(nn.BatchNorm2d(f));
            layers.Add(nn.ReLU(inplace: true));
        }
        layers.Add(nn.Conv2d(f, c, 3, padding: 1));
        model = nn.Sequential(layers.ToArray());
        RegisterComponents();
    }

    /// <summary>Named configurations: <c>"dncnn"</c> = <c>new DnCnnOptions()</c>, <c>"dncnn-light"</c> = <see cref="DnCnnOptions.Light"/>.</summary>
    public static IReadOnlyDictionary<string, DnCnnOptions> Presets { get; } =
        new System.Collections.ObjectModel.ReadOnlyDictionary<string, DnCnnOptions>(new Dictionary<string, DnCnnOptions>(StringComparer.Ordinal)
        {
            ["dncnn"] = new DnCnnOptions(),
            ["dncnn-light"] = DnCnnOptions.Light,
        });

    /// <summary>The options this network was built from.</summary>
    public DnCnnOptions Options { get; }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.dim() != 4 || input.shape[1] != Options.Channels)
            throw new ArgumentException(
                $"DnCNN expects a [N, {Options.Channels}, H, W] input, got [{string.Join(", ", input.shape)}].", nameof(input));
        using var scope = NewDisposeScope();
        return (input - model.call(input)).MoveToOuterDisposeScope();
    }
}
