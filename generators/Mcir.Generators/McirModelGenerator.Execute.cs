using System.Collections.Generic;
using System.Collections.Immutable;
using System.Linq;
using System.Text.RegularExpressions;
using System.Threading;
using Mcir.Generators.Diagnostics;
using Mcir.Generators.Helpers;
using Mcir.Generators.Models;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Mcir.Generators;

public sealed partial class McirModelGenerator
{
    /// <summary>The work of the pipeline: inspection of annotated classes (here) and emission (Emit file).</summary>
    internal static partial class Execute
    {
        private const string ModuleMetadataName = "TorchSharp.torch+nn+Module`2";
        private const string TensorMetadataName = "TorchSharp.torch+Tensor";
        private const string OptionsPropertyName = "Options";

        private static readonly Regex KebabCase = new("^[a-z][a-z0-9]*(-[a-z0-9]+)*$", RegexOptions.CultureInvariant);

        /// <summary>Checks one annotated class and turns it into equatable values.</summary>
        public static ModelResult Inspect(GeneratorAttributeSyntaxContext context, CancellationToken token)
        {
            var type = (INamedTypeSymbol)context.TargetSymbol;
            var declaration = (ClassDeclarationSyntax)context.TargetNode;
            var attribute = context.Attributes[0];
            var compilation = context.SemanticModel.Compilation;
            var diagnostics = ImmutableArray.CreateBuilder<DiagnosticInfo>();

            var className = type.ToDisplayString();
            var fullyQualifiedName = type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat);
            var classLocation = LocationInfo.From(declaration.Identifier.GetLocation());
            var attributeSyntax = attribute.ApplicationSyntaxReference?.GetSyntax(token) as AttributeSyntax;

            // MCIR005: the name.
            var name = attribute.ConstructorArguments.Length == 1 ? attribute.ConstructorArguments[0].Value as string : null;
            var nameSyntax = attributeSyntax?.ArgumentList?.Arguments.FirstOrDefault(static a => a.NameEquals is null);
            var nameLocation = LocationInfo.From(nameSyntax) ?? LocationInfo.From(attributeSyntax) ?? classLocation;
            if (name is null || !KebabCase.IsMatch(name))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidName, nameLocation, Quote(name), className));
                name = null;
            }

            // MCIR009: the tasks.
            var tasks = ImmutableArray.CreateBuilder<string>();
            var tasksLocation = LocationInfo.From(NamedArgument(attributeSyntax, "Tasks")?.Expression) ?? nameLocation;
            var tasksArgument = NamedValue(attribute, "Tasks");
            if (tasksArgument is { Kind: TypedConstantKind.Array, IsNull: false } array)
            {
                foreach (var value in array.Values)
                {
                    var task = value.Value as string;
                    if (task is null || !KebabCase.IsMatch(task))
                    {
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidTask, tasksLocation, Quote(task), className));
                    }
                    else
                    {
                        tasks.Add(task);
                    }
                }
            }

            var description = NamedValue(attribute, "Description")?.Value as string ?? "";
            var tileSafe = NamedValue(attribute, "TileSafe")?.Value as bool? ?? true;
            var tileSafetyNote = NamedValue(attribute, "TileSafetyNote")?.Value as string ?? "";
            token.ThrowIfCancellationRequested();

            // MCIR007: nested, generic or file-local.
            var shape = type.ContainingType is not null ? $"nested in '{type.ContainingType.ToDisplayString()}'"
                : type.TypeParameters.Length > 0 ? "generic"
                : type.IsFileLocal ? "file-local"
                : null;
            if (shape is not null)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.UnsupportedClassShape, classLocation, className, shape));
            }

            // MCIR001: partial.
            if (!declaration.Modifiers.Any(SyntaxKind.PartialKeyword))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NotPartial, classLocation, className));
            }

            // MCIR010: instantiable.
            if (type.IsAbstract || type.IsStatic)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.AbstractClass, classLocation, className));
            }

            // MCIR002: Module<Tensor, Tensor>.
            var baseProblem = CheckBaseType(type, compilation);
            if (baseProblem is not null)
            {
                var baseLocation = LocationInfo.From(declaration.BaseList?.Types.FirstOrDefault()) ?? classLocation;
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.WrongBaseType, baseLocation, className, baseProblem));
            }

            token.ThrowIfCancellationRequested();

            // MCIR003: one public constructor taking one options parameter; then MCIR006 and MCIR008 on that type.
            INamedTypeSymbol? optionsType = null;
            var publicConstructors = type.InstanceConstructors
                .Where(static c => c.DeclaredAccessibility == Accessibility.Public)
                .ToArray();
            if (publicConstructors.Length != 1)
            {
                var problem = publicConstructors.Length == 0 ? "it has no public constructor" : $"it has {publicConstructors.Length} public constructors";
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NoOptionsConstructor, classLocation, className, problem));
            }
            else
            {
                var constructor = publicConstructors[0];
                var constructorLocation = constructor.IsImplicitlyDeclared
                    ? classLocation
                    : LocationInfo.From(constructor.Locations.FirstOrDefault()) ?? classLocation;
                if (constructor.Parameters.Length != 1)
                {
                    var problem = constructor.IsImplicitlyDeclared
                        ? "it only has the implicit parameterless constructor"
                        : $"its constructor takes {constructor.Parameters.Length} parameters";
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NoOptionsConstructor, constructorLocation, className, problem));
                }
                else
                {
                    var parameter = constructor.Parameters[0];
                    var parameterLocation = LocationInfo.From(parameter.Locations.FirstOrDefault()) ?? constructorLocation;
                    if (parameter.RefKind != RefKind.None
                        || parameter.IsParams
                        || parameter.Type is not INamedTypeSymbol { TypeKind: TypeKind.Class or TypeKind.Struct, SpecialType: SpecialType.None } named)
                    {
                        var problem = $"parameter '{parameter.Name}' of type '{parameter.Type.ToDisplayString()}' is not an options class, record or struct passed by value";
                        diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NoOptionsConstructor, parameterLocation, className, problem));
                    }
                    else
                    {
                        optionsType = named;
                        var typeLocation = LocationInfo.From(
                            (parameter.DeclaringSyntaxReferences.FirstOrDefault()?.GetSyntax(token) as ParameterSyntax)?.Type) ?? parameterLocation;
                        var defaultsProblem = CheckDefaults(named, type, compilation);
                        if (defaultsProblem is not null)
                        {
                            diagnostics.Add(DiagnosticInfo.Create(
                                DiagnosticDescriptors.OptionsWithoutDefaults, typeLocation, named.ToDisplayString(), className, defaultsProblem));
                        }

                        var (optionsProblem, optionsLocation) = CheckOptionsProperty(type, parameter, compilation);
                        if (optionsProblem is not null)
                        {
                            diagnostics.Add(DiagnosticInfo.Create(
                                DiagnosticDescriptors.MissingOptionsProperty,
                                optionsLocation ?? classLocation,
                                type.Name,
                                named.ToDisplayString(),
                                optionsProblem));
                        }
                    }
                }
            }

            token.ThrowIfCancellationRequested();

            var isValid = diagnostics.Count == 0;
            var entry = new ModelEntry(name, className, fullyQualifiedName, nameLocation, isValid);
            ModelInfo? model = null;
            if (isValid && name is not null && optionsType is not null)
            {
                model = new ModelInfo(
                    HintName: type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat.WithGlobalNamespaceStyle(SymbolDisplayGlobalNamespaceStyle.Omitted)),
                    Namespace: type.ContainingNamespace.IsGlobalNamespace ? null : type.ContainingNamespace.ToDisplayString(),
                    ClassName: type.Name,
                    FullyQualifiedName: fullyQualifiedName,
                    OptionsFullyQualifiedName: optionsType.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat),
                    Name: name,
                    Tasks: tasks.ToImmutable().ToEquatableArray(),
                    Description: description,
                    HidesBaseMembers: HidesBaseMembers(type),
                    TileSafe: tileSafe,
                    TileSafetyNote: tileSafetyNote);
            }

            return new ModelResult(model, entry, diagnostics.ToImmutable().ToEquatableArray());
        }

        /// <summary>MCIR004: every class whose name is also used by another class of the assembly.</summary>
        public static EquatableArray<DiagnosticInfo> FindDuplicateNames(EquatableArray<ModelEntry> entries, CancellationToken token)
        {
            var diagnostics = new List<DiagnosticInfo>();
            foreach (var group in DuplicateGroups(entries))
            {
                token.ThrowIfCancellationRequested();
                var classes = string.Join(", ", group.Select(static e => $"'{e.ClassName}'").OrderBy(static c => c, System.StringComparer.Ordinal));
                foreach (var entry in group)
                {
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.DuplicateName, entry.NameLocation, entry.Name!, classes));
                }
            }

            return diagnostics.ToEquatableArray();
        }

        /// <summary>The registrar: valid models with a unique name, ordered by name.</summary>
        public static RegistrarInfo GetRegistrar(EquatableArray<ModelEntry> entries, CancellationToken token)
        {
            var duplicates = new HashSet<string>(DuplicateGroups(entries).Select(static g => g.Key), System.StringComparer.Ordinal);
            token.ThrowIfCancellationRequested();
            var models = entries
                .Where(e => e.IsValid && e.Name is not null && !duplicates.Contains(e.Name))
                .Select(static e => new RegistrarEntry(e.Name!, e.FullyQualifiedName))
                .OrderBy(static e => e.Name, System.StringComparer.Ordinal)
                .ThenBy(static e => e.FullyQualifiedName, System.StringComparer.Ordinal);
            return new RegistrarInfo(models.ToEquatableArray());
        }

        private static IEnumerable<IGrouping<string, ModelEntry>> DuplicateGroups(EquatableArray<ModelEntry> entries) =>
            entries
                .Where(static e => e.Name is not null)
                .GroupBy(static e => e.Name!, System.StringComparer.Ordinal)
                .Where(static g => g.Count() > 1)
                .OrderBy(static g => g.Key, System.StringComparer.Ordinal);

        private static string? CheckBaseType(INamedTypeSymbol type, Compilation compilation)
        {
            var module = compilation.GetTypeByMetadataName(ModuleMetadataName);
            var tensor = compilation.GetTypeByMetadataName(TensorMetadataName);
            if (module is null || tensor is null)
            {
                return " (TorchSharp is not referenced)";
            }

            INamedTypeSymbol? otherModule = null;
            for (var current = type.BaseType; current is not null; current = current.BaseType)
            {
                if (SymbolEqualityComparer.Default.Equals(current.OriginalDefinition, module))
                {
                    if (current.TypeArguments.All(a => SymbolEqualityComparer.Default.Equals(a, tensor)))
                    {
                        return null;
                    }

                    otherModule ??= current;
                }
            }

            return otherModule is not null
                ? $" (it derives from '{otherModule.ToDisplayString()}')"
                : type.BaseType is { SpecialType: not SpecialType.System_Object } baseType
                    ? $" (it derives from '{baseType.ToDisplayString()}')"
                    : "";
        }

        private static string? CheckDefaults(INamedTypeSymbol options, INamedTypeSymbol model, Compilation compilation)
        {
            if (options.TypeKind == TypeKind.Struct)
            {
                return null;
            }

            if (options.IsAbstract || options.IsStatic)
            {
                return "it is abstract";
            }

            var constructors = options.InstanceConstructors
                .Where(c => compilation.IsSymbolAccessibleWithin(c, model.ContainingAssembly))
                .ToArray();
            if (constructors.Length == 0)
            {
                return "it has no accessible constructor";
            }

            return constructors.Any(static c => c.Parameters.All(static p => p.IsOptional || p.IsParams))
                ? null
                : "every accessible constructor needs arguments";
        }

        private static (string? Problem, LocationInfo? Location) CheckOptionsProperty(
            INamedTypeSymbol type, IParameterSymbol parameter, Compilation compilation)
        {
            ISymbol? member = null;
            for (var current = type; current is not null && member is null; current = current.BaseType)
            {
                member = current.GetMembers(OptionsPropertyName).FirstOrDefault(static m => m is IPropertySymbol { IsIndexer: false })
                    ?? current.GetMembers(OptionsPropertyName).FirstOrDefault();
            }

            if (member is null)
            {
                return ("it declares no member 'Options'", null);
            }

            var location = SymbolEqualityComparer.Default.Equals(member.ContainingType, type)
                ? LocationInfo.From(member.Locations.FirstOrDefault())
                : null;
            if (member is not IPropertySymbol property)
            {
                return ($"'Options' is a {KindName(member)}, not a property", location);
            }

            if (property.IsStatic)
            {
                return ("'Options' is static", location);
            }

            if (property.GetMethod is null || !compilation.IsSymbolAccessibleWithin(property.GetMethod, type))
            {
                return ("'Options' has no getter accessible to the class", location);
            }

            if (!SymbolEqualityComparer.Default.Equals(property.Type, parameter.Type))
            {
                return ($"'Options' has type '{property.Type.ToDisplayString()}'", location);
            }

            if (property.Type.IsReferenceType
                && property.NullableAnnotation == NullableAnnotation.Annotated
                && parameter.NullableAnnotation != NullableAnnotation.Annotated)
            {
                return ("'Options' is declared nullable but the constructor parameter is not", location);
            }

            return (null, null);
        }

        private static bool HidesBaseMembers(INamedTypeSymbol type)
        {
            for (var current = type.BaseType; current is not null; current = current.BaseType)
            {
                if (!current.GetMembers("Descriptor").IsEmpty || !current.GetMembers("CloneArchitecture").IsEmpty)
                {
                    return true;
                }
            }

            return false;
        }

        private static string KindName(ISymbol symbol) => symbol switch
        {
            IFieldSymbol => "field",
            IMethodSymbol => "method",
            IEventSymbol => "event",
            INamedTypeSymbol => "nested type",
            _ => symbol.Kind.ToString().ToLowerInvariant(),
        };

        private static TypedConstant? NamedValue(AttributeData attribute, string name)
        {
            foreach (var pair in attribute.NamedArguments)
            {
                if (pair.Key == name)
                {
                    return pair.Value;
                }
            }

            return null;
        }

        private static AttributeArgumentSyntax? NamedArgument(AttributeSyntax? attribute, string name) =>
            attribute?.ArgumentList?.Arguments.FirstOrDefault(a => a.NameEquals?.Name.Identifier.ValueText == name);

        private static string Quote(string? value) => value is null ? "(null)" : SymbolDisplay.FormatLiteral(value, quote: true);
    }
}
