using Mcir.Core.Data;
using Mcir.Core.Data.Datasets;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Data.Datasets;

public class PairedBatchLoaderTests
{
    /// <summary>Sample index of each batch entry (the in-memory data set writes it into LQ blue).</summary>
    private static int[] TaggedIndices(PairedBatch batch)
    {
        using var scope = NewDisposeScope();
        var blue = batch.Lq[.., 2, 0, 0].mul(255).round().to(ScalarType.Int32);
        return blue.data<int>().ToArray();
    }

    private static string Fingerprint(PairedBatch b)
    {
        using var scope = NewDisposeScope();
        return $"{string.Join(",", b.Indices)}|{b.Lq.sum().item<float>()}|{b.Gt.sum().item<float>()}|{(b.Lq * b.Lq.flatten().argsort().reshape(b.Lq.shape).to(ScalarType.Float32)).sum().item<float>()}";
    }

    private static List<string> Run(IPairedDataset ds, PairedLoaderOptions options, int epoch)
    {
        var loader = new PairedBatchLoader(ds, options);
        var result = new List<string>();
        foreach (var batch in loader.Epoch(epoch))
            using (batch)
                result.Add(Fingerprint(batch));
        return result;
    }

    [Theory]
    [InlineData(10, 3, false, 4)]
    [InlineData(10, 3, true, 3)]
    [InlineData(12, 4, true, 3)]
    [InlineData(5, 8, false, 1)]
    public void EveryEpochVisitsEverySampleOnce(int count, int batchSize, bool dropLast, int expectedBatches)
    {
        var ds = new InMemoryPairedDataset(count);
        var loader = new PairedBatchLoader(ds, new PairedLoaderOptions { BatchSize = batchSize, DropLast = dropLast, Seed = 1 });
        Assert.Equal(expectedBatches, loader.BatchesPerEpoch);
        var orders = new List<string>();
        for (int epoch = 0; epoch < 3; epoch++)
        {
            var seen = new List<int>();
            int batches = 0;
            foreach (var batch in loader.Epoch(epoch))
            {
                using (batch)
                {
                    Assert.Equal(batch.Indices, TaggedIndices(batch));
                    Assert.Equal(batch.Indices.Select(i => $"s{i:D3}"), batch.Names);
                    Assert.Equal(epoch, batch.Epoch);
                    Assert.Equal(batches, batch.BatchIndex);
                    Assert.True(batch.Count == batchSize || (!dropLast && batches == expectedBatches - 1));
                    seen.AddRange(batch.Indices);
                    batches++;
                }
            }
            Assert.Equal(expectedBatches, batches);
            Assert.Equal(seen.Count, seen.Distinct().Count());
            if (dropLast)
                Assert.Equal(count / batchSize * batchSize, seen.Count);
            else
                Assert.Equal(Enumerable.Range(0, count), seen.Order());
            Assert.Equal(loader.EpochOrder(epoch).Take(seen.Count), seen);
            Assert.Equal(Enumerable.Range(0, count), loader.EpochOrder(epoch).Order());
            orders.Add(string.Join(",", loader.EpochOrder(epoch)));
        }
        if (count > 5) Assert.Equal(3, orders.Distinct().Count());
    }

    [Fact]
    public void BatchesHaveTheBatchShapesAndAlignedContent()
    {
        var ds = new InMemoryPairedDataset(6, scale: 2, lqSize: 12, gtSize: 8);
        var loader = new PairedBatchLoader(ds, new PairedLoaderOptions { BatchSize = 3, Seed = 4 });
        foreach (var batch in loader.Epoch(0))
        {
            using (batch)
            {
                Assert.Equal(new long[] { 3, 3, 4, 4 }, batch.Lq.shape);
                Assert.Equal(new long[] { 3, 3, 8, 8 }, batch.Gt.shape);
                Assert.Equal(ScalarType.Float32, batch.Lq.dtype);
                using var scope = NewDisposeScope();
                // GT pixel (Y, X) carries the coordinates of LQ pixel (Y / 2, X / 2) in R and G.
                var upLq = batch.Lq[.., ..2].repeat_interleave(2, 2).repeat_interleave(2, 3);
                Assert.True(upLq.eq(batch.Gt[.., ..2]).all().item<bool>());
            }
        }
    }

    [Fact]
    public void SameSeedSameBatchesOtherSeedOtherBatches()
    {
        var ds = new InMemoryPairedDataset(9);
        var a = Run(ds, new PairedLoaderOptions { BatchSize = 2, Seed = 7 }, epoch: 2);
        var b = Run(ds, new PairedLoaderOptions { BatchSize = 2, Seed = 7 }, epoch: 2);
        var c = Run(ds, new PairedLoaderOptions { BatchSize = 2, Seed = 8 }, epoch: 2);
        var d = Run(ds, new PairedLoaderOptions { BatchSize = 2, Seed = 7 }, epoch: 3);
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.NotEqual(a, d);
    }

    [Fact]
    public void PrefetchWorkersAndRandomAccessDoNotChangeTheBatches()
    {
        var ds = new InMemoryPairedDataset(11);
        var baseOptions = new PairedLoaderOptions { BatchSize = 3, DropLast = false, Seed = 3, Prefetch = false };
        var plain = Run(ds, baseOptions, 1);
        Assert.Equal(plain, Run(ds, baseOptions with { Prefetch = true }, 1));
        Assert.Equal(plain, Run(ds, baseOptions with { Prefetch = true, Workers = 3 }, 1));
        var loader = new PairedBatchLoader(ds, baseOptions);
        using (var third = loader.LoadBatch(1, 2)) Assert.Equal(plain[2], Fingerprint(third));
        var resumed = new List<string>();
        foreach (var batch in loader.Epoch(1, startBatch: 2))
            using (batch) resumed.Add(Fingerprint(batch));
        Assert.Equal(plain.Skip(2), resumed);
    }

    [Fact]
    public void WithoutShuffleTheOrderIsTheDataSetOrder()
    {
        var ds = new InMemoryPairedDataset(5);
        var loader = new PairedBatchLoader(ds, new PairedLoaderOptions { BatchSize = 2, DropLast = false, Shuffle = false });
        var seen = new List<int>();
        foreach (var batch in loader.Epoch(0)) using (batch) seen.AddRange(batch.Indices);
        Assert.Equal([0, 1, 2, 3, 4], seen);
    }

    [Fact]
    public void ForeverRunsAcrossEpochs()
    {
        var ds = new InMemoryPairedDataset(4);
        var loader = new PairedBatchLoader(ds, new PairedLoaderOptions { BatchSize = 2, Seed = 5 });
        var batches = new List<(int Epoch, int Index)>();
        foreach (var batch in loader.Forever().Take(5))
            using (batch) batches.Add((batch.Epoch, batch.BatchIndex));
        Assert.Equal([(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)], batches);
    }

    [Fact]
    public void BatchTensorsBelongToTheCaller()
    {
        var ds = new InMemoryPairedDataset(4);
        var loader = new PairedBatchLoader(ds, new PairedLoaderOptions { BatchSize = 2, Seed = 1 });
        var kept = new List<PairedBatch>();
        foreach (var batch in loader.Epoch(0)) kept.Add(batch);
        // Still usable after the enumeration ended: the loader disposes nothing it handed out.
        foreach (var batch in kept)
        {
            Assert.False(batch.Lq.IsInvalid);
            using (var s = batch.Gt.sum()) Assert.True(s.item<float>() > 0);
            batch.Dispose();
            Assert.True(batch.Lq.IsInvalid && batch.Gt.IsInvalid);
        }
    }

    [Fact]
    public void AnAbandonedEpochStopsLoading()
    {
        var ds = new InMemoryPairedDataset(20);
        var loader = new PairedBatchLoader(ds, new PairedLoaderOptions { BatchSize = 2, Seed = 1, Prefetch = true });
        foreach (var batch in loader.Epoch(0))
        {
            batch.Dispose();
            break;
        }
        int loads = ds.Loads;
        Assert.Equal(4, loads); // the first batch and the prefetched second one, nothing more
        Thread.Sleep(50);
        Assert.Equal(loads, ds.Loads);
    }

    [Fact]
    public void DataSetErrorsReachTheCaller()
    {
        var ds = new FailingDataset(6, failAt: 3);
        var loader = new PairedBatchLoader(ds, new PairedLoaderOptions { BatchSize = 2, Shuffle = false, Prefetch = true });
        var e = Assert.Throws<McirException>(() =>
        {
            foreach (var batch in loader.Epoch(0)) batch.Dispose();
        });
        Assert.Contains("sample 3", e.Message);
    }

    [Fact]
    public void ImagesOfDifferentSizesInOneBatchAreAClearError()
    {
        var ds = new WholeImageDataset();
        var loader = new PairedBatchLoader(ds, new PairedLoaderOptions { BatchSize = 2, Shuffle = false });
        var e = Assert.Throws<McirException>(() => loader.LoadBatch(0, 0));
        Assert.Contains("'a'", e.Message);
        Assert.Contains("'b'", e.Message);
        using var one = new PairedBatchLoader(ds, new PairedLoaderOptions { BatchSize = 1, Shuffle = false }).LoadBatch(0, 1);
        Assert.Equal(new long[] { 1, 3, 5, 6 }, one.Lq.shape);
    }

    [Fact]
    public void InvalidSettingsAreClearErrors()
    {
        var ds = new InMemoryPairedDataset(3);
        Assert.Contains("fewer than one batch", Assert.Throws<ArgumentException>(() => new PairedBatchLoader(ds, new PairedLoaderOptions { BatchSize = 4 })).Message);
        Assert.Contains("BatchSize", Assert.Throws<ArgumentException>(() => new PairedBatchLoader(ds, new PairedLoaderOptions { BatchSize = 0 })).Message);
        Assert.Equal(1, new PairedBatchLoader(ds, new PairedLoaderOptions { BatchSize = 4, DropLast = false }).BatchesPerEpoch);
    }

    private sealed class FailingDataset(int count, int failAt) : IPairedDataset
    {
        private readonly InMemoryPairedDataset _inner = new(count);
        public int Count => count;
        public string NameOf(int index) => _inner.NameOf(index);
        public PairedImages Load(int index, Random rng) =>
            index == failAt ? throw new McirException($"cannot read sample {index}") : _inner.Load(index, rng);
    }

    private sealed class WholeImageDataset : IPairedDataset
    {
        public int Count => 2;
        public string NameOf(int index) => index == 0 ? "a" : "b";
        public PairedImages Load(int index, Random rng)
        {
            var (lq, gt) = DatasetTestImages.CoordinatePair(4 + index, 6, 2);
            return new PairedImages(lq, gt, NameOf(index));
        }
    }

    [Fact]
    public void ShardsOfEachBatchTogetherAreTheWholeBatch()
    {
        // Data-parallel ranks: rank r loads samples [B·r/n, B·(r+1)/n) of every global batch, with the same
        // augmentation seeds, so the data seen does not depend on the number of ranks.
        var ds = new InMemoryPairedDataset(12);
        var whole = new PairedBatchLoader(ds, new PairedLoaderOptions { BatchSize = 4, Seed = 5, Prefetch = false });
        var shards = Enumerable.Range(0, 2).Select(r => new PairedBatchLoader(ds, new PairedLoaderOptions { BatchSize = 4, Seed = 5, Prefetch = false, Shard = r, Shards = 2 })).ToList();
        for (int epoch = 0; epoch < 2; epoch++)
        {
            var parts = shards.Select(l => l.Epoch(epoch).ToList()).ToList();
            int b = 0;
            foreach (var batch in whole.Epoch(epoch))
            {
                using (batch)
                {
                    Assert.All(parts, p => Assert.Equal(2, p[b].Count));
                    Assert.Equal(batch.Indices, parts[0][b].Indices.Concat(parts[1][b].Indices));
                    using var lq = cat([parts[0][b].Lq, parts[1][b].Lq], 0);
                    using var gt = cat([parts[0][b].Gt, parts[1][b].Gt], 0);
                    Assert.True(lq.allclose(batch.Lq, 0, 0) && gt.allclose(batch.Gt, 0, 0), $"epoch {epoch} batch {b}: the shards' pixels differ from the whole batch's");
                }
                b++;
            }
            Assert.Equal(3, b);
            foreach (var p in parts.SelectMany(x => x)) p.Dispose();
        }
    }

    [Fact]
    public void AGlobalBatchThatTheRanksCannotShareEvenlyIsRefused()
    {
        var e = Assert.Throws<McirException>(() => new PairedBatchLoader(new InMemoryPairedDataset(12), new PairedLoaderOptions { BatchSize = 6, Shard = 1, Shards = 4 }));
        Assert.Equal("data.batch_size 6 is the global batch and must be a multiple of the 4 processes (ranks) that share it", e.Message);
    }
}
