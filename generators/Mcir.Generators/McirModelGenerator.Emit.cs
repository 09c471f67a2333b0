using System.Linq;
using System.Threading;
using Mcir.Generators.Helpers;
using Mcir.Generators.Models;
using Microsoft.CodeAnalysis.CSharp;

namespace Mcir.Generators;

public sealed partial class McirModelGenerator
{
    internal static partial class Execute
    {
        private const string ModuleType = "global::TorchSharp.torch.nn.Module<global::TorchSharp.torch.Tensor, global::TorchSharp.torch.Tensor>";
        private const string DescriptorType = "global::Mcir.Abstractions.Models.ModelDescriptor";

        private static readonly string GeneratedCodeAttribute =
            $"[global::System.CodeDom.Compiler.GeneratedCode(\"Mcir.Generators\", \"{typeof(McirModelGenerator).Assembly.GetName().Version}\")]";

        /// <summary>The partial class of one model: its <c>Descriptor</c> and <c>CloneArchitecture()</c>.</summary>
        public static string EmitModel(ModelInfo model, CancellationToken token)
        {
            var writer = new IndentedWriter();
            WriteHeader(writer);
            var modifier = model.HidesBaseMembers ? "new " : "";

            if (model.Namespace is not null)
            {
                writer.Line($"namespace {model.Namespace}");
            }

            using (model.Namespace is not null ? writer.Block() : null)
            {
                writer.Line($"partial class {model.ClassName} : global::Mcir.Abstractions.Models.IArchitectureCloneable");
                using (writer.Block())
                {
                    writer.Line($"/// <summary>Describes the <c>{Xml(model.Name)}</c> model: name, tasks, options type, default options and factory.</summary>");
                    writer.Line(GeneratedCodeAttribute);
                    writer.Line($"public static {modifier}{DescriptorType} Descriptor {{ get; }} =");
                    using (writer.Indent())
                    {
                        writer.Line($"{DescriptorType}.Of<{model.FullyQualifiedName}, {model.OptionsFullyQualifiedName}>(");
                        using (writer.Indent())
                        {
                            writer.Line($"name: {Literal(model.Name)},");
                            writer.Line($"tasks: {TasksExpression(model.Tasks)},");
                            writer.Line($"description: {Literal(model.Description)},");
                            writer.Line($"defaultOptions: new {model.OptionsFullyQualifiedName}(),");
                            if (model.TileSafe && model.TileSafetyNote.Length == 0)
                            {
                                writer.Line($"factory: static options => new {model.FullyQualifiedName}(options));");
                            }
                            else
                            {
                                writer.Line($"factory: static options => new {model.FullyQualifiedName}(options))");
                                writer.Line($"with {{ TileSafe = {(model.TileSafe ? "true" : "false")}, TileSafetyNote = {Literal(model.TileSafetyNote)} }};");
                            }
                        }
                    }

                    token.ThrowIfCancellationRequested();
                    writer.Line();
                    writer.Line($"/// <summary>A new, randomly initialised <see cref=\"{model.FullyQualifiedName}\"/> built from <see cref=\"Options\"/>.</summary>");
                    writer.Line(GeneratedCodeAttribute);
                    writer.Line($"public {modifier}{ModuleType} CloneArchitecture()");
                    using (writer.Indent())
                    {
                        writer.Line($"=> new {model.FullyQualifiedName}(this.Options);");
                    }
                }
            }

            return writer.ToString();
        }

        /// <summary>The assembly's registrar and the <c>[assembly: McirPlugin]</c> marker.</summary>
        public static string EmitRegistrar(RegistrarInfo registrar, CancellationToken token)
        {
            var writer = new IndentedWriter();
            WriteHeader(writer);
            writer.Line("[assembly: global::Mcir.Abstractions.Models.McirPlugin(");
            using (writer.Indent())
            {
                writer.Line("typeof(global::McirGenerated.PluginRegistrar),");
                writer.Line("ContractMajor = global::Mcir.Abstractions.ContractVersion.Major)]");
            }

            writer.Line();
            writer.Line("namespace McirGenerated");
            using (writer.Block())
            {
                var names = string.Join(", ", registrar.Models.Select(static m => Xml(m.Name)));
                writer.Line($"/// <summary>Registers the Mcir models of this assembly: {names}.</summary>");
                writer.Line("/// <remarks>");
                writer.Line("/// To register more services (data sets, loss terms, ...), implement the partial method");
                writer.Line("/// <c>partial void RegisterServices(IServiceCollection services)</c> in a <c>partial class PluginRegistrar</c>.");
                writer.Line("/// </remarks>");
                writer.Line(GeneratedCodeAttribute);
                writer.Line("internal sealed partial class PluginRegistrar : global::Mcir.Abstractions.Models.IMcirPluginRegistrar");
                using (writer.Block())
                {
                    writer.Line("/// <inheritdoc />");
                    writer.Line("public void Register(global::Microsoft.Extensions.DependencyInjection.IServiceCollection services)");
                    using (writer.Block())
                    {
                        foreach (var model in registrar.Models)
                        {
                            token.ThrowIfCancellationRequested();
                            writer.Line($"global::Microsoft.Extensions.DependencyInjection.McirModelServiceCollectionExtensions.AddMcirModel(services, {model.FullyQualifiedName}.Descriptor);");
                        }

                        writer.Line("RegisterServices(services);");
                    }

                    writer.Line();
                    writer.Line("/// <summary>Hook for the plugin's own registrations, called after the models are registered.</summary>");
                    writer.Line("partial void RegisterServices(global::Microsoft.Extensions.DependencyInjection.IServiceCollection services);");
                }
            }

            return writer.ToString();
        }

        private static void WriteHeader(IndentedWriter writer)
        {
            writer.Line("// <auto-generated/>");
            writer.Line("// Generated by Mcir.Generators from [McirModel] classes. Do not edit.");
            writer.Line("#nullable enable");
            writer.Line();
        }

        private static string TasksExpression(EquatableArray<string> tasks) =>
            tasks.IsEmpty
                ? "global::System.Array.Empty<string>()"
                : $"new string[] {{ {string.Join(", ", tasks.Select(Literal))} }}";

        private static string Literal(string value) => SymbolDisplay.FormatLiteral(value, quote: true);

        private static string Xml(string value) =>
            value.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;");
    }
}
