using System.Buffers.Binary;
using Mcir.Core.Data.Datasets;
using static TorchSharp.torch;

namespace Mcir.Core.Training;

/// <summary>
/// Feeds the trainer from a <see cref="PairedBatchLoader"/>. A batch is a pure function of (seed, epoch, batch
/// index), so the state is just the position: a resumed run sees exactly the batches it would have seen.
/// </summary>
public sealed class LoaderBatchSource(PairedBatchLoader loader) : IBatchSource
{
    private int _epoch;
    private int _batch;

    public (Tensor Lq, Tensor Gt) Next()
    {
        if (loader.BatchesPerEpoch == 0)
            throw new McirException($"the training set has {loader.Dataset.Count} images, fewer than one batch of {loader.Options.BatchSize} (lower data.batch_size)");
        var batch = loader.LoadBatch(_epoch, _batch);
        if (++_batch == loader.BatchesPerEpoch) { _batch = 0; _epoch++; }
        // The batch's tensors were created in the caller's dispose scope; the wrapper itself holds nothing else.
        return (batch.Lq, batch.Gt);
    }

    public byte[] GetState()
    {
        var state = new byte[8];
        BinaryPrimitives.WriteInt32LittleEndian(state, _epoch);
        BinaryPrimitives.WriteInt32LittleEndian(state.AsSpan(4), _batch);
        return state;
    }

    public void SetState(byte[] state)
    {
        if (state.Length != 8) throw new InvalidDataException($"batch source state: expected 8 bytes (epoch, batch), found {state.Length}");
        _epoch = BinaryPrimitives.ReadInt32LittleEndian(state);
        _batch = BinaryPrimitives.ReadInt32LittleEndian(state.AsSpan(4));
    }
}
