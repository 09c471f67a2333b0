namespace Mcir.Generators.Tests;

/// <summary>The generated code, compared with the readable files under Snapshots/.</summary>
public sealed class SnapshotTests
{
    [Fact]
    public Task Single_model_gets_descriptor_clone_and_registrar() =>
        GeneratorVerifier.VerifySnapshotsAsync("SingleModel", [Sources.TinyNet]);

    [Fact]
    public Task Model_that_is_not_tile_safe_says_so_in_its_descriptor() =>
        GeneratorVerifier.VerifySnapshotsAsync("NotTileSafe", [Sources.GlobalPoolNet]);

    [Fact]
    public Task Two_models_share_one_registrar_ordered_by_name() =>
        GeneratorVerifier.VerifySnapshotsAsync("TwoModels", [Sources.TinyNet, Sources.Denoiser]);
}
