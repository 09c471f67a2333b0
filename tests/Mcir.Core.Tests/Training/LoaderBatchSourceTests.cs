using Mcir.Core.Data;
using Mcir.Core.Data.Datasets;
using Mcir.Core.Training;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Training.LoaderBatches;

public class LoaderBatchSourceTests
{
    // Seven 4x4 images whose pixels encode (index, a draw from the sample's Random): batches identify themselves.
    private sealed class CodedDataset : IPairedDataset
    {
        public int Count => 7;
        public string NameOf(int index) => $"s{index}";
        public PairedImages Load(int index, Random rng)
        {
            float draw = rng.Next(256);
            var px = Enumerable.Range(0, 4 * 4 * 3).Select(i => i == 0 ? index : draw).ToArray();
            var img = new RgbImage(4, 4, px);
            return new PairedImages(img, img, NameOf(index));
        }
    }

    private static List<float[]> Take(LoaderBatchSource source, int n)
    {
        var list = new List<float[]>();
        for (int i = 0; i < n; i++)
        {
            using var scope = NewDisposeScope();
            var (lq, _) = source.Next();
            list.Add(lq.flatten().data<float>().ToArray());
        }
        return list;
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ResumedSourceContinuesWithTheSameBatchesAcrossEpochs(bool prefetch)
    {
        PairedBatchLoader Loader() => new(new CodedDataset(), new PairedLoaderOptions { BatchSize = 2, Seed = 3, Prefetch = prefetch });
        using var uninterrupted = new LoaderBatchSource(Loader());
        var all = Take(uninterrupted, 8); // 3 batches per epoch: crosses two epoch boundaries

        using var first = new LoaderBatchSource(Loader());
        Take(first, 4);
        var state = first.GetState();
        using var resumed = new LoaderBatchSource(Loader());
        resumed.SetState(state);
        var rest = Take(resumed, 4);

        Assert.Equal(all.Skip(4), rest);
        Assert.NotEqual(all[0], all[3]); // epochs are shuffled differently
    }

    [Fact]
    public void PrefetchDoesNotChangeTheBatches()
    {
        using var a = new LoaderBatchSource(new PairedBatchLoader(new CodedDataset(), new PairedLoaderOptions { BatchSize = 3, Seed = 1, Prefetch = true }));
        using var b = new LoaderBatchSource(new PairedBatchLoader(new CodedDataset(), new PairedLoaderOptions { BatchSize = 3, Seed = 1, Prefetch = false }));
        Assert.Equal(Take(a, 5), Take(b, 5));
    }
}
