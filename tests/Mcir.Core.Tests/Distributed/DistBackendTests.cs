using Mcir.Core.Compute;
using Mcir.Core.Distributed;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Distributed;

/// <summary>
/// <c>dist_backend</c>: the setting's parsing and the choice between NCCL (CUDA tensors on the GPUs) and MPI through host
/// memory, the NCCL unique-id handshake's checks, and a rank's CUDA device. NCCL itself needs a GPU and libnccl, which
/// this project's machines lack: the library's absence is injected or, where the test says so, observed.
/// </summary>
public class DistBackendTests
{
    private static readonly Func<string?> NcclLoads = () => null;
    private static readonly Func<string?> NcclMissing = () => "libnccl.so.2: cannot open shared object file: No such file or directory";
    private static readonly Func<string?> NotAsked = () => throw new InvalidOperationException("the NCCL library was probed though it is not needed");

    [Theory]
    [InlineData("gloo")]
    [InlineData("")]
    [InlineData("nccl2")]
    public void AnUnknownSettingIsAUserErrorNamingTheKeyAndTheChoices(string setting)
    {
        var e = Assert.Throws<McirException>(() => Communicators.ChooseBackend(setting, DeviceType.CPU, 2, NotAsked));
        Assert.Equal($"dist_backend: '{setting}' is not a gradient backend; expected auto, nccl or mpi", e.Message);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("auto")]
    [InlineData(" MPI ")]
    public void OnTheCpuGradientsGoThroughMpi(string? setting)
    {
        Assert.Equal("mpi", Communicators.ChooseBackend(setting, DeviceType.CPU, 2, NotAsked).Backend);
    }

    [Fact]
    public void NcclOnTheCpuIsAUserError()
    {
        var e = Assert.Throws<McirException>(() => Communicators.ChooseBackend("nccl", DeviceType.CPU, 2, NotAsked));
        Assert.StartsWith("dist_backend: 'nccl' reduces CUDA tensors, but the device is cpu", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void AutoOnCudaIsNcclWhenTheLibraryLoadsElseMpiSayingWhy()
    {
        Assert.Equal("nccl", Communicators.ChooseBackend("auto", DeviceType.CUDA, 2, NcclLoads).Backend);
        var (backend, reason) = Communicators.ChooseBackend("auto", DeviceType.CUDA, 2, NcclMissing);
        Assert.Equal("mpi", backend);
        Assert.Contains("libnccl.so.2 not loaded", reason);
        // One process reduces nothing: NCCL is not needed, nor probed.
        Assert.Equal("mpi", Communicators.ChooseBackend("auto", DeviceType.CUDA, 1, NotAsked).Backend);
    }

    [Fact]
    public void NcclAskedForWithoutTheLibraryIsAOneLineErrorNamingIt()
    {
        var e = Assert.Throws<McirException>(() => Communicators.ChooseBackend("nccl", DeviceType.CUDA, 2, NcclMissing));
        Assert.StartsWith("dist_backend: 'nccl' needs NVIDIA's NCCL library libnccl.so.2, which could not be loaded (libnccl.so.2: cannot open", e.Message);
        Assert.EndsWith("install NCCL 2 or set dist_backend to mpi", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal("nccl", Communicators.ChooseBackend("nccl", DeviceType.CUDA, 2, NcclLoads).Backend);
    }

    [Fact]
    public void TheRealProbeAndConstructorNameTheLibraryWhereItIsMissing()
    {
        string? error = NcclCommunicator.LoadError();
        if (error is null) return; // NCCL is installed on this machine: nothing to observe about its absence
        Assert.Contains("libnccl.so.2", error);
        var e = Assert.Throws<McirException>(() => new NcclCommunicator(SingleProcess.Instance, 0));
        Assert.StartsWith("dist_backend: nccl: libnccl.so.2 could not be loaded (", e.Message);
        Assert.Throws<McirException>(() => NcclCommunicator.MakeUniqueId());
        // What `run` does for device cuda with dist_backend nccl on such a machine:
        Assert.Contains("libnccl.so.2", Assert.Throws<McirException>(() => Communicators.ChooseBackend("nccl", DeviceType.CUDA, 2, NcclCommunicator.LoadError)).Message);
    }

    [Fact]
    public void ForGradientsKeepsTheCommunicatorOnTheCpuAndChecksTheSetting()
    {
        var log = new StringWriter();
        Assert.Same(SingleProcess.Instance, Communicators.ForGradients(SingleProcess.Instance, "auto", CPU, log));
        Assert.Throws<McirException>(() => Communicators.ForGradients(SingleProcess.Instance, "nccl", CPU, log));
        Assert.Throws<McirException>(() => Communicators.ForGradients(SingleProcess.Instance, "bogus", CPU, log));
    }

    [Fact]
    public void TheUniqueIdIsRankZerosBytesAndMustBe128Long()
    {
        var made = Enumerable.Range(0, NcclCommunicator.UniqueIdBytes).Select(i => (byte)(i * 7)).ToArray();
        Assert.Equal(made, NcclCommunicator.ShareUniqueId(SingleProcess.Instance, () => made));
        Assert.Throws<InvalidOperationException>(() => NcclCommunicator.ShareUniqueId(SingleProcess.Instance, () => new byte[127]));
    }

    [Theory]
    [InlineData("cuda", 0, 5, 4, 1)]    // one GPU per rank of the node: local rank mod devices
    [InlineData("auto", 0, 2, 4, 2)]
    [InlineData("cuda:3", 3, 1, 4, 3)]  // an explicit index is kept
    [InlineData("cuda", 0, 1, 1, 0)]    // one visible device (e.g. CUDA_VISIBLE_DEVICES per task)
    public void ARankTakesTheGpuOfItsLocalRankUnlessOneIsNamed(string setting, int resolved, int localRank, int devices, int expected)
    {
        Assert.Equal(expected, Communicators.RankDevice(setting, resolved, localRank, devices));
    }

    [Fact]
    public void TheTensorDataPointerIsTheAddressOfTheFirstElement()
    {
        using var t = arange(12, dtype: ScalarType.Float32);
        nint p = TensorData.Pointer(t);
        Assert.Equal(5f, BitConverter.Int32BitsToSingle(System.Runtime.InteropServices.Marshal.ReadInt32(p + 5 * sizeof(float))));
        System.Runtime.InteropServices.Marshal.WriteInt32(p + 3 * sizeof(float), BitConverter.SingleToInt32Bits(42f));
        Assert.Equal(42f, t[3].item<float>());
        using var slice = t.narrow(0, 3, 4);
        Assert.Equal(p + 3 * sizeof(float), TensorData.Pointer(slice));
    }
}
