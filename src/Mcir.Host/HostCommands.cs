using System.CommandLine;
using Mcir.Core;
using Mcir.Host.Commands;

namespace Mcir.Host;

/// <summary>Entry point of mcir-host: builds the command tree and runs it with user errors printed plainly.</summary>
public static class HostCommands
{
    /// <summary>Exit code for bad input, configuration or files (the message says which).</summary>
    public const int UserError = 1;

    /// <summary>
    /// Exit code for a bug (any exception that is not a user error): the stack trace is printed (EX_SOFTWARE of
    /// sysexits.h).
    /// </summary>
    public const int InternalError = 70;

    public static int Run(string[] args) => Run(args, Console.Out, Console.Error, LiveProgress.TerminalWanted());

    /// <summary>Runs a command line with <paramref name="output"/> for results and <paramref name="error"/> for progress
    /// and errors; <paramref name="liveProgress"/>: <paramref name="error"/> is a terminal, where <c>run</c> draws a live
    /// progress line with carriage returns (never on redirected output).</summary>
    public static int Run(string[] args, TextWriter output, TextWriter error, bool liveProgress = false)
    {
        var console = new HostConsole(output, error, liveProgress);
        var root = new RootCommand("mcir-host: train and evaluate image-restoration networks with model-contrastive (SPN) learning.")
        {
            MetricsCommand.Create(console),
            DegradeCommand.Create(console),
            ListCommand.Create(console),
            RunCommand.Create(console),
            RestoreCommand.Create(console),
            ExportCommand.Create(console),
            TestCommand.Create(console),
            BenchCommand.Create(console),
            WeightsCommand.Create(console),
            PlotCommand.Create(console),
            IsaProbeCommand.Create(console),
            DistCheckCommand.Create(console),
        };
        try
        {
            var parsed = root.Parse(args);
            if (parsed.Errors.Count > 0)
            {
                // Bad command lines get one line per problem and a pointer to the help, not the whole help text.
                foreach (var e in parsed.Errors) error.WriteLine($"error: {e.Message}");
                string command = parsed.CommandResult.Command is RootCommand ? "" : parsed.CommandResult.Command.Name + " ";
                error.WriteLine($"see 'mcir-host {command}--help'");
                return UserError;
            }
            return parsed.Invoke(new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false });
        }
        catch (Exception e)
        {
            return Report(e, error);
        }
    }

    /// <summary>
    /// Prints a failure and returns the exit code: a user error as one <c>error: …</c> line, exit
    /// <see cref="UserError"/>; anything else (a bug) with its stack trace, exit <see cref="InternalError"/>.
    /// </summary>
    internal static int Report(Exception e, TextWriter error)
    {
        if (IsUserError(e))
        {
            error.WriteLine($"error: {e.Message}");
            return UserError;
        }
        error.WriteLine($"internal error (a bug in mcir-host or a plugin, not in your input; please report it with the command line): {e}");
        return InternalError;
    }

    /// <summary>
    /// Runs a command's body on one rank of an MPI job: an exception is reported as <see cref="Report"/> does, prefixed
    /// with the rank, and aborts every rank (MPI_Abort) so that none waits forever in a collective for one that died.
    /// In a one-process job the exception propagates as usual.
    /// </summary>
    internal static int OnEveryRank(Mcir.Core.Distributed.ICommunicator comm, TextWriter error, Func<int> body)
    {
        if (comm.Size == 1) return body();
        try
        {
            return body();
        }
        catch (Exception e)
        {
            error.WriteLine($"rank {comm.Rank} of {comm.Size}:");
            int code = Report(e, error);
            comm.Abort(code);
            return code;
        }
    }

    // User errors: McirException (configuration, weights, data: the message names the key, file or value) and the file
    // system's and file readers' own errors, which name the file (missing, unreadable, malformed). Anything else is a
    // bug and keeps its stack trace.
    private static bool IsUserError(Exception e) =>
        e is McirException or IOException or InvalidDataException or UnauthorizedAccessException;
}

/// <summary>Where commands print: standard output for results, standard error for progress and errors;
/// <paramref name="LiveProgress"/>: standard error is a terminal (live progress line).</summary>
public sealed record HostConsole(TextWriter Out, TextWriter Error, bool LiveProgress = false);
