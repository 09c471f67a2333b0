return Mcir.Host.HostCommands.Run(args);
