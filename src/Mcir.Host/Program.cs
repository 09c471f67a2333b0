// Before any libtorch kernel is chosen and any tensor allocated: CPU-specific oneDNN settings and the native heap's
// (see Mcir.Core.Compute.OneDnnIsa, NativeHeap).
Mcir.Core.Compute.OneDnnIsa.EnsureApplied();
if ((Mcir.Core.Compute.NativeHeap.ConfigurationError ?? Mcir.Core.Compute.ConvolutionLayout.ConfigurationError) is { } settingError)
{
    Console.Error.WriteLine($"error: {settingError}");
    return Mcir.Host.HostCommands.UserError;
}
Mcir.Core.Compute.Nnpack.DisableWhereUnsupported();
Mcir.Host.Commands.RunCommand.ProbeIsa = true;
return Mcir.Host.HostCommands.Run(args);
