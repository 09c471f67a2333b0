// Before any libtorch kernel is chosen: CPU-specific oneDNN settings (see Mcir.Core.Compute.OneDnnIsa).
Mcir.Core.Compute.OneDnnIsa.EnsureApplied();
return Mcir.Host.HostCommands.Run(args);
