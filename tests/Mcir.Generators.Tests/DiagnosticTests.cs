using Mcir.Generators.Diagnostics;
using Microsoft.CodeAnalysis.Testing;

namespace Mcir.Generators.Tests;

/// <summary>One test per diagnostic: id, location (markup <c>{|#0:...|}</c>) and message arguments.</summary>
public sealed class DiagnosticTests
{
    private const string Attribute = """[McirModel("m")]""";

    [Fact]
    public Task MCIR001_class_not_partial() =>
        VerifyAsync(
            Sources.Model(Attribute, "public sealed class {|#0:M|} : nn.Module<Tensor, Tensor>"),
            Expect(DiagnosticDescriptors.NotPartial, "Demo.M"));

    [Fact]
    public Task MCIR002_wrong_module_signature() =>
        VerifyAsync(
            Sources.Model(
                Attribute,
                "public sealed partial class M : {|#0:nn.Module<Tensor, (Tensor, Tensor)>|}",
                """
                    public M(Opts options) : base("m") { Options = options; }
                    public Opts Options { get; }
                    public override (Tensor, Tensor) forward(Tensor input) => (input, input);
                """),
            Expect(DiagnosticDescriptors.WrongBaseType, "Demo.M", " (it derives from 'TorchSharp.torch.nn.Module<TorchSharp.torch.Tensor, (TorchSharp.torch.Tensor, TorchSharp.torch.Tensor)>')"));

    [Fact]
    public Task MCIR002_not_a_module() =>
        VerifyAsync(
            Sources.Model(
                Attribute,
                "public sealed partial class {|#0:M|}",
                """
                    public M(Opts options) { Options = options; }
                    public Opts Options { get; }
                """),
            Expect(DiagnosticDescriptors.WrongBaseType, "Demo.M", ""));

    [Fact]
    public Task MCIR003_two_public_constructors() =>
        VerifyAsync(
            Sources.Model(
                Attribute,
                "public sealed partial class {|#0:M|} : nn.Module<Tensor, Tensor>",
                """
                    public M(Opts options) : base("m") { Options = options; }
                    public M() : this(new Opts()) { }
                    public Opts Options { get; }
                    public override Tensor forward(Tensor input) => input;
                """),
            Expect(DiagnosticDescriptors.NoOptionsConstructor, "Demo.M", "it has 2 public constructors"));

    [Fact]
    public Task MCIR003_constructor_with_two_parameters() =>
        VerifyAsync(
            Sources.Model(
                Attribute,
                "public sealed partial class M : nn.Module<Tensor, Tensor>",
                """
                    public {|#0:M|}(Opts options, int scale) : base("m") { Options = options; }
                    public Opts Options { get; }
                    public override Tensor forward(Tensor input) => input;
                """),
            Expect(DiagnosticDescriptors.NoOptionsConstructor, "Demo.M", "its constructor takes 2 parameters"));

    [Fact]
    public Task MCIR003_parameter_is_not_an_options_type() =>
        VerifyAsync(
            Sources.Model(
                Attribute,
                "public sealed partial class M : nn.Module<Tensor, Tensor>",
                """
                    public M(int {|#0:features|}) : base("m") { }
                    public Opts Options { get; } = new();
                    public override Tensor forward(Tensor input) => input;
                """),
            Expect(
                DiagnosticDescriptors.NoOptionsConstructor,
                "Demo.M",
                "parameter 'features' of type 'int' is not an options class, record or struct passed by value"));

    [Fact]
    public Task MCIR004_duplicate_name_is_reported_on_each_class() =>
        VerifyAsync(
            Sources.Usings + """
                namespace Demo;

                public sealed record Opts(int Features = 8);

                [McirModel({|#0:"same"|})]
                public sealed partial class A : nn.Module<Tensor, Tensor>
                {
                    public A(Opts options) : base("a") { Options = options; }
                    public Opts Options { get; }
                    public override Tensor forward(Tensor input) => input;
                }

                [McirModel({|#1:"same"|})]
                public sealed partial class B : nn.Module<Tensor, Tensor>
                {
                    public B(Opts options) : base("b") { Options = options; }
                    public Opts Options { get; }
                    public override Tensor forward(Tensor input) => input;
                }
                """,
            skipGeneratedSources: true,
            Expect(DiagnosticDescriptors.DuplicateName, 0, "same", "'Demo.A', 'Demo.B'"),
            Expect(DiagnosticDescriptors.DuplicateName, 1, "same", "'Demo.A', 'Demo.B'"));

    [Theory]
    [InlineData("\"Bad_Name\"", "\"Bad_Name\"")]
    [InlineData("\"Edsr\"", "\"Edsr\"")]
    [InlineData("\"\"", "\"\"")]
    [InlineData("\"  \"", "\"  \"")]
    [InlineData("\"rcan--light\"", "\"rcan--light\"")]
    [InlineData("\"2x-net\"", "\"2x-net\"")]
    [InlineData("null", "(null)")]
    public Task MCIR005_invalid_name(string argument, string shown) =>
        VerifyAsync(
            Sources.Model($"[McirModel({{|#0:{argument}|}})]", "public sealed partial class M : nn.Module<Tensor, Tensor>"),
            Expect(DiagnosticDescriptors.InvalidName, shown, "Demo.M"));

    [Fact]
    public Task MCIR006_options_without_defaults() =>
        VerifyAsync(
            Sources.Usings + """
                namespace Demo;

                public sealed class Opts
                {
                    public Opts(int features) { Features = features; }
                    public int Features { get; }
                }

                [McirModel("m")]
                public sealed partial class M : nn.Module<Tensor, Tensor>
                {
                    public M({|#0:Opts|} options) : base("m") { Options = options; }
                    public Opts Options { get; }
                    public override Tensor forward(Tensor input) => input;
                }
                """,
            skipGeneratedSources: false,
            Expect(DiagnosticDescriptors.OptionsWithoutDefaults, "Demo.Opts", "Demo.M", "every accessible constructor needs arguments"));

    [Fact]
    public Task MCIR006_positional_record_with_a_required_parameter() =>
        VerifyAsync(
            Sources.Usings + """
                namespace Demo;

                public sealed record Opts(int Scale, int Features = 8);

                [McirModel("m")]
                public sealed partial class M : nn.Module<Tensor, Tensor>
                {
                    public M({|#0:Opts|} options) : base("m") { Options = options; }
                    public Opts Options { get; }
                    public override Tensor forward(Tensor input) => input;
                }
                """,
            skipGeneratedSources: false,
            Expect(DiagnosticDescriptors.OptionsWithoutDefaults, "Demo.Opts", "Demo.M", "every accessible constructor needs arguments"));

    [Fact]
    public Task MCIR007_nested_class() =>
        VerifyAsync(
            Sources.Usings + """
                namespace Demo;

                public sealed record Opts(int Features = 8);

                public static partial class Outer
                {
                    [McirModel("m")]
                    public sealed partial class {|#0:M|} : nn.Module<Tensor, Tensor>
                    {
                        public M(Opts options) : base("m") { Options = options; }
                        public Opts Options { get; }
                        public override Tensor forward(Tensor input) => input;
                    }
                }
                """,
            skipGeneratedSources: false,
            Expect(DiagnosticDescriptors.UnsupportedClassShape, "Demo.Outer.M", "nested in 'Demo.Outer'"));

    [Fact]
    public Task MCIR007_generic_class() =>
        VerifyAsync(
            Sources.Model(
                Attribute,
                "public sealed partial class {|#0:M|}<T> : nn.Module<Tensor, Tensor>"),
            Expect(DiagnosticDescriptors.UnsupportedClassShape, "Demo.M<T>", "generic"));

    [Fact]
    public Task MCIR008_no_options_property() =>
        VerifyAsync(
            Sources.Model(
                Attribute,
                "public sealed partial class {|#0:M|} : nn.Module<Tensor, Tensor>",
                """
                    private readonly int features;
                    public M(Opts options) : base("m") { features = options.Features; }
                    public override Tensor forward(Tensor input) => input;
                """),
            Expect(DiagnosticDescriptors.MissingOptionsProperty, "M", "Demo.Opts", "it declares no member 'Options'"));

    [Fact]
    public Task MCIR008_options_property_of_another_type() =>
        VerifyAsync(
            Sources.Model(
                Attribute,
                "public sealed partial class M : nn.Module<Tensor, Tensor>",
                """
                    public M(Opts options) : base("m") { Options = options; }
                    public object {|#0:Options|} { get; }
                    public override Tensor forward(Tensor input) => input;
                """),
            Expect(DiagnosticDescriptors.MissingOptionsProperty, "M", "Demo.Opts", "'Options' has type 'object'"));

    [Fact]
    public Task MCIR008_options_field_is_not_enough() =>
        VerifyAsync(
            Sources.Model(
                Attribute,
                "public sealed partial class M : nn.Module<Tensor, Tensor>",
                """
                    public readonly Opts {|#0:Options|};
                    public M(Opts options) : base("m") { Options = options; }
                    public override Tensor forward(Tensor input) => input;
                """),
            Expect(DiagnosticDescriptors.MissingOptionsProperty, "M", "Demo.Opts", "'Options' is a field, not a property"));

    [Fact]
    public Task MCIR009_invalid_task() =>
        VerifyAsync(
            Sources.Model(
                """[McirModel("m", Tasks = {|#0:new[] { "sr", "Super Resolution" }|})]""",
                "public sealed partial class M : nn.Module<Tensor, Tensor>"),
            Expect(DiagnosticDescriptors.InvalidTask, "\"Super Resolution\"", "Demo.M"));

    [Fact]
    public Task MCIR010_abstract_class() =>
        VerifyAsync(
            Sources.Model(Attribute, "public abstract partial class {|#0:M|} : nn.Module<Tensor, Tensor>"),
            Expect(DiagnosticDescriptors.AbstractClass, "Demo.M"));

    [Fact]
    public Task Several_problems_are_all_reported() =>
        VerifyAsync(
            Sources.Model(
                """[McirModel({|#0:"Bad"|})]""",
                "public sealed class {|#1:M|} : nn.Module<Tensor, Tensor>"),
            Expect(DiagnosticDescriptors.InvalidName, 0, "\"Bad\"", "Demo.M"),
            Expect(DiagnosticDescriptors.NotPartial, 1, "Demo.M"));

    private static DiagnosticResult Expect(Microsoft.CodeAnalysis.DiagnosticDescriptor descriptor, params string[] arguments) =>
        Expect(descriptor, 0, arguments);

    private static DiagnosticResult Expect(Microsoft.CodeAnalysis.DiagnosticDescriptor descriptor, int location, params string[] arguments) =>
        new DiagnosticResult(descriptor).WithLocation(location).WithArguments(arguments);

    private static Task VerifyAsync(string source, params DiagnosticResult[] expected) =>
        VerifyAsync(source, skipGeneratedSources: false, expected);

    /// <summary>An invalid class generates nothing (no partial class, no registrar) unless told otherwise.</summary>
    private static async Task VerifyAsync(string source, bool skipGeneratedSources, params DiagnosticResult[] expected)
    {
        var test = GeneratorVerifier.Create(source);
        test.ExpectedDiagnostics.AddRange(expected);
        if (skipGeneratedSources)
        {
            test.TestBehaviors |= TestBehaviors.SkipGeneratedSourcesCheck;
        }

        await test.RunAsync();
    }
}
