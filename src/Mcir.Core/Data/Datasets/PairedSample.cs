using static TorchSharp.torch;

namespace Mcir.Core.Data.Datasets;

/// <summary>
/// One training/evaluation pair as tensors: <see cref="Lq"/> float32 [C, h, w] and <see cref="Gt"/> float32
/// [C, H, W] (H = scale·h, W = scale·w for super-resolution, equal sizes for restoration), values in [0, 1].
/// The caller owns both tensors; <see cref="Dispose"/> releases them.
/// </summary>
/// <param name="Lq">Low-quality input, [C, h, w] (C = 3, or 1 for gray data).</param>
/// <param name="Gt">Ground truth, [C, H, W].</param>
/// <param name="Name">The sample's name (file name without extension).</param>
public sealed record PairedSample(Tensor Lq, Tensor Gt, string Name) : IDisposable
{
    /// <summary>Disposes <see cref="Lq"/> and <see cref="Gt"/>.</summary>
    public void Dispose()
    {
        Lq.Dispose();
        Gt.Dispose();
    }
}

/// <summary>
/// One pair as images (HWC, 0–255), after cropping and augmentation: what a data set produces before tensor
/// conversion. Managed memory only, so it can be made on any thread and dropped without leaking native memory.
/// </summary>
/// <param name="Lq">Low-quality input.</param>
/// <param name="Gt">Ground truth.</param>
/// <param name="Name">The sample's name (file name without extension).</param>
public sealed record PairedImages(RgbImage Lq, RgbImage Gt, string Name)
{
    /// <summary>Converts both images with <see cref="ImageTensor.ToTensor"/> (<paramref name="channels"/> 3 or 1); the caller owns the result.</summary>
    public PairedSample ToSample(Device? device = null, int channels = 3)
    {
        var lq = ImageTensor.ToTensor(Lq, device, channels);
        try
        {
            return new PairedSample(lq, ImageTensor.ToTensor(Gt, device, channels), Name);
        }
        catch
        {
            lq.Dispose();
            throw;
        }
    }
}
