namespace Mcir.Core.Distributed;

/// <summary>
/// Chooses the communicator of a run from its <c>distributed</c> setting and the launcher's environment:
/// <c>auto</c> (default) starts MPI when the process was launched as one of several MPI ranks (<c>mpirun</c>/<c>mpiexec</c>
/// of Open MPI or MPICH, <c>srun --mpi=pmix</c>/<c>pmi2</c>), else one process; <c>mpi</c> always starts MPI (a missing
/// library is an error); <c>none</c> never does.
/// </summary>
public static class Communicators
{
    /// <summary>The settings accepted.</summary>
    public const string Choices = "auto, mpi or none";

    /// <summary>
    /// The world size the launcher announced (<c>OMPI_COMM_WORLD_SIZE</c>, <c>PMI_SIZE</c>, <c>PMIX_SIZE</c>; under Slurm
    /// with PMI/PMIx <c>SLURM_NTASKS</c>), or null when the process was not launched as an MPI rank.
    /// </summary>
    public static int? LaunchedSize()
    {
        foreach (var name in new[] { "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE" })
            if (int.TryParse(Environment.GetEnvironmentVariable(name), out int n) && n > 0) return n;
        bool pmi = Environment.GetEnvironmentVariable("PMIX_RANK") is not null || Environment.GetEnvironmentVariable("PMI_RANK") is not null;
        if (pmi && int.TryParse(Environment.GetEnvironmentVariable("SLURM_NTASKS"), out int tasks) && tasks > 0) return tasks;
        return pmi ? 1 : null;
    }

    /// <summary>The number of ranks on this node, as the launcher announced it (1 when unknown).</summary>
    public static int LocalSize()
    {
        foreach (var name in new[] { "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE", "PMIX_LOCAL_SIZE" })
            if (int.TryParse(Environment.GetEnvironmentVariable(name), out int n) && n > 0) return n;
        return 1;
    }

    /// <summary>The communicator for <paramref name="setting"/> (see the class remarks); <paramref name="where"/> names the key in errors.</summary>
    public static ICommunicator Create(string? setting, string where)
    {
        switch ((setting ?? "auto").Trim().ToLowerInvariant())
        {
            case "none": return SingleProcess.Instance;
            case "mpi": return new MpiCommunicator();
            case "auto": return LaunchedSize() is > 1 ? new MpiCommunicator() : SingleProcess.Instance;
            default: throw new McirException($"{where}: '{setting}' is not a distributed mode; expected {Choices}");
        }
    }

    /// <summary>
    /// Threads per rank: the logical processors of the node split between its ranks (at least 1), unless
    /// <c>OMP_NUM_THREADS</c> is set, which libtorch then follows. Returns the count set, or null when left alone.
    /// </summary>
    public static int? SplitThreads(ICommunicator communicator)
    {
        if (communicator.Size == 1 || Environment.GetEnvironmentVariable("OMP_NUM_THREADS") is { Length: > 0 }) return null;
        int threads = Math.Max(1, Environment.ProcessorCount / LocalSize());
        TorchSharp.torch.set_num_threads(threads);
        return threads;
    }
}
