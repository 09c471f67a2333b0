using Mcir.Core.Runs;

namespace Mcir.Core.Tests.Runs;

/// <summary>The run folder lock: one holder at a time, the holder named, a dead holder's lock taken over.</summary>
public class RunFolderLockTests
{
    [Fact]
    public void ASecondHolderIsRefusedWithTheHoldersPidAndGetsItAfterRelease()
    {
        if (!OperatingSystem.IsLinux()) return; // flock(2)
        using var tmp = new Data.Datasets.TempDir();
        var first = RunFolderLock.Acquire(tmp.Path);
        // flock locks belong to open file descriptions: a second open of the same file conflicts even in one process.
        var e = Assert.Throws<McirException>(() => RunFolderLock.Acquire(tmp.Path));
        Assert.Contains($"PID {Environment.ProcessId}", e.Message);
        Assert.Contains("in use by another run", e.Message);
        first.Dispose();
        var second = RunFolderLock.Acquire(tmp.Path);
        Assert.Null(second.PreviousHolder); // a clean release leaves no holder line
        Assert.StartsWith($"pid {Environment.ProcessId} host {Environment.MachineName} started ", RunFolderLock.ReadHolder(tmp.Path));
        second.Dispose();
        Assert.Null(RunFolderLock.ReadHolder(tmp.Path));
    }

    [Fact]
    public void ThrowIfHeld_refuses_a_held_folder_without_taking_a_free_one()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var tmp = new Data.Datasets.TempDir();
        RunFolderLock.ThrowIfHeld(Path.Combine(tmp.Path, "missing")); // no folder: nothing to refuse
        RunFolderLock.ThrowIfHeld(tmp.Path);                           // no lock file
        Assert.False(File.Exists(Path.Combine(tmp.Path, RunFolderLock.FileName)));
        using (var held = RunFolderLock.Acquire(tmp.Path))
        {
            var e = Assert.Throws<McirException>(() => RunFolderLock.ThrowIfHeld(tmp.Path));
            Assert.Contains("in use by another run", e.Message);
            Assert.Contains($"PID {Environment.ProcessId}", e.Message);
        }
        RunFolderLock.ThrowIfHeld(tmp.Path); // released: free again, and the check left it free
        using var again = RunFolderLock.Acquire(tmp.Path);
    }

    [Fact]
    public void ALockLeftByADeadProcessIsTakenOver()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var tmp = new Data.Datasets.TempDir();
        // What a SIGKILLed holder leaves: its line in the file and no flock (the kernel dropped it with the process).
        File.WriteAllText(Path.Combine(tmp.Path, RunFolderLock.FileName), "pid 4194999 host gone started 2026-01-01T00:00:00Z\n");
        using var taken = RunFolderLock.Acquire(tmp.Path);
        Assert.Equal("pid 4194999 host gone started 2026-01-01T00:00:00Z", taken.PreviousHolder);
        Assert.StartsWith($"pid {Environment.ProcessId} ", RunFolderLock.ReadHolder(tmp.Path));
    }
}
