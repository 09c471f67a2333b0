using System.CommandLine;
using Mcir.Core;
using Mcir.Host.Commands;

namespace Mcir.Host;

/// <summary>Entry point of mcir-host: builds the command tree and runs it with user errors printed plainly.</summary>
public static class HostCommands
{
    /// <summary>Exit code for bad input, configuration or files (the message says which).</summary>
    public const int UserError = 1;

    public static int Run(string[] args) => Run(args, Console.Out, Console.Error);

    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        var console = new HostConsole(output, error);
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
        };
        var parsed = root.Parse(args);
        try
        {
            return parsed.Invoke(new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (IsUserError(e))
        {
            error.WriteLine($"error: {e.Message}");
            return UserError;
        }
    }

    // Errors whose message is meant for the user (options records validate with ArgumentException); anything else
    // is a bug and keeps its stack trace.
    private static bool IsUserError(Exception e) =>
        e is McirException or IOException or InvalidDataException or UnauthorizedAccessException or ArgumentException;
}

/// <summary>Where commands print: standard output for results, standard error for progress and errors.</summary>
public sealed record HostConsole(TextWriter Out, TextWriter Error);
