using Mcir.Abstractions.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace McirPlugin.Template;

/// <summary>
/// A small same-size restoration network (EDSR-style body, residual to the input):
/// <c>output = input + conv_last(body(conv_first(input)) + conv_first(input))</c>, all convolutions 3×3 with padding 1.
/// Input and output: float32 [N, Channels, H, W] in [0, 1] (any H, W).
/// </summary>
/// <remarks>
/// <c>[McirModel]</c> makes the source generator (in the Mcir.Abstractions package) emit <c>Descriptor</c>,
/// <c>CloneArchitecture()</c> (for the negative bank) and the plugin registrar. The field names are the state_dict keys
/// (<c>conv_first.weight</c>, <c>body.0.conv1.weight</c>, …), as in the PyTorch model you port.
/// </remarks>
[McirModel("mcirtask-net", Tasks = new[] { "mcirtask" }, Description = "residual CNN (conv, 4 residual blocks of 32 features, conv), output = input + residual")]
public sealed partial class RestorationNet : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv_first;
    private readonly Sequential body;
    private readonly Conv2d conv_last;

    /// <summary>Builds the network with PyTorch-default initialisation.</summary>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public RestorationNet(RestorationNetOptions options) : base("RestorationNet")
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        options.Validate();
        conv_first = nn.Conv2d(options.Channels, options.Features, 3, padding: 1);
        body = nn.Sequential(Enumerable.Range(0, options.Blocks)
            .Select(_ => (nn.Module<Tensor, Tensor>)new ResidualBlock(options.Features)).ToArray());
        conv_last = nn.Conv2d(options.Features, options.Channels, 3, padding: 1);
        RegisterComponents();
    }

    /// <summary>The options this network was built from (the generator's <c>CloneArchitecture()</c> uses them).</summary>
    public RestorationNetOptions Options { get; }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.dim() != 4 || input.shape[1] != Options.Channels)
            throw new ArgumentException($"mcirtask-net expects a [N, {Options.Channels}, H, W] input, got [{string.Join(", ", input.shape)}].", nameof(input));
        using var scope = NewDisposeScope();
        var features = conv_first.call(input);
        return (input + conv_last.call(body.call(features) + features)).MoveToOuterDisposeScope();
    }

    /// <summary>conv 3×3, ReLU, conv 3×3, plus the input.</summary>
    private sealed class ResidualBlock : nn.Module<Tensor, Tensor>
    {
        private readonly Conv2d conv1;
        private readonly Conv2d conv2;

        public ResidualBlock(int features) : base("ResidualBlock")
        {
            conv1 = nn.Conv2d(features, features, 3, padding: 1);
            conv2 = nn.Conv2d(features, features, 3, padding: 1);
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            return (x + conv2.call(nn.functional.relu(conv1.call(x)))).MoveToOuterDisposeScope();
        }
    }
}
