// An MPI rank's output is a log, not a terminal: Open MPI's mpirun hands each rank a pseudo-terminal, on which .NET's
// console would switch on keypad mode and put its escape sequence (ESC [?1h ESC =) first in the rank's output, ahead of
// e.g. --json. With TERM=dumb there is no such sequence (and no live progress line).
if (Mcir.Core.Distributed.Communicators.LaunchedSize() is not null) Environment.SetEnvironmentVariable("TERM", "dumb");
// Before any libtorch kernel is chosen and any tensor allocated: CPU-specific oneDNN settings and the native heap's
// (see Mcir.Core.Compute.OneDnnIsa, NativeHeap).
Mcir.Core.Compute.OneDnnIsa.EnsureApplied();
if ((Mcir.Core.Compute.NativeHeap.ConfigurationError ?? Mcir.Core.Compute.ConvolutionLayout.ConfigurationError
        ?? Mcir.Core.Compute.OneDnnCacheSizes.ConfigurationError ?? Mcir.Core.Compute.FusedConvolution.ConfigurationError
        ?? Mcir.Core.Compute.WinogradConvolution.ConfigurationError ?? Mcir.Core.Compute.IntraOpParallel.ConfigurationError) is { } settingError)
{
    Console.Error.WriteLine($"error: {settingError}");
    return Mcir.Host.HostCommands.UserError;
}
Mcir.Core.Compute.Nnpack.DisableWhereUnsupported();
Mcir.Host.Commands.RunCommand.ProbeIsa = true;
return Mcir.Host.HostCommands.Run(args);
