using static TorchSharp.torch;

namespace Mcir.Abstractions.Components;

/// <summary>
/// Makes the degraded input of a training or evaluation pair from a clean image, on the fly (noise, blur, bicubic
/// downscaling, compression, ...). Chosen by name in a configuration (<c>data.*.degradation.name</c>) and registered with
/// <see cref="Microsoft.Extensions.DependencyInjection.McirComponentServiceCollectionExtensions.AddMcirDegradation"/>.
/// </summary>
/// <remarks>
/// <para>Reproducibility: every random choice must come from the <see cref="Random"/> passed to <see cref="Degrade"/>
/// (directly, or through a <c>torch.Generator</c> seeded from it) — never from the global torch generator, a static
/// <see cref="Random"/> or other shared state. The data set seeds that <see cref="Random"/> per sample, so a run
/// repeats exactly and evaluation inputs are the same every run.</para>
/// <para>Thread safety: the data loader may call <see cref="Degrade"/> from several threads at once; an instance must
/// not keep per-call state.</para>
/// </remarks>
public interface IDegradation
{
    /// <summary>Registered name, e.g. <c>"gaussian-noise"</c>.</summary>
    string Name { get; }

    /// <summary>The degraded (low-quality) version of <paramref name="clean"/>.</summary>
    /// <param name="clean">The clean image: float32 [3, H, W] on the CPU, values in [0, 1]. Owned by the caller; do not
    /// modify or dispose it.</param>
    /// <param name="rng">The only source of randomness allowed (seeded per sample by the data set).</param>
    /// <returns>A new float32 [3, h, w] tensor owned by the caller, nominally in [0, 1]. For same-size tasks (denoising,
    /// deblurring) h = H and w = W; it may be any size the model expects, as long as the data set's <c>scale</c> is
    /// H / h (e.g. ×1/4 bicubic downscaling with <c>scale: 4</c>).</returns>
    Tensor Degrade(Tensor clean, Random rng);
}
