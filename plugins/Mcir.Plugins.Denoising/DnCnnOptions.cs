namespace Mcir.Plugins.Denoising;

/// <summary>
/// Options of <see cref="DnCnn"/>. <c>new DnCnnOptions()</c> is the paper's DnCNN-S for colour images (3 channels,
/// 64 features, depth 17); <see cref="Light"/> is a small variant for CPU experiments.
/// </summary>
public sealed record DnCnnOptions
{
    /// <summary>A light DnCNN: 32 features, depth 8 (the <c>dncnn-light</c> preset).</summary>
    public static DnCnnOptions Light { get; } = new() { Features = 32, Depth = 8 };

    /// <summary>Image channels, in and out (3 for RGB, 1 for grey). Default 3.</summary>
    public int Channels { get; init; } = 3;

    /// <summary>Feature channels of the hidden layers. Default 64.</summary>
    public int Features { get; init; } = 64;

    /// <summary>Number of convolution layers, first and last included (≥ 2). Default 17.</summary>
    public int Depth { get; init; } = 17;

    /// <summary>
    /// Conv biases on the middle convolutions (KAIR's <c>bias</c>, true in KAIR's DnCNN). Default false: with batch
    /// normalisation after them the bias is redundant (the BN shift absorbs it). The first and last convolutions always
    /// have a bias.
    /// </summary>
    public bool Bias { get; init; }

    /// <summary>
    /// The middle layers, as KAIR's <c>act_mode</c>: <c>"BR"</c> (default, the paper's) = conv + BatchNorm + ReLU,
    /// numbered <c>model.{0, 2/3, 5/6, …}</c>; <c>"R"</c> = conv + ReLU without BatchNorm (KAIR's DnCNN with
    /// <c>act_mode='R'</c>, e.g. a model whose BN was folded into the convolutions), numbered <c>model.{0, 2, 4, …}</c>.
    /// </summary>
    public string Mode { get; init; } = "BR";

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (Mode is not ("BR" or "R")) throw new ArgumentException($"DnCNN: {nameof(Mode)} must be \"BR\" (conv + BatchNorm + ReLU) or \"R\" (conv + ReLU), got \"{Mode}\".");
        if (Channels < 1) throw new ArgumentException($"DnCNN: {nameof(Channels)} must be >= 1, got {Channels}.");
        if (Features < 1) throw new ArgumentException($"DnCNN: {nameof(Features)} must be >= 1, got {Features}.");
        if (Depth < 2) throw new ArgumentException($"DnCNN: {nameof(Depth)} counts the first and last convolutions and must be >= 2, got {Depth}.");
    }
}
