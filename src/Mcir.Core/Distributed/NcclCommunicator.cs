using Mcir.Core.Compute;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Distributed;

/// <summary>A communicator that can also reduce tensors where they live, on the GPU (NCCL).</summary>
public interface IDeviceCollectives
{
    /// <summary>
    /// In place: every element of <paramref name="values"/> (a contiguous float32 CUDA tensor on this rank's device)
    /// becomes the element-wise sum over ranks. Returns when the result is ready for libtorch.
    /// </summary>
    void AllReduceSumOnDevice(Tensor values);
}

/// <summary>
/// The ranks of an MPI job with the gradient all-reduce done by NVIDIA's NCCL on CUDA tensors (PyTorch DDP's
/// <c>backend="nccl"</c>): a thin binding to <c>libnccl.so.2</c> (<c>ncclGetUniqueId</c>, <c>ncclCommInitRank</c>,
/// <c>ncclAllReduce</c> with <c>ncclSum</c> on float32, <c>ncclCommDestroy</c>, <c>ncclGetErrorString</c>; NCCL's
/// <c>nccl.h</c>). The 128-byte unique id is made on rank 0 and broadcast over the MPI communicator, as NCCL's
/// documentation's MPI example does; every other collective (loss parts, flags, checksums, the start state) stays
/// on MPI. Stream: TorchSharp 0.107 does not expose libtorch's current CUDA stream, so the all-reduce runs on the
/// legacy default stream (0) between two device synchronisations (libtorch's default stream is that stream too, but
/// the synchronisations make it safe whatever stream libtorch used). Each rank must own one GPU: NCCL refuses two
/// ranks on one device.
/// <para>Written against NCCL 2.x's documented C API and untested here (no GPU, no libnccl on this project's machines);
/// the unique-id exchange (<see cref="ShareUniqueId"/>) and the choice of backend are tested.</para>
/// </summary>
public sealed class NcclCommunicator : ICommunicator, IDeviceCollectives
{
    /// <summary>The library loaded.</summary>
    public const string Library = "libnccl.so.2";

    /// <summary>Bytes of an <c>ncclUniqueId</c> (<c>NCCL_UNIQUE_ID_BYTES</c>).</summary>
    public const int UniqueIdBytes = 128;

    private const int NcclFloat32 = 7, NcclSum = 0, RtldNow = 2, RtldGlobal = 0x100;
    private static readonly Lazy<(nint Handle, string? Error)> Lib = new(() =>
    {
        if (!OperatingSystem.IsLinux()) return (0, "NCCL is supported on Linux only");
        nint h = DlOpen(Library, RtldNow | RtldGlobal);
        return h != 0 ? (h, null) : (0, Marshal.PtrToStringUTF8(DlError()) ?? $"{Library}: cannot be opened");
    });

    private readonly ICommunicator _host;
    private readonly nint _comm;
    private readonly int _device;
    private readonly AllReduceFn _allReduce;
    private readonly ErrorStringFn _errorString;
    private bool _disposed;

    [StructLayout(LayoutKind.Sequential, Size = UniqueIdBytes)]
    private unsafe struct UniqueId { public fixed byte Internal[UniqueIdBytes]; }

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int GetUniqueIdFn(out UniqueId id);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int CommInitRankFn(out nint comm, int nranks, UniqueId id, int rank);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int AllReduceFn(nint send, nint recv, nuint count, int datatype, int op, nint comm, nint stream);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int CommDestroyFn(nint comm);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate nint ErrorStringFn(int result);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int GetVersionFn(out int version);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int CudaSetDeviceFn(int device);

    [DllImport("libc", EntryPoint = "dlopen")] private static extern nint DlOpen([MarshalAs(UnmanagedType.LPUTF8Str)] string file, int mode);
    [DllImport("libc", EntryPoint = "dlsym")] private static extern nint DlSym(nint handle, [MarshalAs(UnmanagedType.LPUTF8Str)] string name);
    [DllImport("libc", EntryPoint = "dlerror")] private static extern nint DlError();

    /// <summary>Null when <see cref="Library"/> loads, else the loader's message.</summary>
    public static string? LoadError() => Lib.Value.Error;

    /// <summary>
    /// Sets up NCCL for the ranks of <paramref name="host"/> on CUDA device <paramref name="cudaDevice"/> (collective:
    /// every rank calls it). <paramref name="host"/> stays owned by the caller.
    /// </summary>
    /// <exception cref="McirException"><see cref="Library"/> cannot be loaded, or NCCL fails to start.</exception>
    public NcclCommunicator(ICommunicator host, int cudaDevice)
    {
        _host = host ?? throw new ArgumentNullException(nameof(host));
        if (LoadError() is { } error)
            throw new McirException($"dist_backend: nccl: {Library} could not be loaded ({error}); install NCCL 2 (NVIDIA's libnccl2 package, or your cluster's NCCL module) or set dist_backend: mpi");
        _device = cudaDevice;
        _errorString = Fn<ErrorStringFn>("ncclGetErrorString");
        _allReduce = Fn<AllReduceFn>("ncclAllReduce");
        try
        {
            Fn<GetVersionFn>("ncclGetVersion")(out int v);
            Version = $"NCCL {v / 10000}.{v / 100 % 100}.{v % 100}";
        }
        catch (McirException) { Version = "NCCL"; }
        // ncclCommInitRank binds the communicator to the current CUDA device.
        if (cudaDevice != 0) SetCudaDevice(cudaDevice);
        var id = ShareUniqueId(host, MakeUniqueId);
        Check(Fn<CommInitRankFn>("ncclCommInitRank")(out _comm, host.Size, FromBytes(id), host.Rank), "ncclCommInitRank");
    }

    /// <summary>
    /// NCCL's id handshake over <paramref name="host"/>: rank 0 makes the id with <paramref name="create"/> (NCCL's
    /// <c>ncclGetUniqueId</c>), every rank receives rank 0's <see cref="UniqueIdBytes"/> bytes (collective).
    /// </summary>
    /// <exception cref="InvalidOperationException">The id is not <see cref="UniqueIdBytes"/> bytes long.</exception>
    public static byte[] ShareUniqueId(ICommunicator host, Func<byte[]> create)
    {
        byte[]? made = host.IsRoot ? create() : null;
        if (made is not null && made.Length != UniqueIdBytes)
            throw new InvalidOperationException($"an NCCL unique id has {UniqueIdBytes} bytes, not {made.Length}");
        var id = host.Broadcast(made);
        if (id.Length != UniqueIdBytes)
            throw new InvalidOperationException($"rank {host.Rank} received an NCCL unique id of {id.Length} bytes, not {UniqueIdBytes}");
        return id;
    }

    /// <summary>A new unique id from <c>ncclGetUniqueId</c> (<see cref="UniqueIdBytes"/> bytes).</summary>
    /// <exception cref="McirException"><see cref="Library"/> cannot be loaded, or NCCL fails.</exception>
    public static byte[] MakeUniqueId()
    {
        if (LoadError() is { } error) throw new McirException($"dist_backend: nccl: {Library} could not be loaded ({error})");
        int rc = StaticFn<GetUniqueIdFn>("ncclGetUniqueId")(out var made);
        if (rc != 0) throw new McirException($"dist_backend: nccl: ncclGetUniqueId failed: {Marshal.PtrToStringUTF8(StaticFn<ErrorStringFn>("ncclGetErrorString")(rc))} (ncclResult {rc})");
        return ToBytes(made);
    }

    /// <summary>The NCCL version line (e.g. "NCCL 2.21.5").</summary>
    public string Version { get; }

    /// <inheritdoc />
    public int Rank => _host.Rank;

    /// <inheritdoc />
    public int Size => _host.Size;

    /// <inheritdoc />
    public string Describe() => $"{_host.Describe()}; gradients all-reduced by {Version} on cuda:{_device}";

    /// <inheritdoc />
    public void AllReduceSumOnDevice(Tensor values)
    {
        if (values.device_type != DeviceType.CUDA || values.dtype != ScalarType.Float32 || !values.is_contiguous())
            throw new ArgumentException("NCCL all-reduce takes a contiguous float32 CUDA tensor", nameof(values));
        nint data = TensorData.Pointer(values);
        cuda.synchronize(); // the values are computed (whatever stream libtorch used)
        Check(_allReduce(data, data, (nuint)values.numel(), NcclFloat32, NcclSum, _comm, 0 /* legacy default stream */), "ncclAllReduce");
        cuda.synchronize(); // the sum is there before libtorch reads it
    }

    /// <inheritdoc />
    public void AllReduceSum(Span<double> values) => _host.AllReduceSum(values);

    /// <inheritdoc />
    public void AllReduceMax(Span<double> values) => _host.AllReduceMax(values);

    /// <inheritdoc />
    public void AllReduceSum(nint float32Buffer, long count) => _host.AllReduceSum(float32Buffer, count);

    /// <inheritdoc />
    public byte[] Broadcast(byte[]? rootData) => _host.Broadcast(rootData);

    /// <inheritdoc />
    public void Abort(int exitCode) => _host.Abort(exitCode);

    /// <summary>Destroys the NCCL communicator (the MPI one stays open: its owner finalises it).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_comm != 0) Fn<CommDestroyFn>("ncclCommDestroy")(_comm);
    }

    private static unsafe byte[] ToBytes(UniqueId id) => new ReadOnlySpan<byte>(id.Internal, UniqueIdBytes).ToArray();

    private static unsafe UniqueId FromBytes(byte[] bytes)
    {
        var id = new UniqueId();
        bytes.AsSpan().CopyTo(new Span<byte>(id.Internal, UniqueIdBytes));
        return id;
    }

    /// <summary>
    /// <c>cudaSetDevice</c> of the CUDA runtime libtorch loaded (found in <c>/proc/self/maps</c>: libtorch's packages
    /// ship it under a hashed name), else of <c>libcudart.so.12</c>/<c>.so</c>.
    /// </summary>
    private static void SetCudaDevice(int device)
    {
        var candidates = new List<string>();
        try
        {
            candidates.AddRange(File.ReadLines("/proc/self/maps").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries).LastOrDefault() ?? "")
                .Where(p => Path.GetFileName(p).StartsWith("libcudart", StringComparison.Ordinal)).Distinct());
        }
        catch (IOException) { }
        candidates.AddRange(["libcudart.so.12", "libcudart.so.11.0", "libcudart.so"]);
        foreach (var name in candidates)
        {
            nint lib = DlOpen(name, RtldNow);
            nint fn = lib == 0 ? 0 : DlSym(lib, "cudaSetDevice");
            if (fn == 0) continue;
            int rc = Marshal.GetDelegateForFunctionPointer<CudaSetDeviceFn>(fn)(device);
            if (rc != 0) throw new McirException($"dist_backend: nccl: cudaSetDevice({device}) failed with CUDA error {rc}");
            return;
        }
        throw new McirException($"dist_backend: nccl: the CUDA runtime (libcudart) was not found to select cuda:{device}; give each rank one GPU with CUDA_VISIBLE_DEVICES and device cuda:0");
    }

    private T Fn<T>(string name) where T : Delegate => StaticFn<T>(name);

    private static T StaticFn<T>(string name) where T : Delegate
    {
        nint p = DlSym(Lib.Value.Handle, name);
        if (p == 0) throw new McirException($"dist_backend: nccl: {Library} has no symbol {name}; NCCL 2 is needed");
        return Marshal.GetDelegateForFunctionPointer<T>(p);
    }

    private void Check(int rc, string what)
    {
        if (rc != 0)
            throw new McirException($"dist_backend: nccl: {what} failed on rank {Rank}: {Marshal.PtrToStringUTF8(_errorString(rc))} (ncclResult {rc})");
    }
}
