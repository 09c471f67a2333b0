using Mcir.Core.Distributed;
using Mcir.Core.ModelContrast;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mcir.Core.Training;

/// <summary>
/// The trainer's collective operations across the ranks of a data-parallel job (PyTorch DDP's role): every call is
/// a no-op for one process. Every rank trains on its equal slice of each global batch.
/// </summary>
internal static class DataParallel
{
    /// <summary>
    /// The one all-reduce of an iteration's scalars: every loss part becomes its mean over the ranks (each rank's part
    /// is the mean over its equal slice, so this is the global batch's mean; a non-finite part anywhere stays
    /// non-finite), and the ranks' stop requests are summed, so the collapse guard and a stop decide alike everywhere.
    /// </summary>
    /// <returns>True when any rank asked to stop.</returns>
    public static bool AgreeOnParts(ICommunicator comm, Dictionary<string, double> parts, bool stopRequested)
    {
        if (comm.Size == 1) return stopRequested;
        var keys = parts.Keys.Order(StringComparer.Ordinal).ToArray();
        var values = new double[keys.Length + 2];
        for (int i = 0; i < keys.Length; i++) values[i] = parts[keys[i]];
        values[^2] = stopRequested ? 1 : 0;
        values[^1] = keys.Length; // the same parts on every rank (else the sums mix different quantities)
        comm.AllReduceSum(values);
        if (values[^1] != (double)keys.Length * comm.Size)
            throw new McirException("distributed: the ranks report different loss parts; every rank must run the same configuration");
        for (int i = 0; i < keys.Length; i++) parts[keys[i]] = values[i] / comm.Size;
        return values[^2] > 0;
    }

    /// <summary>
    /// The one all-reduce of gradients: every parameter's gradient, flattened into one float32 buffer, summed over the
    /// ranks and divided by their number (the gradient of the global batch's mean loss), before clipping and the step.
    /// </summary>
    public static void AverageGradients(ICommunicator comm, IReadOnlyList<Parameter> parameters)
    {
        if (comm.Size == 1) return;
        using var scope = NewDisposeScope();
        var grads = parameters.Where(p => p.grad is not null).Select(p => p.grad!).ToList();
        var flat = cat(grads.Select(g => g.reshape(-1)).ToList(), 0).to(ScalarType.Float32);
        Tensor reduced;
        if (comm is IDeviceCollectives onDevice && flat.device_type == DeviceType.CUDA)
        {
            // dist_backend nccl: the sum is computed on the GPUs.
            reduced = flat.contiguous();
            onDevice.AllReduceSumOnDevice(reduced);
        }
        else
        {
            // MPI reduces host memory (a CUDA buffer is copied through the CPU: dist_backend mpi).
            reduced = flat.device_type == DeviceType.CPU ? flat.contiguous() : flat.cpu();
            unsafe
            {
                fixed (byte* p = reduced.bytes)
                    comm.AllReduceSum((nint)p, reduced.numel());
            }
        }
        reduced.div_(comm.Size);
        long offset = 0;
        foreach (var g in grads)
        {
            long n = g.numel();
            g.copy_(reduced.narrow(0, offset, n).view_as(g));
            offset += n;
        }
    }

    /// <summary>
    /// Checks that every rank holds bit-identical target weights, negatives and target EMA (they follow identical
    /// gradients and need no traffic): CRC-32C of their serialised state, compared by all-reduce.
    /// </summary>
    /// <returns>The log line for rank 0 (null for one process).</returns>
    /// <exception cref="McirException">The ranks differ.</exception>
    public static string? VerifyRanksAgree(ICommunicator comm, long iteration, nn.Module network, TargetEma? ema, NegativeBank? bank)
    {
        if (comm.Size == 1) return null;
        var state = new MemoryStream();
        ModuleStateFile.Write(state, network, "target");
        if (ema is not null) ModuleStateFile.Write(state, ema.Network, "ema");
        bank?.SaveState(state);
        double crc = IO.Crc32C.Compute(state.GetBuffer().AsSpan(0, (int)state.Length));
        var range = new[] { crc, -crc };
        comm.AllReduceMax(range);
        if (range[0] != -range[1])
            throw new McirException($"distributed: the ranks' weights differ at iteration {iteration} (checksums {-range[1]} … {range[0]}); a rank computed differently (mixed CPUs or libraries?)");
        return $"all {comm.Size} ranks hold identical weights, negatives and EMA (CRC-32C {crc:F0})";
    }

    /// <summary>True on every rank when any rank's flag is set (a validation cliff seen by rank 0, say).</summary>
    public static bool Any(ICommunicator comm, bool flag)
    {
        if (comm.Size == 1) return flag;
        var value = new[] { flag ? 1.0 : 0.0 };
        comm.AllReduceMax(value);
        return value[0] != 0;
    }
}
