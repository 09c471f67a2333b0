using static TorchSharp.torch;

namespace Mcir.Core.Data.Datasets;

/// <summary>Settings of <see cref="PairedBatchLoader"/> (BasicSR's <c>batch_size_per_gpu</c>, shuffle, drop_last, seed).</summary>
public sealed record PairedLoaderOptions
{
    /// <summary>Samples per batch. Default 16 (BasicSR's EDSR configurations).</summary>
    public int BatchSize { get; init; } = 16;

    /// <summary>A new random order every epoch (default), or the data set's order.</summary>
    public bool Shuffle { get; init; } = true;

    /// <summary>Skip the last, incomplete batch of an epoch (default, as BasicSR's training loader).</summary>
    public bool DropLast { get; init; } = true;

    /// <summary>Seed of the order and of every crop/flip: the same seed gives the same batches.</summary>
    public int Seed { get; init; }

    /// <summary>Prepare the next batch on a background thread while the caller uses the current one. Default true.</summary>
    public bool Prefetch { get; init; } = true;

    /// <summary>Threads that load the samples of one batch (decoding, resizing, cropping). Default 1.</summary>
    public int Workers { get; init; } = 1;

    /// <summary>Where the batch tensors are created; null = CPU.</summary>
    public Device? Device { get; init; }

    /// <summary>
    /// Data-parallel training: this process loads only its part <see cref="Shard"/> of <see cref="Shards"/> of every
    /// batch (samples [B·r/n, B·(r+1)/n) of the global batch of <see cref="BatchSize"/>), so the samples, their
    /// augmentations and their order do not depend on the number of processes. <see cref="BatchSize"/> must be a
    /// multiple of <see cref="Shards"/>.
    /// </summary>
    public int Shard { get; init; }

    /// <summary>The number of processes sharing each batch (1: the whole batch here).</summary>
    public int Shards { get; init; } = 1;
}

/// <summary>
/// One batch: <see cref="Lq"/> float32 [B, 3, h, w] and <see cref="Gt"/> float32 [B, 3, H, W], values in [0, 1].
/// The caller owns the tensors and must dispose the batch (or its tensors).
/// </summary>
public sealed class PairedBatch : IDisposable
{
    internal PairedBatch(Tensor lq, Tensor gt, IReadOnlyList<int> indices, IReadOnlyList<string> names, int epoch, int batchIndex)
    {
        Lq = lq;
        Gt = gt;
        Indices = indices;
        Names = names;
        Epoch = epoch;
        BatchIndex = batchIndex;
    }

    /// <summary>Low-quality inputs, [B, 3, h, w].</summary>
    public Tensor Lq { get; }

    /// <summary>Ground truths, [B, 3, H, W].</summary>
    public Tensor Gt { get; }

    /// <summary>Data set indices of the samples, in batch order.</summary>
    public IReadOnlyList<int> Indices { get; }

    /// <summary>Names of the samples, in batch order.</summary>
    public IReadOnlyList<string> Names { get; }

    /// <summary>The epoch this batch belongs to.</summary>
    public int Epoch { get; }

    /// <summary>Position of this batch in its epoch (0-based).</summary>
    public int BatchIndex { get; }

    /// <summary>Number of samples.</summary>
    public int Count => Indices.Count;

    /// <summary>Disposes <see cref="Lq"/> and <see cref="Gt"/>.</summary>
    public void Dispose()
    {
        Lq.Dispose();
        Gt.Dispose();
    }
}

/// <summary>
/// Batches an <see cref="IPairedDataset"/>: a seeded shuffle per epoch, fixed batch size, optional drop of the last
/// incomplete batch, and optional background preparation of the next batch.
/// </summary>
/// <remarks>
/// <para>Reproducible: epoch e's order is a Fisher–Yates shuffle seeded from (Seed, e), and sample i of epoch e is
/// cropped/augmented with a <see cref="Random"/> seeded from (Seed, e, i). Batches therefore do not depend on
/// <see cref="PairedLoaderOptions.Prefetch"/>, <see cref="PairedLoaderOptions.Workers"/> or on which batches were
/// loaded before (<see cref="LoadBatch"/> gives any batch directly, e.g. to resume).</para>
/// <para>Background work produces managed images only; tensors are created on the caller's thread when a batch is
/// handed out, so an abandoned enumeration leaks no native memory and the tensors join the caller's dispose scope
/// if one is open.</para>
/// </remarks>
public sealed class PairedBatchLoader
{
    private readonly IPairedDataset _dataset;

    /// <summary>Creates a loader over <paramref name="dataset"/>.</summary>
    /// <exception cref="ArgumentException">Invalid options, or no complete batch (data set smaller than the batch
    /// size with <see cref="PairedLoaderOptions.DropLast"/>).</exception>
    public PairedBatchLoader(IPairedDataset dataset, PairedLoaderOptions options)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        ArgumentNullException.ThrowIfNull(options);
        if (options.BatchSize < 1)
            throw new ArgumentException($"{nameof(options.BatchSize)} must be >= 1, got {options.BatchSize}", nameof(options));
        if (options.Shards < 1 || options.Shard < 0 || options.Shard >= options.Shards)
            throw new ArgumentException($"shard {options.Shard} of {options.Shards} is not a shard", nameof(options));
        if (options.BatchSize % options.Shards != 0)
            throw new McirException($"data.batch_size {options.BatchSize} is the global batch and must be a multiple of the {options.Shards} processes (ranks) that share it");
        if (options.Workers < 1)
            throw new ArgumentException($"{nameof(options.Workers)} must be >= 1, got {options.Workers}", nameof(options));
        if (dataset.Count < 1)
            throw new ArgumentException("the data set is empty", nameof(dataset));
        _dataset = dataset;
        Options = options;
        BatchesPerEpoch = options.DropLast
            ? dataset.Count / options.BatchSize
            : (dataset.Count + options.BatchSize - 1) / options.BatchSize;
        if (BatchesPerEpoch == 0)
            throw new ArgumentException(
                $"the data set has {dataset.Count} samples, fewer than one batch of {options.BatchSize} with {nameof(options.DropLast)} on: lower the batch size or turn {nameof(options.DropLast)} off",
                nameof(options));
    }

    /// <summary>The settings.</summary>
    public PairedLoaderOptions Options { get; }

    /// <summary>The data set.</summary>
    public IPairedDataset Dataset => _dataset;

    /// <summary>Batches per epoch.</summary>
    public int BatchesPerEpoch { get; }

    /// <summary>The order in which epoch <paramref name="epoch"/> visits the samples (a permutation of all indices).</summary>
    public int[] EpochOrder(int epoch)
    {
        var order = Enumerable.Range(0, _dataset.Count).ToArray();
        if (Options.Shuffle)
        {
            var rng = new Random(Seeds.Mix(Options.Seed, epoch, -1));
            for (int i = order.Length - 1; i > 0; i--)
            {
                int j = rng.Next(i + 1);
                (order[i], order[j]) = (order[j], order[i]);
            }
        }
        return order;
    }

    /// <summary>Batch <paramref name="batchIndex"/> of epoch <paramref name="epoch"/>, loaded on the calling thread.
    /// The caller owns (and disposes) the result.</summary>
    public PairedBatch LoadBatch(int epoch, int batchIndex) =>
        ToBatch(LoadImages(EpochOrder(epoch), epoch, batchIndex));

    /// <summary>
    /// The batches of epoch <paramref name="epoch"/>, from <paramref name="startBatch"/> on. Each yielded batch is owned by
    /// the caller (dispose it); the loader keeps no reference to it.
    /// </summary>
    public IEnumerable<PairedBatch> Epoch(int epoch, int startBatch = 0)
    {
        if (startBatch < 0 || startBatch > BatchesPerEpoch)
            throw new ArgumentOutOfRangeException(nameof(startBatch), $"start batch must be in [0, {BatchesPerEpoch}], got {startBatch}");
        return EpochIterator(epoch, startBatch);
    }

    /// <summary>Endless batches: epoch <paramref name="startEpoch"/> from <paramref name="startBatch"/>, then the next epochs.</summary>
    public IEnumerable<PairedBatch> Forever(int startEpoch = 0, int startBatch = 0)
    {
        for (int e = startEpoch; ; e++, startBatch = 0)
            foreach (var batch in Epoch(e, startBatch))
                yield return batch;
    }

    private IEnumerable<PairedBatch> EpochIterator(int epoch, int startBatch)
    {
        var order = EpochOrder(epoch);
        Task<LoadedBatch>? pending = null;
        try
        {
            for (int b = startBatch; b < BatchesPerEpoch; b++)
            {
                LoadedBatch current;
                if (pending is not null)
                {
                    var task = pending;
                    pending = null;
                    current = task.GetAwaiter().GetResult(); // rethrows the loader's exception unwrapped
                }
                else
                {
                    current = LoadImages(order, epoch, b);
                }

                if (Options.Prefetch && b + 1 < BatchesPerEpoch)
                {
                    int next = b + 1;
                    pending = Task.Run(() => LoadImages(order, epoch, next));
                }

                yield return ToBatch(current);
            }
        }
        finally
        {
            // An abandoned enumeration: let the background load finish (it holds managed images only) and observe it.
            if (pending is not null)
            {
                try { pending.Wait(); }
                catch (AggregateException) { }
            }
        }
    }

    private LoadedBatch LoadImages(int[] order, int epoch, int batchIndex)
    {
        int start = batchIndex * Options.BatchSize;
        int count = Math.Min(Options.BatchSize, order.Length - start);
        if (Options.Shards > 1)
        {
            // this process's slice of the global batch (the last, short batch of DropLast = false is split the same way)
            int from = count * Options.Shard / Options.Shards, to = count * (Options.Shard + 1) / Options.Shards;
            start += from;
            count = to - from;
        }
        var indices = new int[count];
        Array.Copy(order, start, indices, 0, count);
        var samples = new PairedImages[count];
        void LoadOne(int k) => samples[k] = _dataset.Load(indices[k], new Random(Seeds.Mix(Options.Seed, epoch, indices[k])));
        if (Options.Workers > 1 && count > 1)
            Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = Options.Workers }, LoadOne);
        else
            for (int k = 0; k < count; k++) LoadOne(k);
        return new LoadedBatch(indices, samples, epoch, batchIndex);
    }

    private PairedBatch ToBatch(LoadedBatch loaded)
    {
        var s = loaded.Samples;
        for (int k = 1; k < s.Length; k++)
        {
            if (s[k].Lq.Height != s[0].Lq.Height || s[k].Lq.Width != s[0].Lq.Width
                || s[k].Gt.Height != s[0].Gt.Height || s[k].Gt.Width != s[0].Gt.Width)
                throw new McirException(
                    $"samples of one batch must have the same size: '{s[0].Name}' is LQ {s[0].Lq.Height}x{s[0].Lq.Width} / GT {s[0].Gt.Height}x{s[0].Gt.Width}, "
                    + $"'{s[k].Name}' is LQ {s[k].Lq.Height}x{s[k].Lq.Width} / GT {s[k].Gt.Height}x{s[k].Gt.Width}; crop to a patch size (GtSize) or use batch size 1");
        }

        var lq = ImageTensor.ToBatch(s.Select(static p => p.Lq).ToArray(), Options.Device, _dataset.Channels);
        Tensor gt;
        try
        {
            gt = ImageTensor.ToBatch(s.Select(static p => p.Gt).ToArray(), Options.Device, _dataset.Channels);
        }
        catch
        {
            lq.Dispose();
            throw;
        }
        return new PairedBatch(lq, gt, loaded.Indices, s.Select(static p => p.Name).ToArray(), loaded.Epoch, loaded.BatchIndex);
    }

    private sealed record LoadedBatch(int[] Indices, PairedImages[] Samples, int Epoch, int BatchIndex);
}

/// <summary>Deterministic seed derivation (SplitMix64 finaliser), stable across .NET versions and platforms.</summary>
internal static class Seeds
{
    public static int Mix(int seed, int epoch, int index)
    {
        ulong z = (ulong)(uint)seed;
        z = Step(z ^ ((ulong)(uint)epoch << 1));
        z = Step(z ^ ((ulong)(uint)index << 2));
        return (int)(z & 0x7FFF_FFFF);
    }

    private static ulong Step(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
