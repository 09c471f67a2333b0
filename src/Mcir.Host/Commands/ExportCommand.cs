using System.CommandLine;
using Mcir.Abstractions.Models;
using Mcir.Core.Inference;
using Microsoft.Extensions.DependencyInjection;

namespace Mcir.Host.Commands;

/// <summary>
/// <c>mcir-host export</c>: loads trained weights as <c>restore</c>/<c>test</c> do and writes the network's state dict for
/// the Python world (<c>.pth</c> in BasicSR's <c>{"params": …}</c> layout, or <c>.safetensors</c>).
/// </summary>
internal static class ExportCommand
{
    public static Command Create(HostConsole console)
    {
        var model = new InferenceOptions();
        var output = new Option<string>("--output")
        {
            Description = "File to write: .pth (torch.load-able, BasicSR {\"params\": state_dict}) or .safetensors (bare state dict); must not be the weights file",
            Required = true,
        };
        // For export, --param-key names the wrapper key written (the weights read are chosen with --ema).
        var paramKey = new Option<string?>("--param-key") { Description = "Wrapper key of the written .pth: params (default) or params_ema" };
        var plugins = new PluginOptions();
        var command = new Command("export", "Write trained weights as a PyTorch state dict: BasicSR .pth ({\"params\": …}) or .safetensors") { output, paramKey };
        foreach (var o in new Option[] { model.Weights, model.Model, model.Scale, model.Set, model.Ema, model.Strict, model.Device })
            command.Options.Add(o);
        plugins.AddTo(command);
        command.SetAction(r =>
        {
            string target = r.GetValue(output)!;
            string? key = r.GetValue(paramKey);
            StateDictExport.Validate(target, key); // before the (slow) load
            var request = model.Request(r) with { ParamKey = null };
            var device = model.ResolveDevice(r);

            using var services = new ServiceCollection().AddMcirPlugins(plugins.Load(r)).BuildServiceProvider();
            using var net = ModelWeights.Open(services.GetRequiredService<IModelRegistry>(), request);
            foreach (var note in net.Notes) console.Error.WriteLine(note);
            // Weights are written through the CPU whatever the device; --device only decides where they are loaded.
            net.MoveTo(device);

            var written = StateDictExport.Write(net, target, key);
            string layout = written.ParamKey is { } k ? $"under '{k}'" : "bare state dict";
            console.Out.WriteLine($"wrote {written.Path}: {written.TensorCount} tensors of {net.Descriptor.Name} ({layout})");
            console.Out.WriteLine($"weights: {net.Weights.Description}");
            return 0;
        });
        return command;
    }
}
