using Mcir.Abstractions.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.ModelContrast.TestNetworks;

/// <summary>
/// Test-only image-to-image network with buffers (BatchNorm2d running_mean/running_var/num_batches_tracked) and
/// dropout, so eval mode and buffer handling of the negative bank are observable.
/// </summary>
public sealed class NegativeBankTestBnNet : nn.Module<Tensor, Tensor>, IArchitectureCloneable
{
    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn;
    private readonly Dropout drop;
    private readonly Conv2d conv2;

    public NegativeBankTestBnNet(int width = 4) : base("BnNet")
    {
        Width = width;
        conv1 = nn.Conv2d(3, width, 3, padding: 1);
        bn = nn.BatchNorm2d(width);
        drop = nn.Dropout(0.5);
        conv2 = nn.Conv2d(width, 3, 3, padding: 1);
        RegisterComponents();
    }

    public int Width { get; }

    public nn.Module<Tensor, Tensor> CloneArchitecture() => new NegativeBankTestBnNet(Width);

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = drop.call(nn.functional.relu(bn.call(conv1.call(x))));
        return (x + conv2.call(h)).MoveToOuterDisposeScope();
    }
}
