using Mcir.Core.IO;

namespace Mcir.Core.Tests;

public class NpyTests
{
    [Fact]
    public void ReadsFloat32Array()
    {
        // np.save of np.arange(6, dtype=np.float32).reshape(2, 3): header written by hand in the 1.0 layout.
        string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        header = header.PadRight(118) + "\n";
        var bytes = new List<byte> { 0x93 };
        bytes.AddRange("NUMPY"u8.ToArray());
        bytes.AddRange(new byte[] { 1, 0, (byte)header.Length, 0 });
        bytes.AddRange(System.Text.Encoding.ASCII.GetBytes(header));
        for (int i = 0; i < 6; i++) bytes.AddRange(BitConverter.GetBytes((float)i));
        using var t = Npy.Parse(bytes.ToArray());
        Assert.Equal(new long[] { 2, 3 }, t.shape);
        Assert.Equal(5f, t[1, 2].item<float>());
    }

    [Fact]
    public void RejectsTruncatedData()
    {
        string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }".PadRight(118) + "\n";
        var bytes = new List<byte> { 0x93 };
        bytes.AddRange("NUMPY"u8.ToArray());
        bytes.AddRange(new byte[] { 1, 0, (byte)header.Length, 0 });
        bytes.AddRange(System.Text.Encoding.ASCII.GetBytes(header));
        bytes.AddRange(new byte[8]);
        var e = Assert.Throws<InvalidDataException>(() => Npy.Parse(bytes.ToArray(), "x.npy"));
        Assert.Contains("x.npy", e.Message);
        Assert.Contains("16", e.Message);
    }
}
