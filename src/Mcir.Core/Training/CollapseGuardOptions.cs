namespace Mcir.Core.Training;

/// <summary>Thresholds of <see cref="CollapseGuard"/>.</summary>
public sealed record CollapseGuardOptions
{
    /// <summary>Name of the reconstruction part (e.g. "l1").</summary>
    public string ReconstructionPart { get; init; } = "l1";

    /// <summary>Name of the negative term's part (e.g. "spn").</summary>
    public string NegativePart { get; init; } = "spn";

    /// <summary>|negative| &gt; RatioLimit × reconstruction counts as a runaway iteration.</summary>
    public double RatioLimit { get; init; } = 1.0;

    /// <summary>Consecutive runaway iterations before the run is declared collapsed.</summary>
    public int RatioPatience { get; init; } = 20;

    /// <summary>Reconstruction &gt; JumpFactor × its running median counts as a jump.</summary>
    public double JumpFactor { get; init; } = 10.0;

    /// <summary>Window (previous iterations) of the running median.</summary>
    public int JumpWindow { get; init; } = 100;

    /// <summary>Iterations needed in the window before jumps are judged.</summary>
    public int JumpMinHistory { get; init; } = 20;

    /// <summary>Consecutive jumping iterations before the run is declared collapsed (1 = the first jump).</summary>
    public int JumpPatience { get; init; } = 3;

    /// <summary>The validation metric watched for a cliff (higher is better), e.g. "psnr".</summary>
    public string ValidationMetric { get; init; } = "psnr";

    /// <summary>A validation value this far below the best so far is a collapse (dB for PSNR); null disables the check.</summary>
    public double? ValidationDrop { get; init; } = 5.0;
}
