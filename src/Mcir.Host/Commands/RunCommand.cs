using System.CommandLine;
using Mcir.Abstractions.Models;
using Mcir.Core.Config;
using Mcir.Core.Runs;
using Mcir.Core.Training;
using Microsoft.Extensions.DependencyInjection;

namespace Mcir.Host.Commands;

/// <summary><c>mcir-host run</c>: trains a model from a configuration file, then scores the test sets.</summary>
internal static class RunCommand
{
    /// <summary>Exit code when the collapse guard stopped the run.</summary>
    public const int Collapsed = 3;

    /// <summary>Exit code after Ctrl-C (a checkpoint was written; <c>--resume auto</c> continues).</summary>
    public const int Interrupted = 130;

    /// <summary>
    /// Exit code after SIGTERM — how Slurm (time limit, preemption) and Kubernetes stop a job: the iteration was
    /// finished and a complete checkpoint written; <c>--resume auto</c> continues (EX_TEMPFAIL of sysexits.h: retry
    /// later). Distinct from 143, which means the process was killed without saving.
    /// </summary>
    public const int Terminated = 75;

    /// <summary>
    /// True in the mcir-host process (set by its entry point): <c>run</c> may start probe children of the host. Off when
    /// the commands run inside another program (tests), whose executable is not mcir-host.
    /// </summary>
    public static bool ProbeIsa { get; set; }

    public static Command Create(HostConsole console)
    {
        var config = new Option<string>("--config") { Description = "Run configuration (JSON), or a BasicSR/MCLIR option file (.yml)", Required = true };
        var set = new Option<string[]>("--set") { Description = "Override a configuration key: key.path=value (repeatable)", AllowMultipleArgumentsPerToken = true };
        var resume = new Option<string?>("--resume") { Description = "'auto' (newest complete checkpoint of the run) or a checkpoint folder" };
        var plugins = new PluginOptions();
        var command = new Command("run", "Train a restoration network (with SPN when configured), then report PSNR/SSIM on the test sets")
        {
            config, set, resume,
        };
        plugins.AddTo(command);
        command.SetAction(r =>
        {
            var root = LoadConfig(r.GetValue(config)!, r.GetValue(set), console.Error);
            // Under mpirun/srun every rank runs this command; an error on any rank ends all of them (no rank waits forever
            // in a collective for one that died).
            using var comm = Mcir.Core.Distributed.Communicators.Create(root["distributed"] is System.Text.Json.Nodes.JsonValue v && v.TryGetValue<string>(out var mode) ? mode : null, "distributed");
            return HostCommands.OnEveryRank(comm, console.Error, () => Execute(r, root, comm));
        });
        return command;

        int Execute(ParseResult r, System.Text.Json.Nodes.JsonObject root, Mcir.Core.Distributed.ICommunicator comm)
        {
            using var services = new ServiceCollection().AddMcirPlugins(plugins.Load(r)).BuildServiceProvider();

            using var cancel = new CancellationTokenSource();
            int terminated = 0;
            ConsoleCancelEventHandler onCancel = (_, e) =>
            {
                e.Cancel = true; // finish the iteration, write a checkpoint, exit cleanly
                console.Error.WriteLine("interrupt: finishing the current iteration and writing a checkpoint ...");
                cancel.Cancel();
            };
            Console.CancelKeyPress += onCancel;
            // SIGTERM (a scheduler's stop, `kill`): the same as Ctrl-C, with its own exit code. Without this handler
            // .NET exits at once (143) and everything since the last checkpoint is lost.
            using var onTerm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c =>
            {
                c.Cancel = true;
                if (Interlocked.Exchange(ref terminated, 1) == 0)
                    console.Error.WriteLine("terminate (SIGTERM): finishing the current iteration and writing a checkpoint ...");
                cancel.Cancel();
            });
            try
            {
                // On a terminal, a live progress line below the log lines; otherwise plain lines only.
                // Not under MPI: the launcher multiplexes the ranks' output (through a pty), so it is no terminal of the user's.
                var status = console.LiveProgress && comm.Size == 1 ? new StatusLineWriter(console.Error, () => Console.WindowWidth) : null;
                RunOutcome outcome;
                try
                {
                    // Before the first kernel, once the configuration has been checked: the oneDNN ISA cap measured for this
                    // run (one process only: under MPI every rank keeps the engine's cap, so that all ranks compute alike).
                    Action? probe = comm.Size == 1 && ProbeIsa ? () => IsaProbeCommand.SelectFor(root, plugins.Arguments(r), status ?? console.Error) : null;
                    outcome = TrainingRun.Execute(root, services.GetRunRegistries(), r.GetValue(resume), status ?? console.Error, cancel.Token,
                        status is null ? null : new LiveProgressLog(status), comm, probe);
                }
                finally
                {
                    status?.ClearStatus();
                }
                if (outcome.Tests.Count > 0)
                    console.Out.WriteLine(TrainingRun.FormatTables(outcome.Tests));
                if (comm.IsRoot) console.Out.WriteLine($"run folder: {outcome.RunDirectory}");
                return outcome.Training.Status switch
                {
                    TrainingStatus.Completed => 0,
                    TrainingStatus.Interrupted => Volatile.Read(ref terminated) != 0 ? Terminated : Interrupted,
                    _ => Collapsed,
                };
            }
            finally
            {
                Console.CancelKeyPress -= onCancel;
            }
        }
    }

    /// <summary>
    /// A JSON run configuration, or a BasicSR/MCLIR option file (<c>.yml</c>/<c>.yaml</c>) mapped by
    /// <see cref="BasicSrOptions"/> with one <c>warning:</c> line per key left out; then the <c>--set</c> overrides.
    /// </summary>
    internal static System.Text.Json.Nodes.JsonObject LoadConfig(string path, IEnumerable<string>? overrides, TextWriter log)
    {
        if (!BasicSrOptions.IsOptionFile(path))
            return ConfigBinder.Load(path, overrides);
        var mapped = BasicSrOptions.Load(path);
        foreach (var w in mapped.Warnings)
            log.WriteLine($"warning: {w}");
        foreach (var o in overrides ?? [])
            ConfigBinder.ApplyOverride(mapped.Config, o);
        return mapped.Config;
    }
}
