namespace Mcir.Host;

/// <summary>Entry point of mcir-host: builds the command tree and runs it.</summary>
public static class HostCommands
{
    public static int Run(string[] args)
    {
        Console.Error.WriteLine("mcir-host: no command yet");
        return 2;
    }
}
