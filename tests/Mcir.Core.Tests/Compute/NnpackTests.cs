using System.Runtime.InteropServices;
using Mcir.Core.Compute;
using Xunit;

namespace Mcir.Core.Tests.Compute;

/// <summary>Toggles a process-wide libtorch switch: runs alone so no other test's convolution sees it change.</summary>
[Collection(NativeMemoryCollection.Name)]
public class NnpackTests
{
    [Fact]
    public void Turned_off_only_where_the_machine_reports_no_caches()
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture != Architecture.X64) return;
        TorchSharp.torch.get_num_threads();
        bool before = Nnpack.Enabled;
        try
        {
            Nnpack.Enabled = true;
            Nnpack.DisableWhereUnsupported(cachesReported: true);
            Assert.True(Nnpack.Enabled); // a machine with caches keeps libtorch's default
            Nnpack.DisableWhereUnsupported(cachesReported: false);
            Assert.False(Nnpack.Enabled);
            Assert.True(Nnpack.Disabled);
        }
        finally
        {
            Nnpack.Enabled = before;
        }
    }
}
