using System.Runtime.InteropServices;
using System.Text;

namespace Mcir.Core.Distributed;

/// <summary>
/// <see cref="ICommunicator"/> over the system's MPI library through a thin binding: Open MPI's <c>libmpi.so.40</c>
/// (its handles are the addresses of exported objects: <c>ompi_mpi_comm_world</c>, <c>ompi_mpi_float</c>, …), else
/// an MPICH-ABI <c>libmpi.so.12</c> (MPICH, Intel MPI, MVAPICH: integer handles). The library is opened with
/// <c>RTLD_GLOBAL</c>, as Open MPI's own plugins need. Before <c>MPI_Init_thread</c> UCX is told to leave the
/// SIGSEGV/SIGBUS/SIGFPE/SIGILL handlers alone (<c>UCX_ERROR_SIGNALS=""</c> unless set): .NET turns SIGSEGV into
/// NullReferenceException, which UCX's handler would turn into a crash of every rank.
/// </summary>
public sealed class MpiCommunicator : ICommunicator
{
    private const int RtldNow = 2, RtldGlobal = 0x100;
    private readonly nint _lib;
    private readonly bool _openMpi;
    private readonly nint _comm, _double, _float, _byte, _sum, _max, _inPlace;
    private readonly AllreduceFn _allreduce;
    private readonly BcastFn _bcast;
    private readonly AbortFn _abort;
    private readonly FinalizeFn _finalize;
    private readonly string _library;
    private bool _disposed;

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int InitThreadFn(nint argc, nint argv, int required, out int provided);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int InitializedFn(out int flag);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int CommIntFn(nint comm, out int value);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int AllreduceFn(nint send, nint recv, int count, nint datatype, nint op, nint comm);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int BcastFn(nint buffer, int count, nint datatype, int root, nint comm);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int AbortFn(nint comm, int code);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int FinalizeFn();
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int VersionFn(byte[] buffer, out int length);

    [DllImport("libc", EntryPoint = "dlopen")] private static extern nint DlOpen([MarshalAs(UnmanagedType.LPUTF8Str)] string file, int mode);
    [DllImport("libc", EntryPoint = "dlsym")] private static extern nint DlSym(nint handle, [MarshalAs(UnmanagedType.LPUTF8Str)] string name);
    [DllImport("libc", EntryPoint = "dlerror")] private static extern nint DlError();
    [DllImport("libc", EntryPoint = "setenv")] private static extern int SetEnv([MarshalAs(UnmanagedType.LPUTF8Str)] string name, [MarshalAs(UnmanagedType.LPUTF8Str)] string value, int overwrite);

    /// <summary>The library names tried, in order.</summary>
    public static readonly IReadOnlyList<string> Libraries = ["libmpi.so.40", "libmpi.so.12", "libmpi.so"];

    /// <summary>Opens the MPI library and initialises MPI (once per process).</summary>
    /// <exception cref="McirException">No MPI library could be loaded, or MPI failed to start.</exception>
    public MpiCommunicator()
    {
        if (!OperatingSystem.IsLinux()) throw new McirException("distributed: mpi: MPI training is supported on Linux only");
        string? tried = null;
        foreach (var name in Libraries)
        {
            _lib = DlOpen(name, RtldNow | RtldGlobal);
            if (_lib != 0) { _library = name; break; }
            tried += (tried is null ? "" : "; ") + $"{name}: {Marshal.PtrToStringUTF8(DlError())}";
        }
        if (_lib == 0)
            throw new McirException($"distributed: mpi: no MPI library could be loaded ({tried}); install Open MPI (Debian/Ubuntu: apt-get install openmpi-bin) or MPICH, or load your cluster's MPI module");
        _library ??= "libmpi";

        _openMpi = DlSym(_lib, "ompi_mpi_comm_world") != 0;
        if (_openMpi)
        {
            _comm = Sym("ompi_mpi_comm_world");
            _double = Sym("ompi_mpi_double");
            _float = Sym("ompi_mpi_float");
            _byte = Sym("ompi_mpi_byte");
            _sum = Sym("ompi_mpi_op_sum");
            _max = Sym("ompi_mpi_op_max");
            _inPlace = 1;
        }
        else
        {
            // mpi.h of the MPICH ABI (MPICH ≥ 3.1, Intel MPI, MVAPICH)
            _comm = 0x44000000;
            _double = 0x4c00080b;
            _float = 0x4c00040a;
            _byte = 0x4c00010d;
            _sum = 0x58000003;
            _max = 0x58000001;
            _inPlace = -1;
        }
        _allreduce = Fn<AllreduceFn>("MPI_Allreduce");
        _bcast = Fn<BcastFn>("MPI_Bcast");
        _abort = Fn<AbortFn>("MPI_Abort");
        _finalize = Fn<FinalizeFn>("MPI_Finalize");

        // .NET handles SIGSEGV itself (NullReferenceException); UCX must not install its error handlers over it.
        SetEnv("UCX_ERROR_SIGNALS", "", 0);
        Fn<InitializedFn>("MPI_Initialized")(out int initialized);
        if (initialized == 0)
        {
            int rc = Fn<InitThreadFn>("MPI_Init_thread")(0, 0, 1 /* MPI_THREAD_FUNNELED */, out _);
            if (rc != 0) throw new McirException($"distributed: mpi: MPI_Init_thread failed (error {rc}) with {_library}");
        }
        Check(Fn<CommIntFn>("MPI_Comm_rank")(_comm, out int rank), "MPI_Comm_rank");
        Check(Fn<CommIntFn>("MPI_Comm_size")(_comm, out int size), "MPI_Comm_size");
        Rank = rank;
        Size = size;
        try
        {
            var buffer = new byte[8192];
            Fn<VersionFn>("MPI_Get_library_version")(buffer, out int length);
            Version = Encoding.UTF8.GetString(buffer, 0, Math.Clamp(length, 0, buffer.Length)).Split('\n', ',')[0].Trim();
        }
        catch (McirException) { Version = _library; }
    }

    /// <inheritdoc />
    public int Rank { get; }

    /// <inheritdoc />
    public int Size { get; }

    /// <summary>The MPI library's version line (e.g. "Open MPI v4.1.4").</summary>
    public string Version { get; }

    /// <inheritdoc />
    public string Describe() => $"MPI, {Size} ranks ({Version}, {_library})";

    /// <inheritdoc />
    public void AllReduceSum(Span<double> values) => AllReduce(values, _sum);

    /// <inheritdoc />
    public void AllReduceMax(Span<double> values) => AllReduce(values, _max);

    private void AllReduce(Span<double> values, nint op)
    {
        var handle = GCHandle.Alloc(values.ToArray(), GCHandleType.Pinned);
        try
        {
            Check(_allreduce(_inPlace, handle.AddrOfPinnedObject(), values.Length, _double, op, _comm), "MPI_Allreduce");
            ((double[])handle.Target!).CopyTo(values);
        }
        finally
        {
            handle.Free();
        }
    }

    /// <inheritdoc />
    public void AllReduceSum(nint float32Buffer, long count)
    {
        // MPI counts are int: large buffers go in chunks.
        const int chunk = 1 << 30;
        for (long done = 0; done < count; done += chunk)
        {
            int n = (int)Math.Min(chunk, count - done);
            Check(_allreduce(_inPlace, float32Buffer + (nint)(done * sizeof(float)), n, _float, _sum, _comm), "MPI_Allreduce");
        }
    }

    /// <inheritdoc />
    public byte[] Broadcast(byte[]? rootData)
    {
        var length = new[] { (double)(IsRootRank ? (rootData ?? throw new ArgumentNullException(nameof(rootData))).Length : 0) };
        AllReduceMax(length);
        var data = IsRootRank ? rootData! : new byte[(long)length[0]];
        var handle = GCHandle.Alloc(data, GCHandleType.Pinned);
        try
        {
            const int chunk = 1 << 30;
            for (long done = 0; done < data.LongLength; done += chunk)
            {
                int n = (int)Math.Min(chunk, data.LongLength - done);
                Check(_bcast(handle.AddrOfPinnedObject() + (nint)done, n, _byte, 0, _comm), "MPI_Bcast");
            }
        }
        finally
        {
            handle.Free();
        }
        return data;
    }

    private bool IsRootRank => Rank == 0;

    /// <inheritdoc />
    public void Abort(int exitCode)
    {
        Console.Error.Flush();
        Console.Out.Flush();
        _abort(_comm, exitCode);
        Environment.Exit(exitCode); // MPI_Abort does not return; if it did, do not hang
    }

    /// <summary>Finalises MPI (every rank, at the end of the job).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _finalize();
    }

    private nint Sym(string name)
    {
        nint p = DlSym(_lib, name);
        if (p == 0) throw new McirException($"distributed: mpi: {_library} has no symbol {name}; it is not a supported MPI (Open MPI 4/5, or the MPICH ABI)");
        return p;
    }

    private T Fn<T>(string name) where T : Delegate => Marshal.GetDelegateForFunctionPointer<T>(Sym(name));

    private static void Check(int rc, string what)
    {
        if (rc != 0) throw new InvalidOperationException($"{what} failed with MPI error {rc}");
    }
}
