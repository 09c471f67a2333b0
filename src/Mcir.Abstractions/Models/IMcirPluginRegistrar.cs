using Microsoft.Extensions.DependencyInjection;

namespace Mcir.Abstractions.Models;

/// <summary>
/// Registers a plugin's components (models, data sets, loss terms, negative sources, embeddings) with the host's
/// service collection. Named by the assembly's <see cref="McirPluginAttribute"/>; the host creates it with its public
/// parameterless constructor and calls <see cref="Register"/> once.
/// </summary>
public interface IMcirPluginRegistrar
{
    /// <summary>Adds the plugin's components to <paramref name="services"/>.</summary>
    /// <param name="services">The host's service collection.</param>
    void Register(IServiceCollection services);
}
