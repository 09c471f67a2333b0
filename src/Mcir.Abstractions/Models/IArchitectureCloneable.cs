using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Abstractions.Models;

/// <summary>
/// A network that can build a fresh instance of its own architecture from the same options (new random
/// initialisation, same parameter names and shapes). The negative bank needs this to hold past versions of the
/// target; the <c>[McirModel]</c> source generator implements it for every annotated model.
/// </summary>
public interface IArchitectureCloneable
{
    /// <summary>A new, randomly initialised module with the same architecture and options as this one.</summary>
    nn.Module<Tensor, Tensor> CloneArchitecture();
}
