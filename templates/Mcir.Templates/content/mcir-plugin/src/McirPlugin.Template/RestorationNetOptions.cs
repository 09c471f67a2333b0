namespace McirPlugin.Template;

/// <summary>Options of <see cref="RestorationNet"/> (configuration: <c>model.options</c>, snake_case keys).</summary>
public sealed record RestorationNetOptions
{
    /// <summary>Image channels, in and out. Default 3 (RGB).</summary>
    public int Channels { get; init; } = 3;

    /// <summary>Feature channels of the body. Default 32.</summary>
    public int Features { get; init; } = 32;

    /// <summary>Residual blocks in the body (≥ 1). Default 4.</summary>
    public int Blocks { get; init; } = 4;

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (Channels < 1) throw new ArgumentException($"mcirtask-net: {nameof(Channels)} must be >= 1, got {Channels}.");
        if (Features < 1) throw new ArgumentException($"mcirtask-net: {nameof(Features)} must be >= 1, got {Features}.");
        if (Blocks < 1) throw new ArgumentException($"mcirtask-net: {nameof(Blocks)} must be >= 1, got {Blocks}.");
    }
}
