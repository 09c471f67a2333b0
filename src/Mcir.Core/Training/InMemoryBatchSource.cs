using System.Buffers.Binary;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Training;

/// <summary>
/// Batches drawn from paired tensors held in memory (LQ [N, C, h, w], GT [N, C, H, W]): every epoch visits the N
/// samples in an order shuffled by a <see cref="SplitMix64"/> seeded with the given seed; a batch never crosses an
/// epoch boundary (the last, short part of an epoch is dropped, like BasicSR's <c>drop_last=True</c>). The state
/// (generator, epoch order, cursor, epoch number) is saved and restored exactly. For tests and tiny data.
/// </summary>
public sealed class InMemoryBatchSource : IBatchSource, IDisposable
{
    private const uint Magic = 0x4D434253; // "MCBS"
    private readonly Tensor _lq;
    private readonly Tensor _gt;
    private readonly int _batchSize;
    private readonly bool _shuffle;
    private readonly SplitMix64 _rng;
    private int[] _order;
    private int _cursor;

    /// <summary>
    /// Keeps (detached) references to <paramref name="lq"/> and <paramref name="gt"/>; the source disposes its own
    /// handles, the caller keeps ownership of the originals.
    /// </summary>
    public InMemoryBatchSource(Tensor lq, Tensor gt, int batchSize, ulong seed, bool shuffle = true)
    {
        ArgumentNullException.ThrowIfNull(lq);
        ArgumentNullException.ThrowIfNull(gt);
        if (lq.dim() < 1 || gt.dim() < 1 || lq.shape[0] != gt.shape[0])
            throw new ArgumentException($"in-memory batches: LQ and GT must have the same number of samples, got {lq.shape.FirstOrDefault()} and {gt.shape.FirstOrDefault()}");
        if (batchSize < 1 || batchSize > lq.shape[0])
            throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, $"must be in [1, {lq.shape[0]}]");
        _lq = lq.detach();
        _gt = gt.detach();
        _lq.DetachFromDisposeScope();
        _gt.DetachFromDisposeScope();
        _batchSize = batchSize;
        _shuffle = shuffle;
        _rng = new SplitMix64(seed);
        _order = [];
        _cursor = 0;
    }

    /// <summary>Number of samples.</summary>
    public int Count => (int)_lq.shape[0];

    /// <summary>Completed epochs (0 during the first).</summary>
    public long Epoch { get; private set; } = -1;

    /// <inheritdoc />
    public (Tensor Lq, Tensor Gt) Next()
    {
        if (_order.Length == 0 || _cursor + _batchSize > _order.Length) NewEpoch();
        var idx = new long[_batchSize];
        for (int i = 0; i < _batchSize; i++) idx[i] = _order[_cursor + i];
        _cursor += _batchSize;
        using var index = tensor(idx, dtype: ScalarType.Int64, device: _lq.device);
        return (_lq.index_select(0, index), _gt.index_select(0, index));
    }

    private void NewEpoch()
    {
        _order = Enumerable.Range(0, Count).ToArray();
        if (_shuffle) _rng.Shuffle(_order.AsSpan());
        _cursor = 0;
        Epoch++;
    }

    /// <inheritdoc />
    public byte[] GetState()
    {
        var buffer = new byte[4 + 8 + 8 + 4 + 4 + 4 + 4 * _order.Length];
        var s = buffer.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(s, Magic);
        BinaryPrimitives.WriteUInt64LittleEndian(s[4..], _rng.State);
        BinaryPrimitives.WriteInt64LittleEndian(s[12..], Epoch);
        BinaryPrimitives.WriteInt32LittleEndian(s[20..], Count);
        BinaryPrimitives.WriteInt32LittleEndian(s[24..], _cursor);
        BinaryPrimitives.WriteInt32LittleEndian(s[28..], _order.Length);
        for (int i = 0; i < _order.Length; i++) BinaryPrimitives.WriteInt32LittleEndian(s[(32 + 4 * i)..], _order[i]);
        return buffer;
    }

    /// <inheritdoc />
    public void SetState(byte[] state)
    {
        ArgumentNullException.ThrowIfNull(state);
        var s = state.AsSpan();
        if (s.Length < 32 || BinaryPrimitives.ReadUInt32LittleEndian(s) != Magic)
            throw new InvalidDataException("in-memory batch source: the saved state is not an in-memory batch-source state");
        int count = BinaryPrimitives.ReadInt32LittleEndian(s[20..]);
        int cursor = BinaryPrimitives.ReadInt32LittleEndian(s[24..]);
        int n = BinaryPrimitives.ReadInt32LittleEndian(s[28..]);
        if (count != Count) throw new InvalidDataException($"in-memory batch source: the state was saved for {count} samples, this source has {Count}");
        if ((n != 0 && n != Count) || s.Length != 32 + 4 * n || cursor < 0 || cursor > n)
            throw new InvalidDataException("in-memory batch source: the saved state is malformed");
        var order = new int[n];
        for (int i = 0; i < n; i++)
        {
            order[i] = BinaryPrimitives.ReadInt32LittleEndian(s[(32 + 4 * i)..]);
            if ((uint)order[i] >= (uint)Count) throw new InvalidDataException("in-memory batch source: the saved order holds an out-of-range index");
        }
        _rng.State = BinaryPrimitives.ReadUInt64LittleEndian(s[4..]);
        Epoch = BinaryPrimitives.ReadInt64LittleEndian(s[12..]);
        _order = order;
        _cursor = cursor;
    }

    /// <summary>Releases this source's tensor handles.</summary>
    public void Dispose()
    {
        _lq.Dispose();
        _gt.Dispose();
    }
}
