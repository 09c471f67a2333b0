using System.Security.Cryptography;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Distributed;

/// <summary>
/// <c>mcir-host dist-check</c>: checks, before a long job, that the ranks of an MPI launch can talk the way training
/// will: an MPI all-reduce, the NCCL unique-id handshake (rank 0's 128 bytes broadcast over MPI; made by
/// <c>ncclGetUniqueId</c> when <c>libnccl.so.2</c> loads, else random bytes, which checks the exchange alone), and
/// with the NCCL backend on CUDA devices an NCCL all-reduce of a device tensor.
/// </summary>
public static class DistributedCheck
{
    /// <summary>Runs the checks on every rank (collective); rank 0's summary goes to <paramref name="output"/>, one line per rank to <paramref name="error"/>.</summary>
    /// <exception cref="McirException">A check failed (a rank disagrees).</exception>
    public static void Run(ICommunicator comm, string? deviceSetting, string? backendSetting, TextWriter output, TextWriter error)
    {
        var device = Compute.TorchDevice.Resolve(deviceSetting, "--device");
        if (comm.Size > 1 && device.type == DeviceType.CUDA)
            device = new Device(DeviceType.CUDA, Communicators.RankDevice(deviceSetting, Math.Max(0, (int)device.index), Communicators.LocalRank(), cuda.device_count()));
        var (backend, reason) = Communicators.ChooseBackend(backendSetting, device.type, comm.Size, NcclCommunicator.LoadError, "--dist-backend");
        if (comm.IsRoot) output.WriteLine($"ranks: {comm.Describe()}; device {Compute.TorchDevice.Describe(device)}; gradients by {backend} ({reason})");

        // 1. MPI: the sum of 1 … N.
        var sum = new[] { comm.Rank + 1.0 };
        comm.AllReduceSum(sum);
        double expected = comm.Size * (comm.Size + 1) / 2.0;
        if (sum[0] != expected) throw new McirException($"dist-check: rank {comm.Rank}: MPI all-reduce gave {sum[0]}, expected {expected}");
        if (comm.IsRoot) output.WriteLine($"MPI all-reduce: {sum[0]} = 1 + … + {comm.Size}");

        // 2. The NCCL unique id, made on rank 0 and broadcast (the handshake NcclCommunicator does).
        bool nccl = NcclCommunicator.LoadError() is null;
        var id = NcclCommunicator.ShareUniqueId(comm, () => nccl ? NcclCommunicator.MakeUniqueId() : RandomNumberGenerator.GetBytes(NcclCommunicator.UniqueIdBytes));
        string digest = Convert.ToHexStringLower(SHA256.HashData(id))[..16];
        error.WriteLine($"rank {comm.Rank} of {comm.Size}: NCCL unique id {id.Length} bytes, sha256 {digest}");
        // Agreement: the largest and smallest of a hash prefix over the ranks are equal.
        double h = BitConverter.ToUInt32(SHA256.HashData(id), 0);
        var range = new[] { h, -h };
        comm.AllReduceMax(range);
        if (range[0] != -range[1]) throw new McirException($"dist-check: the ranks received different NCCL unique ids");
        if (comm.IsRoot)
            output.WriteLine($"NCCL unique id: all {comm.Size} ranks hold rank 0's {id.Length} bytes (sha256 {digest}; {(nccl ? "made by ncclGetUniqueId" : $"random bytes: {NcclCommunicator.Library} not loaded")})");

        // 3. NCCL all-reduce of a device tensor.
        if (backend != "nccl" || comm.Size == 1) return;
        using var gradients = new NcclCommunicator(comm, Math.Max(0, (int)device.index));
        using var scope = NewDisposeScope();
        var values = full(new long[] { 1024 }, comm.Rank + 1.0f, dtype: ScalarType.Float32, device: device);
        gradients.AllReduceSumOnDevice(values);
        float min = values.min().cpu().item<float>(), max = values.max().cpu().item<float>();
        if (min != expected || max != expected)
            throw new McirException($"dist-check: rank {comm.Rank}: NCCL all-reduce gave {min} … {max}, expected {expected}");
        if (comm.IsRoot) output.WriteLine($"NCCL all-reduce on the GPUs: {expected} = 1 + … + {comm.Size} ({gradients.Version})");
    }
}
