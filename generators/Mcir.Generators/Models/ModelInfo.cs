using Mcir.Generators.Helpers;

namespace Mcir.Generators.Models;

/// <summary>Everything needed to emit the partial class of one valid model (plain, equatable values).</summary>
/// <param name="HintName">Unique file name stem: the class's metadata name.</param>
/// <param name="Namespace">The containing namespace, or null for the global namespace.</param>
/// <param name="ClassName">The class name as declared.</param>
/// <param name="FullyQualifiedName">The class as <c>global::Ns.Name</c>.</param>
/// <param name="OptionsFullyQualifiedName">The options type as <c>global::Ns.Name</c>.</param>
/// <param name="Name">The registered model name.</param>
/// <param name="Tasks">The tasks it is meant for.</param>
/// <param name="Description">The one-line description.</param>
/// <param name="HidesBaseMembers">A base class already has Descriptor/CloneArchitecture (emit <c>new</c>).</param>
/// <param name="TileSafe">The attribute's <c>TileSafe</c> (default true).</param>
/// <param name="TileSafetyNote">The attribute's <c>TileSafetyNote</c> (default empty).</param>
internal sealed record ModelInfo(
    string HintName,
    string? Namespace,
    string ClassName,
    string FullyQualifiedName,
    string OptionsFullyQualifiedName,
    string Name,
    EquatableArray<string> Tasks,
    string Description,
    bool HidesBaseMembers,
    bool TileSafe = true,
    string TileSafetyNote = "");

/// <summary>What the assembly-wide steps need of one annotated class (valid or not).</summary>
/// <param name="Name">The registered name, or null when it is invalid.</param>
/// <param name="ClassName">The class name, for messages.</param>
/// <param name="FullyQualifiedName">The class as <c>global::Ns.Name</c>.</param>
/// <param name="NameLocation">Where the name is written (for MCIR004).</param>
/// <param name="IsValid">True when the class passed every per-class check.</param>
internal sealed record ModelEntry(string? Name, string ClassName, string FullyQualifiedName, LocationInfo? NameLocation, bool IsValid);

/// <summary>The result of inspecting one annotated class.</summary>
/// <param name="Model">The model to emit, or null when a per-class diagnostic was reported.</param>
/// <param name="Entry">The entry for the assembly-wide steps.</param>
/// <param name="Diagnostics">Per-class diagnostics.</param>
internal sealed record ModelResult(ModelInfo? Model, ModelEntry Entry, EquatableArray<DiagnosticInfo> Diagnostics);

/// <summary>One line of the generated registrar.</summary>
/// <param name="Name">The registered model name.</param>
/// <param name="FullyQualifiedName">The class as <c>global::Ns.Name</c>.</param>
internal sealed record RegistrarEntry(string Name, string FullyQualifiedName);

/// <summary>The generated registrar: every valid, uniquely named model of the assembly, ordered by name.</summary>
/// <param name="Models">The models to register.</param>
internal sealed record RegistrarInfo(EquatableArray<RegistrarEntry> Models);
