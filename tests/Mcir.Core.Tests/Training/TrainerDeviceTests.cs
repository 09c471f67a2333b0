using Mcir.Core.Compute;
using Mcir.Core.Tests.Training.TrainerLoop;
using Mcir.Core.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Training;

/// <summary>
/// The device setting: its values, and an iteration whose tensors all follow the model's device. On a CPU machine the
/// model's device is the CPU; libtorch's default device is set to the meta device while training, so a tensor the hot
/// path made without naming a device (a "default-device" tensor) lands on meta and is caught (or fails the step on a
/// device mismatch).
/// </summary>
[Collection("Trainer")]
public class TrainerDeviceTests
{
    [Fact]
    public void EveryTensorOfAnIterationFollowsTheModelsDeviceNotTheDefaultDevice()
    {
        using var rig = TrainerKit.Rig(spn: true, steps: [1, 2]);
        using var trainer = rig.CreateTrainer(TrainerKit.Options(3) with { EmaDecay = 0.9, GradClipNorm = 1.0 }, TrainerKit.NewRunDir("device"));
        var seen = new List<(string Device, long[] Shape)>();
        trainer.StepAudit = tensors => seen.AddRange(tensors.Select(t => (t.device.ToString(), t.shape)));
        torch.set_default_device(META);
        TrainingResult result;
        try
        {
            result = trainer.Run();
        }
        finally
        {
            torch.set_default_device(CPU);
        }
        Assert.Equal(TrainingStatus.Completed, result.Status);
        Assert.Equal("cpu", TorchDevice.Describe(trainer.Device));
        Assert.True(seen.Count >= 3 * 10, $"only {seen.Count} tensors audited");
        var off = seen.Where(s => s.Device != "cpu").ToList();
        Assert.True(off.Count == 0, "tensors off the model's device: " + string.Join("; ", off.Take(10).Select(o => $"{o.Device} [{string.Join(",", o.Shape)}]")));
        // The state that lives across iterations too: parameters, EMA, negatives.
        Assert.All(rig.Net.parameters(), p => Assert.Equal(DeviceType.CPU, p.device_type));
        Assert.All(trainer.Ema!.Network.parameters(), p => Assert.Equal(DeviceType.CPU, p.device_type));
    }

    [Fact]
    public void TheDefaultDeviceReallyMovesUnplacedTensors()
    {
        // The premise of the test above: a factory call without a device follows the default device.
        torch.set_default_device(META);
        try
        {
            using var t = torch.zeros(2);
            Assert.Equal(DeviceType.META, t.device_type);
        }
        finally
        {
            torch.set_default_device(CPU);
        }
    }

    [Theory]
    [InlineData("cpu")]
    [InlineData("CPU")]
    [InlineData("auto")] // this build carries the CPU backend
    public void CpuSettingsResolveToTheCpu(string setting) =>
        Assert.Equal(DeviceType.CPU, TorchDevice.Resolve(setting, "device").type);

    [Theory]
    [InlineData("cuda")]
    [InlineData("cuda:1")]
    public void CudaOnACpuBuildSaysHowToBuildForCuda(string setting)
    {
        Assert.Equal("cpu", TorchDevice.Backend);
        var e = Assert.Throws<McirException>(() => TorchDevice.Resolve(setting, "device"));
        Assert.Contains($"device: '{setting}' needs the CUDA backend", e.Message);
        Assert.Contains("-p:McirTorchBackend=cuda", e.Message);
    }

    [Theory]
    [InlineData("gpu")]
    [InlineData("cuda:x")]
    [InlineData("cuda:-1")]
    public void UnknownDevicesAreRefused(string setting)
    {
        var e = Assert.Throws<McirException>(() => TorchDevice.Resolve(setting, "--device"));
        Assert.Equal($"--device: '{setting}' is not a device; expected auto, cpu, cuda or cuda:N", e.Message);
    }
}
