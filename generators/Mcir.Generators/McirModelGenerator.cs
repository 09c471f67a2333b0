using Mcir.Generators.Helpers;
using Mcir.Generators.Models;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Mcir.Generators;

/// <summary>
/// Generates, for every <c>[McirModel]</c> class, its <c>Descriptor</c> and <c>CloneArchitecture()</c>, and for the
/// assembly one registrar (<c>McirGenerated.PluginRegistrar</c>) with the <c>[assembly: McirPlugin]</c> marker.
/// The pipeline is here; the inspection and emission are in <see cref="Execute"/>.
/// </summary>
[Generator(LanguageNames.CSharp)]
public sealed partial class McirModelGenerator : IIncrementalGenerator
{
    /// <summary>Metadata name of the attribute that marks a model.</summary>
    public const string McirModelAttributeMetadataName = "Mcir.Abstractions.Models.McirModelAttribute";

    /// <inheritdoc />
    public void Initialize(IncrementalGeneratorInitializationContext context)
    {
        // One value per annotated class: the model to emit (if valid), its entry for the assembly-wide steps and its
        // diagnostics. Only equatable values leave this step.
        IncrementalValuesProvider<ModelResult> results = context.SyntaxProvider
            .ForAttributeWithMetadataName(
                McirModelAttributeMetadataName,
                predicate: static (node, _) => node is ClassDeclarationSyntax,
                transform: static (context, token) => Execute.Inspect(context, token))
            .WithTrackingName(TrackingNames.Inspect);

        // Per-class diagnostics.
        IncrementalValuesProvider<EquatableArray<DiagnosticInfo>> classDiagnostics = results
            .Select(static (result, _) => result.Diagnostics)
            .Where(static diagnostics => !diagnostics.IsEmpty)
            .WithTrackingName(TrackingNames.ClassDiagnostics);
        context.RegisterSourceOutput(classDiagnostics, static (context, diagnostics) =>
        {
            foreach (var diagnostic in diagnostics)
            {
                context.ReportDiagnostic(diagnostic.ToDiagnostic());
            }
        });

        // Per-class source: Descriptor + CloneArchitecture().
        IncrementalValuesProvider<ModelInfo> models = results
            .Where(static result => result.Model is not null)
            .Select(static (result, _) => result.Model!)
            .WithTrackingName(TrackingNames.Models);
        context.RegisterSourceOutput(models, static (context, model) =>
            context.AddSource($"{model.HintName}.g.cs", Execute.EmitModel(model, context.CancellationToken)));

        // Assembly-wide: every annotated class, for duplicate names and the registrar.
        IncrementalValueProvider<EquatableArray<ModelEntry>> entries = results
            .Select(static (result, _) => result.Entry)
            .Collect()
            .Select(static (entries, _) => entries.ToEquatableArray())
            .WithTrackingName(TrackingNames.Entries);

        IncrementalValueProvider<EquatableArray<DiagnosticInfo>> duplicateDiagnostics = entries
            .Select(static (entries, token) => Execute.FindDuplicateNames(entries, token))
            .WithTrackingName(TrackingNames.DuplicateNames);
        context.RegisterSourceOutput(duplicateDiagnostics, static (context, diagnostics) =>
        {
            foreach (var diagnostic in diagnostics)
            {
                context.ReportDiagnostic(diagnostic.ToDiagnostic());
            }
        });

        IncrementalValueProvider<RegistrarInfo> registrar = entries
            .Select(static (entries, token) => Execute.GetRegistrar(entries, token))
            .WithTrackingName(TrackingNames.Registrar);
        context.RegisterSourceOutput(registrar, static (context, registrar) =>
        {
            if (!registrar.Models.IsEmpty)
            {
                context.AddSource("McirGenerated.PluginRegistrar.g.cs", Execute.EmitRegistrar(registrar, context.CancellationToken));
            }
        });
    }
}
