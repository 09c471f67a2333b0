using Microsoft.CodeAnalysis;

namespace Mcir.Generators.Diagnostics;

/// <summary>The diagnostics of the <c>[McirModel]</c> generator (all errors: a misused model never builds).</summary>
internal static class DiagnosticDescriptors
{
    private const string Category = "Mcir.Generators";

    /// <summary>MCIR001: the annotated class is not partial.</summary>
    public static readonly DiagnosticDescriptor NotPartial = new(
        id: "MCIR001",
        title: "Model class must be partial",
        messageFormat: "Model class '{0}' must be declared 'partial' so the generator can add its Descriptor and CloneArchitecture()",
        category: Category,
        defaultSeverity: DiagnosticSeverity.Error,
        isEnabledByDefault: true);

    /// <summary>MCIR002: the annotated class does not derive from Module&lt;Tensor, Tensor&gt;.</summary>
    public static readonly DiagnosticDescriptor WrongBaseType = new(
        id: "MCIR002",
        title: "Model class must derive from Module<Tensor, Tensor>",
        messageFormat: "Model class '{0}' must derive from TorchSharp.torch.nn.Module<Tensor, Tensor>{1}",
        category: Category,
        defaultSeverity: DiagnosticSeverity.Error,
        isEnabledByDefault: true);

    /// <summary>MCIR003: not exactly one public constructor taking one options parameter.</summary>
    public static readonly DiagnosticDescriptor NoOptionsConstructor = new(
        id: "MCIR003",
        title: "Model class needs exactly one public constructor taking one options parameter",
        messageFormat: "Model class '{0}' must have exactly one public constructor, taking a single options parameter (a class, record or struct): {1}",
        category: Category,
        defaultSeverity: DiagnosticSeverity.Error,
        isEnabledByDefault: true);

    /// <summary>MCIR004: two models of the assembly share a name.</summary>
    public static readonly DiagnosticDescriptor DuplicateName = new(
        id: "MCIR004",
        title: "Duplicate model name",
        messageFormat: "Model name '{0}' is used by more than one class in this assembly: {1}",
        category: Category,
        defaultSeverity: DiagnosticSeverity.Error,
        isEnabledByDefault: true);

    /// <summary>MCIR005: the model name is empty or not lower kebab case.</summary>
    public static readonly DiagnosticDescriptor InvalidName = new(
        id: "MCIR005",
        title: "Invalid model name",
        messageFormat: "Model name {0} of class '{1}' is invalid: use lower kebab case, a lowercase letter followed by lowercase letters, digits and single hyphens (for example \"edsr\" or \"rcan-light\")",
        category: Category,
        defaultSeverity: DiagnosticSeverity.Error,
        isEnabledByDefault: true);

    /// <summary>MCIR006: the options type cannot be built without arguments.</summary>
    public static readonly DiagnosticDescriptor OptionsWithoutDefaults = new(
        id: "MCIR006",
        title: "Options type has no defaults",
        messageFormat: "Options type '{0}' of model class '{1}' has no defaults: {2}; give it a public parameterless constructor, or default values for every positional parameter",
        category: Category,
        defaultSeverity: DiagnosticSeverity.Error,
        isEnabledByDefault: true);

    /// <summary>MCIR007: nested, generic or file-local class.</summary>
    public static readonly DiagnosticDescriptor UnsupportedClassShape = new(
        id: "MCIR007",
        title: "Nested, generic or file-local model classes are not supported",
        messageFormat: "Model class '{0}' is {1}: [McirModel] supports only top-level, non-generic classes",
        category: Category,
        defaultSeverity: DiagnosticSeverity.Error,
        isEnabledByDefault: true);

    /// <summary>MCIR008: no readable Options property of the options type (needed by CloneArchitecture).</summary>
    public static readonly DiagnosticDescriptor MissingOptionsProperty = new(
        id: "MCIR008",
        title: "Model class must expose its options as an 'Options' property",
        messageFormat: "Model class '{0}' must expose the options it was built with as a readable instance property 'public {1} Options {{ get; }}', assigned in the constructor (the generated CloneArchitecture() calls 'new {0}(this.Options)'): {2}",
        category: Category,
        defaultSeverity: DiagnosticSeverity.Error,
        isEnabledByDefault: true);

    /// <summary>MCIR009: an entry of Tasks is empty or not lower kebab case.</summary>
    public static readonly DiagnosticDescriptor InvalidTask = new(
        id: "MCIR009",
        title: "Invalid task name",
        messageFormat: "Task {0} of model class '{1}' is invalid: use lower kebab case (for example \"sr\", \"denoise\" or \"jpeg-car\")",
        category: Category,
        defaultSeverity: DiagnosticSeverity.Error,
        isEnabledByDefault: true);

    /// <summary>MCIR010: abstract (or static) model class.</summary>
    public static readonly DiagnosticDescriptor AbstractClass = new(
        id: "MCIR010",
        title: "Model class must be instantiable",
        messageFormat: "Model class '{0}' is abstract: the descriptor and CloneArchitecture() must be able to construct it",
        category: Category,
        defaultSeverity: DiagnosticSeverity.Error,
        isEnabledByDefault: true);
}
