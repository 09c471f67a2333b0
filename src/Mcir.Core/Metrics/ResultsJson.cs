using System.Text.Json.Nodes;
using Mcir.Core.Config;
using Mcir.Core.IO;

namespace Mcir.Core.Metrics;

/// <summary>
/// The one JSON schema of scores on a test set, shared by a run's <c>results.json</c> (an array of these objects, one
/// per <c>data.test[i]</c>), <c>mcir-host test --json</c> and <c>mcir-host metrics --json</c> (one object each):
/// <code>
/// {
///   "dataset":  "Set5",                               // the test set (folder) name
///   "protocol": { "name", "crop_border", ... },       // ProtocolInfo.ToJson()
///   "model":    { "psnr", "ssim" },                   // mean of the per-image values (metrics: the restored folder)
///   "baseline": { "name", "psnr", "ssim" } | null,    // "bicubic" for SR, "input" otherwise; null in metrics --json
///   "start":    { "psnr", "ssim" } | null,            // a run's path.pretrain_network_g weights; null otherwise
///   "images":   [ { "name", "psnr", "ssim",
///                   "baseline_psnr", "baseline_ssim", // when there is a baseline
///                   "start_psnr", "start_ssim" } ]    // when there is a start
/// }
/// </code>
/// <c>test --json</c> adds its context to the same object: <c>weights</c>, <c>model.name</c>/<c>model.options</c>,
/// <c>scale</c>, <c>lq</c>, <c>tile</c>. JSON has no infinity: a PSNR of identical images is the string <c>"inf"</c>.
/// </summary>
public static class ResultsJson
{
    /// <summary>One test set's scores in the shared schema.</summary>
    /// <param name="dataset">The test set's name.</param>
    /// <param name="model">The scores of the model (or of the restored folder).</param>
    /// <param name="baseline">The baseline's scores on the same images in the same order, or null.</param>
    /// <param name="baselineName">What the baseline is ("bicubic", "input"); required with <paramref name="baseline"/>.</param>
    /// <param name="start">The scores of the weights a run started from, same images and order, or null.</param>
    /// <exception cref="ArgumentException">A baseline or start report whose images differ from the model's.</exception>
    public static JsonObject TestSet(string dataset, MetricsReport model, MetricsReport? baseline = null, string? baselineName = null, MetricsReport? start = null)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        ArgumentNullException.ThrowIfNull(model);
        if (baseline is not null) { ArgumentNullException.ThrowIfNull(baselineName); CheckSameImages(model, baseline, nameof(baseline)); }
        if (start is not null) CheckSameImages(model, start, nameof(start));
        return new JsonObject
        {
            ["dataset"] = dataset,
            ["protocol"] = model.Protocol.ToJson(),
            ["model"] = Mean(model),
            ["baseline"] = baseline is null ? null : new JsonObject { ["name"] = baselineName, ["psnr"] = Number(baseline.MeanPsnr), ["ssim"] = baseline.MeanSsim },
            ["start"] = start is null ? null : Mean(start),
            ["images"] = new JsonArray(model.Images.Select((m, i) =>
            {
                var row = new JsonObject { ["name"] = m.Name, ["psnr"] = Number(m.Psnr), ["ssim"] = m.Ssim };
                if (baseline is not null) { row["baseline_psnr"] = Number(baseline.Images[i].Psnr); row["baseline_ssim"] = baseline.Images[i].Ssim; }
                if (start is not null) { row["start_psnr"] = Number(start.Images[i].Psnr); row["start_ssim"] = start.Images[i].Ssim; }
                return (JsonNode)row;
            }).ToArray()),
        };
    }

    /// <summary>Writes <paramref name="doc"/> atomically with the shared settings (<see cref="ConfigBinder.JsonOptions"/>, indented).</summary>
    public static void Write(string path, JsonNode doc)
    {
        ArgumentNullException.ThrowIfNull(doc);
        AtomicFile.WriteAllText(path, doc.ToJsonString(ConfigBinder.JsonOptions));
    }

    /// <summary>A PSNR/SSIM value as JSON: the number, or the string <c>"inf"</c> for +∞ (identical images).</summary>
    public static JsonNode Number(double v) => double.IsPositiveInfinity(v) ? JsonValue.Create("inf") : JsonValue.Create(v);

    private static JsonObject Mean(MetricsReport r) => new() { ["psnr"] = Number(r.MeanPsnr), ["ssim"] = r.MeanSsim };

    private static void CheckSameImages(MetricsReport model, MetricsReport other, string what)
    {
        if (other.Images.Count != model.Images.Count || other.Images.Where((o, i) => o.Name != model.Images[i].Name).Any())
            throw new ArgumentException($"the {what} scores other images than the model ({other.Images.Count} vs {model.Images.Count})", what);
    }
}
