namespace Mcir.Generators;

/// <summary>Names of the tracked pipeline steps (used by the incrementality tests).</summary>
internal static class TrackingNames
{
    public const string Inspect = "McirModel.Inspect";
    public const string ClassDiagnostics = "McirModel.ClassDiagnostics";
    public const string Models = "McirModel.Models";
    public const string Entries = "McirModel.Entries";
    public const string DuplicateNames = "McirModel.DuplicateNames";
    public const string Registrar = "McirModel.Registrar";
}
