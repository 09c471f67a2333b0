using Mcir.Core.Compute;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Compute;

public class IntraOpParallelTests
{
    [Fact]
    public void OnLinux_TheLoopsRunOnLibtorchsOpenMpTeam()
    {
        // TorchSharp's Linux CPU package ships libtorch built with OpenMP (its libgomp is what the route calls).
        if (!OperatingSystem.IsLinux()) return;
        Assert.True(IntraOpParallel.OnOpenMp, IntraOpParallel.Note);
        Assert.Equal("engine kernels on libtorch's OpenMP threads", IntraOpParallel.Note);
    }

    [Theory]
    [InlineData(0, 1000, 2)]
    [InlineData(5, 6, 2)]   // one index: the calling thread alone
    [InlineData(3, 40, 1)]
    [InlineData(0, 3, 8)]   // more threads than indices
    [InlineData(4, 4, 2)]   // none
    public void For_RunsEveryIndexExactlyOnce(long from, long to, int threads)
    {
        var counts = new int[Math.Max(0, to)];
        IntraOpParallel.For(from, to, threads, i => Interlocked.Increment(ref counts[i]));
        for (long i = 0; i < to; i++) Assert.Equal(i >= from ? 1 : 0, counts[i]);
    }

    [Fact]
    public void For_SharesTheIndicesBetweenTheThreadsItIsGiven_NotThePoolsThreads()
    {
        if (!OperatingSystem.IsLinux()) return;
        var threadIds = new System.Collections.Concurrent.ConcurrentDictionary<int, bool>();
        bool poolThread = false;
        int caller = Environment.CurrentManagedThreadId; // xunit's own thread may be a pool thread
        IntraOpParallel.For(0, 40, 2, _ =>
        {
            threadIds[Environment.CurrentManagedThreadId] = true;
            if (Thread.CurrentThread.IsThreadPoolThread && Environment.CurrentManagedThreadId != caller) poolThread = true;
            Thread.Sleep(2); // long enough for the second thread to take indices
        });
        Assert.Equal(2, threadIds.Count);
        Assert.False(poolThread);
    }

    [Fact]
    public void For_RethrowsTheBodysException_OnTheCallingThread()
    {
        int ran = 0;
        // Indices run in order from a shared counter, so index 5 comes after at least indices 0–4.
        var e = Assert.Throws<InvalidOperationException>(() => IntraOpParallel.For(0, 1000, 2, i =>
        {
            Interlocked.Increment(ref ran);
            if (i == 5) throw new InvalidOperationException("index 5");
        }));
        Assert.Equal("index 5", e.Message);
        Assert.InRange(ran, 6, 1000); // indices after the failure may still run on the other thread; no index twice
        // The team is left usable.
        var counts = new int[100];
        IntraOpParallel.For(0, 100, 2, i => Interlocked.Increment(ref counts[i]));
        Assert.All(counts, c => Assert.Equal(1, c));
    }

    [Fact]
    public void For_Nested_RunsTheInnerLoopsToo()
    {
        var counts = new int[4 * 50];
        IntraOpParallel.For(0, 4, 2, outer => IntraOpParallel.For(0, 50, 2, inner => Interlocked.Increment(ref counts[outer * 50 + inner])));
        Assert.All(counts, c => Assert.Equal(1, c));
    }

    [Fact]
    public void TheKernels_GiveTheSameBits_OnEitherRoute()
    {
        using var scope = NewDisposeScope();
        var gen = new TorchSharp.torch.Generator(11);
        var x = ChannelsLast.Of(randn(new long[] { 3, 64, 20, 28 }, generator: gen));
        var w = randn(new long[] { 128, 64, 3, 3 }, generator: gen) * 0.05f;
        var b = randn(new long[] { 128 }, generator: gen);
        var t = WinogradConvolution.TransformWeight(w);
        var shuffled = ChannelsLast.Of(randn(new long[] { 2, 64, 12, 16 }, generator: gen));
        Tensor[] Run() =>
        [
            WinogradConvolution.Conv2d(x, t, b, relu: true),
            PixelShuffleLayers.Unshuffle(shuffled, 2),
            PixelShuffleLayers.Unshuffle(shuffled.contiguous(), 2),
        ];
        Tensor[] openMp, dotnet;
        try
        {
            IntraOpParallel.Override = true;
            openMp = Run();
            IntraOpParallel.Override = false;
            dotnet = Run();
        }
        finally { IntraOpParallel.Override = null; }
        for (int i = 0; i < openMp.Length; i++) Assert.True(openMp[i].eq(dotnet[i]).all().item<bool>(), $"result {i}");
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("openmp", null)]
    [InlineData("DotNet", null)]
    [InlineData("tbb", "MCIR_INTRA_OP: expected 'openmp' or 'dotnet', got 'tbb'")]
    public void ErrorFor_NamesTheVariableAndTheValue(string? value, string? expected) =>
        Assert.Equal(expected, IntraOpParallel.ErrorFor(value));
}
