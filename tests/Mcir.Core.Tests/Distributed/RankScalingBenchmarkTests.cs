using System.Globalization;
using Mcir.Core.Distributed;
using Mcir.Core.Runs;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Distributed;

/// <summary>The parts of <c>bench --ranks</c> that do not need mpirun (the launches are tested in Mcir.Host.Tests under mpirun).</summary>
[Collection(NativeMemoryCollection.Name)] // the worker seeds the global generator
public class RankScalingBenchmarkTests
{
    [Theory]
    [InlineData("1,2", new[] { 1, 2 })]
    [InlineData(" 4 , 1 ", new[] { 4, 1 })]
    [InlineData("2", new[] { 2 })]
    public void RankListsParse(string text, int[] expected) => Assert.Equal(expected, RankScalingBenchmark.ParseRanks(text));

    [Theory]
    [InlineData("0", "not a list of rank counts")]
    [InlineData("1,x", "not a list of rank counts")]
    [InlineData("-1", "not a list of rank counts")]
    [InlineData("", "not a list of rank counts")]
    [InlineData("2,2", "lists 2 twice")]
    public void BadRankListsAreUserErrorsNamingTheOption(string text, string expected)
    {
        var e = Assert.Throws<McirException>(() => RankScalingBenchmark.ParseRanks(text));
        Assert.StartsWith($"--ranks: '{text}'", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData(1, null, 2, 2)]
    [InlineData(2, null, 2, 1)]
    [InlineData(4, null, 2, 1)] // at least one
    [InlineData(2, null, 16, 8)]
    [InlineData(2, 3, 16, 3)]   // given
    public void ThreadsAreTheProcessorsSplitBetweenTheRanksUnlessGiven(int ranks, int? given, int processors, int expected) =>
        Assert.Equal(expected, RankScalingBenchmark.ThreadsPerRank(ranks, given, processors));

    [Fact]
    public void TheTableGivesImagesPerSecondAndEfficiencyPerThreadAgainstTheFirstRow()
    {
        var rows = new[] { new RankScalingRow(1, 2, 0.5, 8), new RankScalingRow(2, 1, 0.625, 8), new RankScalingRow(2, 2, 0.5, 8) };
        var lines = RankScalingBenchmark.FormatTable(rows).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("ranks x threads   median step (s)   images/s   scaling efficiency", lines[0]);
        // 8 / 0.5 = 16 images/s on 2 threads; 8 / 0.625 = 12.8 on 2 threads: 0.8; 16 on 4 threads: 0.5.
        Assert.Equal(["1 x 2", "0.500", "16.00", "1.00"], lines[1].Split("  ", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Assert.Equal(["2 x 1", "0.625", "12.80", "0.80"], lines[2].Split("  ", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Assert.Equal(["2 x 2", "0.500", "16.00", "0.50"], lines[3].Split("  ", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }

    [Fact]
    public void OneProcessWorkerTrainsAndPrintsTheLineTheParentReads()
    {
        var output = new StringWriter();
        int scale = 2;
        int calls = 0;
        var row = RankScalingBenchmark.RunWorker(SingleProcess.Instance, () =>
        {
            calls++;
            return nn.Sequential(nn.Conv2d(3, 3 * scale * scale, 3, padding: 1), nn.PixelShuffle(scale));
        }, globalBatch: 2, lrSize: 6, scale: scale, rounds: 3, device: CPU, output, TextWriter.Null, warmup: 1);
        Assert.Equal(1, calls);
        Assert.Equal(1, row.Ranks);
        Assert.Equal(get_num_threads(), row.ThreadsPerRank);
        Assert.True(row.MedianStepSeconds > 0);
        string line = output.ToString().Trim();
        Assert.StartsWith(RankScalingBenchmark.ResultPrefix, line);
        var parsed = RankScalingBenchmark.ParseResult(line, 2);
        Assert.Equal(row, parsed); // "R" round-trips the median exactly
        Assert.Throws<McirException>(() => RankScalingBenchmark.RunWorker(new FakeRanks(3), () => throw new InvalidOperationException(), 4, 6, 2, 1, CPU, output, TextWriter.Null));
    }

    /// <summary>A world of several ranks that is never reached (the batch check comes first).</summary>
    private sealed class FakeRanks(int size) : ICommunicator
    {
        public int Rank => 0;
        public int Size => size;
        public string Describe() => "fake";
        public void AllReduceSum(Span<double> values) => throw new InvalidOperationException();
        public void AllReduceMax(Span<double> values) => throw new InvalidOperationException();
        public void AllReduceSum(nint float32Buffer, long count) => throw new InvalidOperationException();
        public byte[] Broadcast(byte[]? rootData) => throw new InvalidOperationException();
        public void Abort(int exitCode) => throw new InvalidOperationException();
        public void Dispose() { }
    }
}
