namespace Mcir.Core.Distributed;

/// <summary>
/// The processes (ranks) of a data-parallel training job and the collectives the trainer needs (Horovod's design:
/// every rank holds the whole model, gradients are all-reduced). <see cref="SingleProcess"/> is the one-process
/// world in which every collective is the identity; <see cref="MpiCommunicator"/> runs them over the system's MPI.
/// Collectives must be called by every rank in the same order.
/// </summary>
public interface ICommunicator : IDisposable
{
    /// <summary>This process's rank, 0 … <see cref="Size"/> − 1; rank 0 writes the run folder.</summary>
    int Rank { get; }

    /// <summary>The number of ranks.</summary>
    int Size { get; }

    /// <summary>True on rank 0.</summary>
    bool IsRoot => Rank == 0;

    /// <summary>A line for run logs: "1 process" or "MPI, 4 ranks (Open MPI …)".</summary>
    string Describe();

    /// <summary>In place: every element becomes the element-wise sum over ranks.</summary>
    void AllReduceSum(Span<double> values);

    /// <summary>In place: every element becomes the element-wise maximum over ranks.</summary>
    void AllReduceMax(Span<double> values);

    /// <summary>In place, on native memory (e.g. a CPU tensor's data): the element-wise sum over ranks of <paramref name="count"/> float32 values.</summary>
    void AllReduceSum(nint float32Buffer, long count);

    /// <summary>Rank 0's bytes to every rank: the root passes its data, others receive an array of the root's length.</summary>
    byte[] Broadcast(byte[]? rootData);

    /// <summary>Ends every rank of the job at once with <paramref name="exitCode"/> (an error on one rank must not leave the others waiting).</summary>
    void Abort(int exitCode);
}

/// <summary>The one-process world: rank 0 of 1; collectives return their input.</summary>
public sealed class SingleProcess : ICommunicator
{
    /// <summary>The shared instance.</summary>
    public static SingleProcess Instance { get; } = new();

    public int Rank => 0;
    public int Size => 1;
    public string Describe() => "1 process";
    public void AllReduceSum(Span<double> values) { }
    public void AllReduceMax(Span<double> values) { }
    public void AllReduceSum(nint float32Buffer, long count) { }
    public byte[] Broadcast(byte[]? rootData) => rootData ?? throw new ArgumentNullException(nameof(rootData));
    public void Abort(int exitCode) => Environment.Exit(exitCode);
    public void Dispose() { }
}
