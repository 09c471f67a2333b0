namespace Mcir.Core.Training;

/// <summary>How a run ended.</summary>
public enum TrainingStatus
{
    /// <summary>All <c>total_iter</c> iterations ran; a final checkpoint was written.</summary>
    Completed,
    /// <summary>Cancelled (Ctrl-C): the current iteration was finished and a checkpoint written; resume continues it.</summary>
    Interrupted,
    /// <summary>The collapse guard tripped; the collapsed iteration's update was not applied and no checkpoint was written from it.</summary>
    Collapsed,
}

/// <summary>The outcome of <see cref="Trainer.Run"/>.</summary>
/// <param name="Status">How the run ended.</param>
/// <param name="Iteration">The last completed (applied) iteration.</param>
/// <param name="Message">One line for the user (the collapse cause and iteration when collapsed).</param>
/// <param name="LastCheckpoint">The newest complete checkpoint of the run (for a collapse: the last good one), or null.</param>
/// <param name="Collapse">The collapse verdict when <see cref="Status"/> is <see cref="TrainingStatus.Collapsed"/>.</param>
/// <param name="LastValidation">The most recent validation metrics, or null.</param>
public sealed record TrainingResult(
    TrainingStatus Status,
    long Iteration,
    string Message,
    string? LastCheckpoint,
    CollapseVerdict? Collapse,
    IReadOnlyDictionary<string, double>? LastValidation);
