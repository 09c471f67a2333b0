using Mcir.Core.Training;

namespace Mcir.Core.Tests.Training.TrainerLoop;

[Collection("Trainer")]
public class TrainerValidationCliffTests
{
    [Fact]
    public void ValidationPsnrFallingOffACliffStopsTheRunWithoutACheckpointFromThatState()
    {
        string run = TrainerKit.NewRunDir("cliff");
        try
        {
            using var rig = TrainerKit.Rig();
            var psnr = new Queue<double>([30.0, 31.0, 29.5, 25.0, 32.0]); // 25.0 is 6 dB below the best 31.0 (default limit 5 dB)
            using var trainer = rig.CreateTrainer(TrainerKit.Options(50, checkpointFreq: 5) with { ValFreq = 5 }, run,
                validate: (_, _) => new Dictionary<string, double> { ["psnr"] = psnr.Dequeue() });

            var result = trainer.Run();

            Assert.Equal(TrainingStatus.Collapsed, result.Status);
            Assert.Equal(CollapseCause.ValidationCliff, result.Collapse!.Cause);
            Assert.Equal(20, result.Collapse.Iteration);
            Assert.Contains("fell to 25", result.Message);
            Assert.Contains("below its best 31", result.Message);
            Assert.EndsWith("iter_000015", result.LastCheckpoint);
            Assert.False(Directory.Exists(Path.Combine(run, "checkpoints", "iter_000020")));
        }
        finally
        {
            TrainerKit.TryDelete(run);
        }
    }
}
