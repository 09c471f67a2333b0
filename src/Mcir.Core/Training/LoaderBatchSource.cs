using System.Buffers.Binary;
using Mcir.Core.Data.Datasets;
using static TorchSharp.torch;

namespace Mcir.Core.Training;

/// <summary>
/// Feeds the trainer from a <see cref="PairedBatchLoader"/>, which prepares the next batch's images on a background
/// thread while the current step runs (when its options enable prefetch). A batch is a pure function of (seed,
/// epoch, batch index), so the state is just the position: a resumed run sees exactly the batches it would have seen.
/// </summary>
public sealed class LoaderBatchSource(PairedBatchLoader loader) : IBatchSource, IDisposable
{
    private int _epoch;
    private int _batch;
    private IEnumerator<PairedBatch>? _batches;

    public (Tensor Lq, Tensor Gt) Next()
    {
        if (loader.BatchesPerEpoch == 0)
            throw new McirException($"the training set has {loader.Dataset.Count} images, fewer than one batch of {loader.Options.BatchSize} (lower data.batch_size)");
        _batches ??= loader.Forever(_epoch, _batch).GetEnumerator();
        _batches.MoveNext(); // endless
        var batch = _batches.Current;
        (_epoch, _batch) = batch.BatchIndex + 1 == loader.BatchesPerEpoch ? (batch.Epoch + 1, 0) : (batch.Epoch, batch.BatchIndex + 1);
        // The tensors were created on this thread, in the caller's dispose scope; the wrapper holds nothing else.
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
        Dispose(); // the next Next() starts a fresh enumeration at the restored position
    }

    public void Dispose()
    {
        _batches?.Dispose();
        _batches = null;
    }
}
