using System.CommandLine;
using Mcir.Core.Distributed;

namespace Mcir.Host.Commands;

/// <summary><c>mcir-host dist-check</c>: can the ranks of an MPI launch talk as training will (MPI, the NCCL handshake, NCCL on GPUs)?</summary>
internal static class DistCheckCommand
{
    public static Command Create(HostConsole console)
    {
        var device = new Option<string>("--device") { Description = "auto, cpu, cuda or cuda:N (each rank takes cuda:(local rank) when no index is given)", DefaultValueFactory = _ => "auto" };
        var backend = new Option<string>("--dist-backend") { Description = "auto, nccl or mpi, as the run configuration's dist_backend", DefaultValueFactory = _ => "auto" };
        var command = new Command("dist-check", "Run under mpirun/srun: checks the ranks' MPI all-reduce, the NCCL unique-id handshake and, on CUDA devices with NCCL, an NCCL all-reduce")
        {
            device, backend,
        };
        command.SetAction(r =>
        {
            using var comm = Communicators.Create("mpi", "dist-check");
            return HostCommands.OnEveryRank(comm, console.Error, () =>
            {
                DistributedCheck.Run(comm, r.GetValue(device), r.GetValue(backend), console.Out, console.Error);
                return 0;
            });
        });
        return command;
    }
}
