using Xunit.Abstractions;

namespace Mcir.Packaging.Tests;

/// <summary>
/// The third-party path end to end (<see cref="OutsideTeam"/>: pack, tool and template install, dotnet new, build, all
/// outside the repository), then the plugin trained and listed by the installed mcir-host. Slow: the packs, the tool
/// install (libtorch) and two restores + builds; the durations are written to the test output.
/// </summary>
public sealed class ThirdPartyPluginTests : IClassFixture<OutsideTeam>
{
    private readonly OutsideTeam team;
    private readonly ITestOutputHelper log;

    public ThirdPartyPluginTests(OutsideTeam team, ITestOutputHelper log)
    {
        this.team = team;
        this.log = log;
    }

    [Fact]
    public void TheTemplateBuildsAgainstThePackedContractOfThisVersion()
    {
        // The template's McirVersion parameter defaults to the version it was packed with.
        string props = File.ReadAllText(Path.Combine(team.ProjectDir, "Directory.Build.props"));
        Assert.Contains($"<McirAbstractionsVersion>{team.Version}</McirAbstractionsVersion>", props);
        // Restored from the local source into the temporary package folder, not the machine's.
        Assert.True(Directory.Exists(Path.Combine(team.Root, "nuget-packages", "mcir.abstractions", team.Version.ToLowerInvariant())));
        // The plugin folder holds the plugin alone: the contract, TorchSharp and libtorch come from the host.
        var files = Directory.GetFiles(Path.GetDirectoryName(team.PluginDll)!).Select(Path.GetFileName).ToList();
        Assert.Contains("Acme.Deblocking.dll", files);
        Assert.DoesNotContain("Mcir.Abstractions.dll", files);
        Assert.DoesNotContain("TorchSharp.dll", files);
        log.WriteLine(team.Report());
    }

    [Fact]
    public void TheInstalledToolTrainsThePlugin()
    {
        var (code, output) = team.Run(team.McirHost, team.ProjectDir, "mcir-host run",
            "run", "--plugins", team.PluginDll, "--config", $"configs/{OutsideTeam.Task}-net-spn.json",
            "--set", "train.total_iter=4", "train.print_freq=2", "train.val_freq=4", "train.checkpoint_freq=4");
        log.WriteLine(team.Report());
        Assert.True(code == 0, $"mcir-host run exited {code}:\n{output}");
        Assert.Contains($"model {OutsideTeam.Task}-net", output);
        Assert.Contains($"loss term {OutsideTeam.Task}-gradient-l1", output);
        Assert.Contains("[iter 4/4]", output);
        Assert.Contains("[iter 4] validation: psnr", output);
        // Output to a pipe (CI, logs) is plain lines: no progress line redrawn with carriage returns.
        Assert.DoesNotContain('\r', output);
        string run = Path.Combine(team.ProjectDir, "runs", $"{OutsideTeam.Task}-net-spn");
        var metrics = File.ReadAllLines(Path.Combine(run, "metrics.jsonl"));
        // Logged at iterations 1, 2 and 4 (print_freq 2), with the plugin loss's parts.
        var train = metrics.Where(l => l.Contains("\"event\":\"train\"")).ToList();
        Assert.Equal(3, train.Count);
        Assert.All(train, l => Assert.Contains("\"gradient\":", l));
        Assert.Contains(metrics, l => l.Contains("\"event\":\"end\"") && l.Contains("\"status\":\"completed\""));
        Assert.True(Directory.Exists(Path.Combine(run, "checkpoints", "iter_000004")));
    }

    [Fact]
    public void TheInstalledToolListsThePlugin()
    {
        var (code, output) = team.Run(team.McirHost, team.ProjectDir, "mcir-host list", "list", "--plugins", team.PluginDll);
        log.WriteLine(team.Report());
        Assert.True(code == 0, $"mcir-host list exited {code}:\n{output}");
        Assert.Contains("Acme.Deblocking", output);
        Assert.Contains($"{OutsideTeam.Task}-net", output);
        Assert.Contains($"{OutsideTeam.Task}-gradient-l1", output);
        Assert.Contains($"{OutsideTeam.Task}-blockiness", output);
        // Without --plugins the tool loads its bundled plugins, from plugins/ next to its dll.
        var (bundledCode, bundled) = team.Run(team.McirHost, team.ProjectDir, "mcir-host list (bundled)", "list");
        Assert.True(bundledCode == 0, bundled);
        Assert.Contains("dncnn-light", bundled);
        Assert.Contains(Path.Combine("tools", ".store", "mcir.host"), bundled);
    }

    [Fact]
    public void TheTemplatesTestsPass()
    {
        string output = team.Dotnet(team.ProjectDir, "dotnet test (plugin)", "test", "Acme.Deblocking.slnx", "--no-build");
        log.WriteLine(team.Report());
        Assert.Contains("Passed!", output);
        Assert.Contains("Failed:     0", output);
    }
}
