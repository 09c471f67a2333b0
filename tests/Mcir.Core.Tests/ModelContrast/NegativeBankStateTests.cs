using Mcir.Core.ModelContrast;
using Mcir.Core.Weights;
using Mcir.Core.Tests.ModelContrast.TestNetworks;
using static Mcir.Core.Tests.ModelContrast.TestNetworks.NegativeBankTestData;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.ModelContrast;

/// <summary>Save / load of the bank (checkpoint state).</summary>
public sealed class NegativeBankStateTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("negbank-state-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static readonly NegativeBankOptions Options = new() { Steps = [2, 3], Decays = [0.1, 0.25] };

    private static void AssertBanksEqual(NegativeBank a, NegativeBank b)
    {
        Assert.Equal(a.Count, b.Count);
        for (int j = 0; j < a.Count; j++)
        {
            var sa = a.Negatives[j].state_dict();
            var sb = b.Negatives[j].state_dict();
            Assert.Equal(sa.Keys, sb.Keys);
            foreach (var (k, t) in sa) Assert.True(Equal(t, sb[k]), $"negative {j} '{k}' differs");
        }
        Assert.Equal(a.LastIteration, b.LastIteration);
        Assert.Equal(a.UpdateCounts, b.UpdateCounts);
        Assert.Equal(a.LastUpdateIterations, b.LastUpdateIterations);
    }

    [Fact]
    public void SaveLoad_RoundTripIsBitExact_AndResumesTheSchedule()
    {
        using var target = new NegativeBankTestBnNet();
        using var bank = NegativeBank.Create(target, Options);
        for (long it = 1; it <= 5; it++) { Perturb(target, it); bank.OnIterationEnd(it, target); }
        string path = Path.Combine(_dir, "bank.safetensors");
        bank.SaveState(path);
        Assert.Equal(["bank.safetensors"], Directory.GetFiles(_dir).Select(Path.GetFileName)); // no temp file left

        using var otherTarget = new NegativeBankTestBnNet(); // different random weights
        using var restored = NegativeBank.Create(otherTarget, Options);
        restored.LoadState(path);
        AssertBanksEqual(bank, restored);
        Assert.Equal(5, restored.LastIteration);
        Assert.Equal([2L, 1], restored.UpdateCounts);
        Assert.Equal([4L, 3], restored.LastUpdateIterations);
        Assert.All(restored.Negatives, n => Assert.False(n.training));
        Assert.All(restored.Negatives.SelectMany(n => n.parameters()), p => Assert.False(p.requires_grad));

        // Resume: the next iterations act identically on both banks.
        for (long it = 6; it <= 9; it++)
        {
            Perturb(target, it);
            Assert.Equal(bank.OnIterationEnd(it, target), restored.OnIterationEnd(it, target));
        }
        AssertBanksEqual(bank, restored);
        Assert.Throws<InvalidOperationException>(() => restored.OnIterationEnd(9, target));
    }

    [Fact]
    public void SaveLoad_FixedRandom_RestoresTheRandomWeights()
    {
        var options = new NegativeBankOptions { Kind = NegativeKind.FixedRandom, Steps = [1, 1, 1] };
        using var target = new NegativeBankTestBnNet();
        using var bank = NegativeBank.Create(target, options);
        bank.OnIterationEnd(1, target);
        string path = Path.Combine(_dir, "fixed.safetensors");
        bank.SaveState(path);
        using var restored = NegativeBank.Create(target, options); // new random draws
        Assert.False(SameAsBank(bank, restored));
        restored.LoadState(path);
        AssertBanksEqual(bank, restored);
        using var ema = NegativeBank.Create(target, options with { Kind = NegativeKind.Ema });
        var e = Assert.Throws<InvalidDataException>(() => ema.LoadState(path));
        Assert.Contains("'kind' is 'fixed-random' in the state but 'ema'", e.Message);
    }

    private static bool SameAsBank(NegativeBank a, NegativeBank b) =>
        Enumerable.Range(0, a.Count).All(j =>
        {
            var sb = b.Negatives[j].state_dict();
            return a.Negatives[j].state_dict().All(kv => Equal(kv.Value, sb[kv.Key]));
        });

    [Fact]
    public void SaveLoad_Stream_And_Overwrite()
    {
        using var target = new NegativeBankTestEdsr(4, 1, 2);
        using var bank = NegativeBank.Create(target, Options);
        bank.OnIterationEnd(1, target);
        using var ms = new MemoryStream();
        bank.SaveState(ms);
        ms.Position = 0;
        using var restored = NegativeBank.Create(new NegativeBankTestEdsr(4, 1, 2), Options);
        restored.LoadState(ms);
        AssertBanksEqual(bank, restored);

        string path = Path.Combine(_dir, "bank.safetensors");
        File.WriteAllText(path, "old content");
        bank.SaveState(path); // replaces the existing file
        restored.LoadState(path);
        AssertBanksEqual(bank, restored);
    }

    [Fact]
    public void StateFile_IsSafetensorsWithDocumentedMetadata()
    {
        using var target = new NegativeBankTestBnNet();
        using var bank = NegativeBank.Create(target, Options);
        bank.OnIterationEnd(1, target);
        bank.OnIterationEnd(2, target);
        string path = Path.Combine(_dir, "bank.safetensors");
        bank.SaveState(path);
        using var state = SafetensorsFile.Read(path);
        Assert.Equal("mcir.negative_bank", state.Metadata["format"]);
        Assert.Equal("ema", state.Metadata["kind"]);
        Assert.Equal("2,3", state.Metadata["steps"]);
        Assert.Equal("0.1,0.25", state.Metadata["decays"]);
        Assert.Equal("2", state.Metadata["last_iteration"]);
        Assert.Equal("1,0", state.Metadata["update_counts"]);
        var keys = state.Tensors.Select(kv => kv.Key).ToList();
        Assert.Contains("negatives.0.conv1.weight", keys);
        Assert.Contains("negatives.1.bn.running_mean", keys);
        Assert.Contains("negatives.1.bn.num_batches_tracked", keys);
        var nbt = state.Tensors.Single(kv => kv.Key == "negatives.1.bn.num_batches_tracked").Value;
        Assert.Equal(ScalarType.Int64, nbt.dtype);
        // Header: u64 length, JSON padded to 8 bytes.
        var bytes = File.ReadAllBytes(path);
        long n = BitConverter.ToInt64(bytes, 0);
        Assert.Equal(0, n % 8);
        Assert.Equal((byte)'{', bytes[8]);
    }

    [Fact]
    public void Load_MismatchedArchitecture_NamesTheKey()
    {
        using var target = new NegativeBankTestEdsr(4, 1, 2);
        using var bank = NegativeBank.Create(target, Options);
        string path = Path.Combine(_dir, "bank.safetensors");
        bank.SaveState(path);
        using var other = NegativeBank.Create(new NegativeBankTestBnNet(), Options);
        var e = Assert.Throws<StateDictMismatchException>(() => other.LoadState(path));
        Assert.Contains("negatives.0.conv1.weight", e.Message);
        Assert.Contains(path, e.Message);

        using var wider = NegativeBank.Create(new NegativeBankTestEdsr(8, 1, 2), Options);
        var before = wider.Negatives.Select(Snapshot).ToList();
        e = Assert.Throws<StateDictMismatchException>(() => wider.LoadState(path));
        Assert.Contains("negatives.0.conv_first.weight", e.Message);
        Assert.Contains("shape", e.Message);
        for (int j = 0; j < wider.Count; j++) Assert.True(SameAs(wider.Negatives[j], before[j])); // nothing was changed
        before.ForEach(DisposeAll);
    }

    [Fact]
    public void Load_DifferentSchedule_IsRefused()
    {
        using var target = new NegativeBankTestEdsr(4, 1, 2);
        using var bank = NegativeBank.Create(target, Options);
        string path = Path.Combine(_dir, "bank.safetensors");
        bank.SaveState(path);
        using var other = NegativeBank.Create(target, Options with { Steps = [2, 4] });
        var e = Assert.Throws<InvalidDataException>(() => other.LoadState(path));
        Assert.Contains("'steps' is '2,3' in the state but '2,4'", e.Message);
    }

    [Fact]
    public void Load_TruncatedFile_GivesClearError()
    {
        using var target = new NegativeBankTestEdsr(4, 1, 2);
        using var bank = NegativeBank.Create(target, Options);
        string path = Path.Combine(_dir, "bank.safetensors");
        bank.SaveState(path);
        var bytes = File.ReadAllBytes(path);
        foreach (int keep in new[] { bytes.Length - 1, bytes.Length / 2, 20, 3, 0 })
        {
            string cut = Path.Combine(_dir, $"cut{keep}.safetensors");
            File.WriteAllBytes(cut, bytes[..keep]);
            var e = Assert.Throws<InvalidDataException>(() => bank.LoadState(cut));
            Assert.Contains(cut, e.Message);
            Assert.Contains("truncated", e.Message);
        }
        using var ms = new MemoryStream(bytes[..(bytes.Length - 10)]);
        var se = Assert.Throws<InvalidDataException>(() => bank.LoadState(new NonSeekable(ms), "ckpt/negatives"));
        Assert.Contains("truncated", se.Message);
    }

    [Fact]
    public void Load_MissingFile_GivesClearError()
    {
        using var target = new NegativeBankTestEdsr(4, 1, 2);
        using var bank = NegativeBank.Create(target, Options);
        string path = Path.Combine(_dir, "nope.safetensors");
        var e = Assert.Throws<InvalidDataException>(() => bank.LoadState(path));
        Assert.Contains(path, e.Message);
    }

    /// <summary>A read-only stream that hides its length (as a network or zip entry stream would).</summary>
    private sealed class NonSeekable(Stream inner) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
