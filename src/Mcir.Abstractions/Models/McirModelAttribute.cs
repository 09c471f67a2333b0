namespace Mcir.Abstractions.Models;

/// <summary>
/// Marks a network class as an Mcir model. The <c>Mcir.Generators</c> source generator turns every annotated class
/// into a registered architecture: it emits a static <c>Descriptor</c> property (a <see cref="ModelDescriptor"/>),
/// implements <see cref="IArchitectureCloneable"/> and registers the descriptor through the assembly's generated
/// <see cref="IMcirPluginRegistrar"/>.
/// </summary>
/// <remarks>
/// <para>The annotated class must follow these rules; each violation is a compile-time error with an id:</para>
/// <list type="bullet">
/// <item><description><b>MCIR001</b> — it is <c>partial</c>.</description></item>
/// <item><description><b>MCIR002</b> — it derives (directly or not) from
/// <c>TorchSharp.torch.nn.Module&lt;Tensor, Tensor&gt;</c>.</description></item>
/// <item><description><b>MCIR003</b> — it has exactly one public constructor, and that constructor takes exactly one
/// parameter: the options (a class, record or struct).</description></item>
/// <item><description><b>MCIR004</b> — its name is unique among the models of the assembly.</description></item>
/// <item><description><b>MCIR005</b> — its name is lower kebab case: <c>^[a-z][a-z0-9]*(-[a-z0-9]+)*$</c>, e.g.
/// <c>"edsr"</c>, <c>"rcan-light"</c>.</description></item>
/// <item><description><b>MCIR006</b> — the options type has defaults: it is a struct, or a non-abstract class with a
/// constructor (public or internal) callable without arguments (a parameterless constructor, or a positional record whose parameters all have default
/// values). <c>new TOptions()</c> is the model's default configuration.</description></item>
/// <item><description><b>MCIR007</b> — it is a top-level, non-generic class (not nested in another type, no type
/// parameters, not <c>file</c>-local).</description></item>
/// <item><description><b>MCIR008</b> — <b>options access rule:</b> it declares (or inherits) a readable instance
/// property named <c>Options</c> whose type is exactly the constructor's options type, and the constructor stores
/// its argument there (typically <c>public EdsrOptions Options { get; }</c> assigned first thing in the constructor).
/// The generated <c>CloneArchitecture()</c> is <c>new TModel(this.Options)</c>.</description></item>
/// <item><description><b>MCIR009</b> — every entry of <see cref="Tasks"/> is lower kebab case too.</description></item>
/// <item><description><b>MCIR010</b> — it is not abstract (the descriptor and <c>CloneArchitecture()</c> construct
/// it).</description></item>
/// </list>
/// <example>
/// <code>
/// public sealed record EdsrOptions(int Features = 64, int Blocks = 16, int Scale = 4);
///
/// [McirModel("edsr", Tasks = new[] { "sr" }, Description = "EDSR (Lim et al., 2017)")]
/// public sealed partial class Edsr : nn.Module&lt;Tensor, Tensor&gt;
/// {
///     public Edsr(EdsrOptions options) : base("edsr")
///     {
///         Options = options;
///         // ... build submodules, then RegisterComponents();
///     }
///
///     public EdsrOptions Options { get; }
///
///     public override Tensor forward(Tensor input) =&gt; ...;
/// }
/// </code>
/// </example>
/// </remarks>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false, Inherited = false)]
public sealed class McirModelAttribute : Attribute
{
    /// <summary>Marks a class as the model registered under <paramref name="name"/>.</summary>
    /// <param name="name">The name configurations use, lower kebab case (e.g. <c>"edsr"</c>).</param>
    public McirModelAttribute(string name)
    {
        Name = name;
    }

    /// <summary>The registered name, unique across loaded plugins (lower kebab case).</summary>
    public string Name { get; }

    /// <summary>The tasks the model is meant for, e.g. <c>"sr"</c>, <c>"denoise"</c>, <c>"derain"</c>.</summary>
    public string[] Tasks { get; set; } = [];

    /// <summary>A one-line, human-readable description (shown by <c>mcir-host list</c>).</summary>
    public string Description { get; set; } = "";

    /// <summary>
    /// False for a network whose output at a pixel depends on statistics of the whole input (global average pooling,
    /// channel attention, normalisation over the image, …): restored tile by tile, each tile sees other statistics, so the
    /// result differs from the whole-image one everywhere, not only where tiles are blended. Default true: the output
    /// depends on a bounded neighbourhood of the input (a receptive field), so tiles agree with the whole image away from
    /// the blend bands. Copied to <see cref="ModelDescriptor.TileSafe"/> (and to the model's presets).
    /// </summary>
    public bool TileSafe { get; set; } = true;

    /// <summary>
    /// Why the model is not tile-safe, for the warning <c>--tile</c> prints (e.g. <c>"global average pooling in every
    /// block's channel attention"</c>); empty for a tile-safe model. Copied to <see cref="ModelDescriptor.TileSafetyNote"/>.
    /// </summary>
    public string TileSafetyNote { get; set; } = "";
}
