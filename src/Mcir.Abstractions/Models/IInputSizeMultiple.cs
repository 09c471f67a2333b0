namespace Mcir.Abstractions.Models;

/// <summary>
/// A network whose input height and width must be multiples of a number (e.g. the attention window of Swin-type
/// networks) and that does not pad by itself. The engine's inference path — validation during training, <c>test</c> and
/// <c>restore</c> — reflect-pads every input on the right and bottom to the next multiple and crops the output back to
/// scale × (h, w), as BasicSR's <c>SwinIRModel.test</c> does
/// (<c>F.pad(img, (0, mod_pad_w, 0, mod_pad_h), 'reflect')</c>). Training patches are not padded: choose
/// <c>gt_size / scale</c> as a multiple.
/// </summary>
/// <remarks>
/// A network that pads internally (NAFNet's <c>check_image_size</c>) does not implement this: the engine would pad
/// differently (reflect instead of zeros) and change its output.
/// </remarks>
public interface IInputSizeMultiple
{
    /// <summary>The multiple (≥ 1) the input's height and width must have, e.g. SwinIR's <c>window_size</c>.</summary>
    int InputSizeMultiple { get; }
}
