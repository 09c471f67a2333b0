using System.Runtime.InteropServices;
using System.Text;

namespace Mcir.Core.Runs;

/// <summary>
/// The lock of a run folder while a run writes to it: <c>&lt;run&gt;/run.lock</c>, held with an exclusive
/// <c>flock(2)</c> for the life of the run and holding the holder's PID, host and start time (UTC) as one text line.
/// The kernel drops the lock when the holder exits, however it exits (SIGKILL included), so a lock left by a dead
/// process is stale by construction and is taken over; a second run on the same folder while the first lives (e.g. a
/// requeued cluster job while the old one is still stopping) is refused with the holder's PID. The file stays in the
/// folder after the run (its content is cleared on a clean release); only the flock means "locked".
/// <para>Linux/macOS only (flock); on other systems the lock is not taken (<see cref="Acquire"/> returns a lock that holds nothing).
/// On network file systems flock is as good as the file system's support for it (NFSv4, Lustre with <c>flock</c>).</para>
/// </summary>
public sealed class RunFolderLock : IDisposable
{
    /// <summary>The lock file's name inside the run folder.</summary>
    public const string FileName = "run.lock";

    private int _fd;

    private RunFolderLock(int fd, string path, string? previousHolder)
    {
        _fd = fd;
        Path = path;
        PreviousHolder = previousHolder;
    }

    /// <summary>The lock file.</summary>
    public string Path { get; }

    /// <summary>The line a dead holder left in the lock file (a stale lock this one took over), or null.</summary>
    public string? PreviousHolder { get; }

    /// <summary>
    /// Takes the lock of <paramref name="runDirectory"/> (which must exist).
    /// </summary>
    /// <exception cref="McirException">Another live process holds it: the message names its PID, host and start.</exception>
    public static RunFolderLock Acquire(string runDirectory)
    {
        string path = System.IO.Path.Combine(System.IO.Path.GetFullPath(runDirectory), FileName);
        if (!(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())) return new RunFolderLock(-1, path, null);
        int fd = Native.open(path, Native.O_RDWR | Native.O_CREAT | Native.O_CLOEXEC, 420 /* 0644 */);
        if (fd < 0)
            throw new McirException($"run folder lock {path}: cannot open it ({Marshal.GetLastPInvokeErrorMessage()})");
        if (Native.flock(fd, Native.LOCK_EX | Native.LOCK_NB) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            string holder = ReadAll(fd);
            Native.close(fd);
            if (errno is 11 or 35) // EWOULDBLOCK (Linux 11, macOS 35): a live process holds it
                throw InUse(path, holder);
            throw new McirException($"run folder lock {path}: flock failed (errno {errno})");
        }
        string previous = ReadAll(fd);
        var line = $"pid {Environment.ProcessId} host {Environment.MachineName} started {DateTime.UtcNow:yyyy-MM-ddTHH:mm:ssZ}\n";
        var bytes = Encoding.UTF8.GetBytes(line);
        if (Native.ftruncate(fd, 0) != 0 || Native.pwrite(fd, bytes, bytes.Length, 0) != bytes.Length)
        {
            Native.close(fd);
            throw new McirException($"run folder lock {path}: cannot write it ({Marshal.GetLastPInvokeErrorMessage()})");
        }
        return new RunFolderLock(fd, path, previous.Length > 0 ? previous.Trim() : null);
    }

    /// <summary>
    /// Refuses at once when a live process holds <paramref name="runDirectory"/>'s lock, without taking it (it is tried
    /// and released at once): a second run then stops before it builds its model or measures its compute settings.
    /// <see cref="Acquire"/> remains the lock itself. Does nothing when the folder or its lock file does not exist.
    /// </summary>
    /// <exception cref="McirException">Another live process holds it (the same message as <see cref="Acquire"/>'s).</exception>
    public static void ThrowIfHeld(string runDirectory)
    {
        string path = System.IO.Path.Combine(System.IO.Path.GetFullPath(runDirectory), FileName);
        if (!File.Exists(path) || !(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())) return;
        int fd = Native.open(path, Native.O_RDWR | Native.O_CLOEXEC, 0);
        if (fd < 0) return; // unreadable here: Acquire reports it
        try
        {
            if (Native.flock(fd, Native.LOCK_EX | Native.LOCK_NB) == 0) return; // free (closing the descriptor releases it)
            int errno = Marshal.GetLastPInvokeError();
            if (errno is 11 or 35) throw InUse(path, ReadAll(fd));
        }
        finally
        {
            Native.close(fd);
        }
    }

    private static McirException InUse(string path, string holder) =>
        new($"run folder {System.IO.Path.GetDirectoryName(path)} is in use by another run ({Describe(holder)}); " +
            $"wait for it to stop, or use another train name / output_root");

    /// <summary>
    /// The holder line of <paramref name="runDirectory"/>'s lock file ("pid N host H started T"), or null when there is
    /// no file or it is empty. Read without taking a lock (.NET's own file reading would take a shared flock and fail
    /// while the lock is held).
    /// </summary>
    public static string? ReadHolder(string runDirectory)
    {
        string path = System.IO.Path.Combine(System.IO.Path.GetFullPath(runDirectory), FileName);
        if (!File.Exists(path) || !(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())) return null;
        int fd = Native.open(path, 0 /* O_RDONLY */ | Native.O_CLOEXEC, 0);
        if (fd < 0) return null;
        try
        {
            string text = ReadAll(fd).Trim();
            return text.Length > 0 ? text : null;
        }
        finally
        {
            Native.close(fd);
        }
    }

    // "pid 1234 host n1 started …" → "PID 1234 on n1, started …"; an empty file (holder still starting) → "PID unknown".
    private static string Describe(string holder)
    {
        var f = holder.Trim().Split(' ');
        if (f.Length >= 2 && f[0] == "pid")
            return $"PID {f[1]}" + (f.Length >= 4 ? $" on host {f[3]}" : "") + (f.Length >= 6 ? $", started {f[5]}" : "");
        return "PID unknown: the holder has not written it yet";
    }

    private static string ReadAll(int fd)
    {
        var buffer = new byte[512];
        long n = Native.pread(fd, buffer, buffer.Length, 0);
        return n > 0 ? Encoding.UTF8.GetString(buffer, 0, (int)n) : "";
    }

    /// <summary>Clears the holder line and releases the lock.</summary>
    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd < 0) return;
        Native.ftruncate(fd, 0);
        Native.close(fd); // releases the flock
    }

    private static class Native
    {
        public static readonly int O_RDWR = 2;
        public static readonly int O_CREAT = OperatingSystem.IsMacOS() ? 0x200 : 0x40;
        public static readonly int O_CLOEXEC = OperatingSystem.IsMacOS() ? 0x1000000 : 0x80000;
        public const int LOCK_EX = 2, LOCK_NB = 4;

        [DllImport("libc", SetLastError = true)]
        public static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, int mode);

        [DllImport("libc", SetLastError = true)]
        public static extern int flock(int fd, int operation);

        [DllImport("libc", SetLastError = true)]
        public static extern int close(int fd);

        [DllImport("libc", SetLastError = true)]
        public static extern int ftruncate(int fd, long length);

        [DllImport("libc", SetLastError = true)]
        public static extern nint pread(int fd, byte[] buffer, nint count, long offset);

        [DllImport("libc", SetLastError = true)]
        public static extern nint pwrite(int fd, byte[] buffer, nint count, long offset);
    }
}
