namespace Mcir.Abstractions.Models;

/// <summary>
/// Assembly-level marker that names the plugin's registrar, so the host finds it without scanning types. The
/// <c>Mcir.Generators</c> source generator emits it (with <see cref="ContractMajor"/> set to the
/// <see cref="ContractVersion.Major"/> the plugin was compiled against) in every assembly that has
/// <see cref="McirModelAttribute"/> models; hand-written plugins may apply it themselves.
/// </summary>
[AttributeUsage(AttributeTargets.Assembly, AllowMultiple = false, Inherited = false)]
public sealed class McirPluginAttribute : Attribute
{
    /// <summary>Names the registrar type of this plugin assembly.</summary>
    /// <param name="registrarType">
    /// A non-abstract class implementing <see cref="IMcirPluginRegistrar"/> with a public parameterless constructor.
    /// </param>
    public McirPluginAttribute(Type registrarType)
    {
        RegistrarType = registrarType;
    }

    /// <summary>The class that implements <see cref="IMcirPluginRegistrar"/> for this assembly.</summary>
    public Type RegistrarType { get; }

    /// <summary>
    /// The <see cref="ContractVersion.Major"/> the plugin was built against; the host refuses a plugin whose value
    /// differs from its own. 0 means "not stated".
    /// </summary>
    public int ContractMajor { get; set; }
}
