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

    /// <summary>The <c>dist_backend</c> settings accepted.</summary>
    public const string BackendChoices = "auto, nccl or mpi";

    /// <summary>
    /// How a job's gradients are all-reduced (<c>dist_backend</c>, PyTorch's <c>init_process_group(backend=…)</c>):
    /// <c>nccl</c> reduces CUDA tensors on the GPUs (<see cref="NcclCommunicator"/>); <c>mpi</c> copies them through
    /// host memory and reduces with MPI; <c>auto</c> (default) is <c>nccl</c> when the device is CUDA, there are several
    /// ranks and <see cref="NcclCommunicator.Library"/> loads, else <c>mpi</c>. The settings are checked for every run,
    /// also of one process.
    /// </summary>
    /// <param name="setting">The <c>dist_backend</c> value (null: auto).</param>
    /// <param name="device">The run's device type.</param>
    /// <param name="ranks">The job's number of ranks.</param>
    /// <param name="ncclLoadError">Null when NCCL's library loads, else why not (<see cref="NcclCommunicator.LoadError"/>); asked only when needed.</param>
    /// <param name="where">The key, for messages.</param>
    /// <returns>"nccl" or "mpi", and the reason for a log line.</returns>
    /// <exception cref="McirException">An unknown setting; <c>nccl</c> for a CPU device; <c>nccl</c> for several ranks
    /// when the library does not load.</exception>
    public static (string Backend, string Reason) ChooseBackend(string? setting, TorchSharp.DeviceType device, int ranks, Func<string?> ncclLoadError, string where = "dist_backend")
    {
        string s = (setting ?? "auto").Trim().ToLowerInvariant();
        if (s is not ("auto" or "nccl" or "mpi"))
            throw new McirException($"{where}: '{setting}' is not a gradient backend; expected {BackendChoices}");
        bool cuda = device == TorchSharp.DeviceType.CUDA;
        if (s == "mpi") return ("mpi", $"{where} = mpi");
        if (s == "nccl")
        {
            if (!cuda)
                throw new McirException($"{where}: 'nccl' reduces CUDA tensors, but the device is {device.ToString().ToLowerInvariant()}; set device to cuda, or {where} to mpi or auto");
            if (ranks > 1 && ncclLoadError() is { } error)
                throw new McirException($"{where}: 'nccl' needs NVIDIA's NCCL library {NcclCommunicator.Library}, which could not be loaded ({error}); install NCCL 2 or set {where} to mpi");
            return ("nccl", $"{where} = nccl");
        }
        if (!cuda) return ("mpi", $"{where} = auto, device {device.ToString().ToLowerInvariant()}");
        if (ranks == 1) return ("mpi", $"{where} = auto, one process");
        return ncclLoadError() is { } why
            ? ("mpi", $"{where} = auto, {NcclCommunicator.Library} not loaded ({why}): gradients go through host memory")
            : ("nccl", $"{where} = auto, device cuda, {NcclCommunicator.Library} loaded");
    }

    /// <summary>
    /// The communicator the trainer uses on <paramref name="device"/>: <paramref name="comm"/> itself, or for the NCCL
    /// backend (<see cref="ChooseBackend"/>) an <see cref="NcclCommunicator"/> over it (the caller disposes it, not
    /// <paramref name="comm"/>). Collective when NCCL is chosen.
    /// </summary>
    public static ICommunicator ForGradients(ICommunicator comm, string? setting, TorchSharp.torch.Device device, TextWriter log)
    {
        var (backend, reason) = ChooseBackend(setting, device.type, comm.Size, NcclCommunicator.LoadError);
        if (comm.Size == 1) return comm;
        log.WriteLine($"gradients: {(backend == "nccl" ? "NCCL all-reduce on the GPUs" : "MPI all-reduce through host memory")} ({reason})");
        return backend == "nccl" ? new NcclCommunicator(comm, Math.Max(0, (int)device.index)) : comm;
    }

    /// <summary>This rank's index on its node, as the launcher announced it (0 when unknown).</summary>
    public static int LocalRank()
    {
        foreach (var name in new[] { "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID", "PMI_LOCAL_RANK" })
            if (int.TryParse(Environment.GetEnvironmentVariable(name), out int n) && n >= 0) return n;
        return 0;
    }

    /// <summary>
    /// The CUDA device of a rank when the setting names none (<c>cuda</c>, <c>auto</c>): one GPU per rank of the node,
    /// cuda:(local rank mod visible devices), as <c>torchrun</c>'s LOCAL_RANK is used. An explicit <c>cuda:N</c> is kept.
    /// </summary>
    public static int RankDevice(string? setting, int resolvedIndex, int localRank, int visibleDevices)
    {
        string s = (setting ?? "auto").Trim().ToLowerInvariant();
        if (s.StartsWith("cuda:", StringComparison.Ordinal) || visibleDevices <= 1) return resolvedIndex;
        return localRank % visibleDevices;
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
