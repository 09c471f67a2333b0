namespace Mcir.Abstractions;

/// <summary>Version of the plugin contract. A plugin built against another major version is refused.</summary>
public static class ContractVersion
{
    /// <summary>Major version: bumped on any breaking change of the types in this assembly.</summary>
    public const int Major = 1;
}
