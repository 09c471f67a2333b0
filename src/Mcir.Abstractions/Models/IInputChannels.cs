namespace Mcir.Abstractions.Models;

/// <summary>
/// A network that says how many image channels it takes (1 for gray models such as KAIR's gray DnCNN, 3 for RGB).
/// The engine reads images with that many channels and refuses a data set configured otherwise. Without this interface
/// the engine looks for an option named <c>in_chans</c>, <c>in_nc</c>, <c>num_in_ch</c>, <c>in_channels</c>,
/// <c>channels</c> or <c>n_colors</c>, else assumes 3.
/// </summary>
public interface IInputChannels
{
    /// <summary>Channels of the network's input, [N, InputChannels, H, W].</summary>
    int InputChannels { get; }
}
