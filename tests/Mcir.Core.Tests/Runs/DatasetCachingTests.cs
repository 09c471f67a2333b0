using Mcir.Core.Runs;

namespace Mcir.Core.Tests.Runs;

public class DatasetCachingTests
{
    [Fact]
    public void SmallFoldersAreCachedLargeOnesAreNotUnlessConfigured()
    {
        string dir = Path.Combine(Path.GetTempPath(), "mcir-cache-rule-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            File.WriteAllBytes(Path.Combine(dir, "a.png"), new byte[1000]);
            var section = new DatasetSection { DatarootGt = dir };
            Assert.True(RunComposition.CachesImages(section));
            Assert.False(RunComposition.CachesImages(section with { CacheImages = false }));

            // Past the budget (only the size counts, so a sparse file stands in for many images); other files do not count.
            using (var big = File.Create(Path.Combine(dir, "b.png"))) big.SetLength(RunComposition.AutoCacheBytes);
            Assert.False(RunComposition.CachesImages(section));
            Assert.True(RunComposition.CachesImages(section with { CacheImages = true }));
            File.Move(Path.Combine(dir, "b.png"), Path.Combine(dir, "b.txt"));
            Assert.True(RunComposition.CachesImages(section));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
