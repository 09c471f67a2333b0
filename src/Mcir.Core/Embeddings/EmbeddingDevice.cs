using Mcir.Abstractions.ModelContrast;
using Mcir.Core.Embeddings.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Embeddings;

/// <summary>Moves a feature embedding (VGG, ONNX/ResNet18) to the training device.</summary>
public static class EmbeddingDevice
{
    /// <summary>
    /// Moves <paramref name="embedding"/>'s network to <paramref name="device"/>. An embedding of another kind stays
    /// where it is on the CPU; on another device it is an error naming <paramref name="where"/>.
    /// </summary>
    public static void Move(IFeatureEmbedding embedding, Device device, string where)
    {
        switch (embedding)
        {
            case VggEmbedding v: v.To(device); break;
            case OnnxEmbedding o: o.To(device); break;
            default:
                if (device.type != DeviceType.CPU)
                    throw new McirException($"{where}: embedding '{embedding.Name}' ({embedding.GetType().Name}) cannot be moved to {Compute.TorchDevice.Describe(device)}");
                break;
        }
    }
}
