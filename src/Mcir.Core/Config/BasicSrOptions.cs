using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Mcir.Core.Config;

/// <summary>
/// The run configuration made from a BasicSR / MCLIR YAML option file, and one line for every key that was left out.
/// </summary>
/// <param name="Config">A run configuration in this project's JSON layout (docs/configuration.md).</param>
/// <param name="Warnings">One line per key that is not used (each names the key and why it does not change results).</param>
public sealed record BasicSrMapping(JsonObject Config, IReadOnlyList<string> Warnings);

/// <summary>
/// Reads a BasicSR option file (<c>options/train/*/*.yml</c> of XPixelGroup/BasicSR) or an MCLIR one (Aitical/MCLIR,
/// <c>options/*.yml</c>: BasicSR's layout plus <c>train.neg_iter/neg_decay/neg_start</c> and a <c>perceptual_opt</c>
/// that is the negative (SPN) term when <c>model_type</c> names a <c>Neg</c> model) and maps it to the JSON run
/// configuration.
/// <para>Rule for keys that are not mapped: a key that cannot change the trained weights or the scores (data-loader
/// workers, logging back-ends, GPU and distributed settings, image saving, a null value) is left out with one warning
/// line naming it; any other key — a feature this framework lacks or a key it does not know — is an
/// <see cref="McirException"/> naming the file and key, so a run never silently trains something else than the file
/// says.</para>
/// <para>YAML scalars are typed as PyYAML does for BasicSR (<c>~</c> null, <c>true/false</c>, integers, floats, tags such
/// as <c>!!float 1e-4</c>); in addition a plain <c>1e-4</c> (a string for PyYAML) is read as a number.</para>
/// </summary>
public static class BasicSrOptions
{
    /// <summary>True for <c>.yml</c> / <c>.yaml</c> files: <c>run --config</c> maps these with <see cref="Load"/>.</summary>
    public static bool IsOptionFile(string path) =>
        path.EndsWith(".yml", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase);

    /// <summary>BasicSR <c>network_g.type</c> → registered model name, and BasicSR option names that differ from ours.</summary>
    private static readonly Dictionary<string, (string Model, Dictionary<string, string> Renames)> Networks = new(StringComparer.Ordinal)
    {
        ["EDSR"] = ("edsr", new() { ["num_in_ch"] = "num_in_channels", ["num_out_ch"] = "num_out_channels" }),
        ["SwinIR"] = ("swinir", new()),
        ["NAFNet"] = ("nafnet", new()),
        ["NAFNetLocal"] = ("nafnet", new()),
        ["FFANet"] = ("ffa-net", new()),
        ["FFA"] = ("ffa-net", new()),
        ["DehazeFormer"] = ("dehazeformer", new()),
        ["DnCNN"] = ("dncnn", new()),
    };

    // Keys (by name, anywhere) that cannot change the weights or the scores: left out with a warning.
    private static readonly HashSet<string> NeutralKeys = new(StringComparer.Ordinal)
    {
        "num_gpu", "dist_params", "dist", "rank", "world_size", "auto_resume", "is_train",
        "num_worker_per_gpu", "pin_memory", "prefetch_mode", "persistent_workers",
        "use_tb_logger", "wandb", "save_img", "pbar", "suffix", "rgb2bgr", "use_image", "save_last",
        "experiments_root", "models", "training_states", "log", "visualization", "results_root",
    };

    /// <summary>
    /// Reads and maps <paramref name="path"/>.
    /// </summary>
    /// <exception cref="McirException">The file is missing or not YAML, or holds a key that would change results and
    /// has no equivalent here (the message names the file and key path).</exception>
    public static BasicSrMapping Load(string path)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (FileNotFoundException) { throw new McirException($"{path}: option file not found"); }
        catch (DirectoryNotFoundException) { throw new McirException($"{path}: option file not found"); }
        return Map(text, path);
    }

    /// <summary>Maps YAML text; <paramref name="source"/> names it in messages.</summary>
    public static BasicSrMapping Map(string yaml, string source)
    {
        var stream = new YamlStream();
        try { stream.Load(new StringReader(yaml)); }
        catch (YamlException e) { throw new McirException($"{source}: not valid YAML (line {e.Start.Line}, column {e.Start.Column}): {e.Message}"); }
        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is not YamlMappingNode rootNode)
            throw new McirException($"{source}: expected a YAML mapping (BasicSR option file) at the top level");
        return new Mapper(source).Run((Dictionary<string, object?>)Convert(rootNode, source, "")!);
    }

    // ---- YAML → plain values (Dictionary / List / string / long / double / bool / null), typed like PyYAML ----

    private static readonly Regex IntPattern = new(@"^[-+]?(0|[1-9][0-9_]*)$", RegexOptions.CultureInvariant);
    private static readonly Regex FloatPattern = new(@"^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$", RegexOptions.CultureInvariant);

    private static object? Convert(YamlNode node, string source, string where)
    {
        switch (node)
        {
            case YamlMappingNode map:
                var d = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (var (k, v) in map.Children)
                {
                    var key = ((k as YamlScalarNode)?.Value) ?? throw new McirException($"{source}: {where}: keys must be plain names");
                    d[key] = Convert(v, source, where.Length == 0 ? key : $"{where}.{key}");
                }
                return d;
            case YamlSequenceNode seq:
                return seq.Children.Select((c, i) => Convert(c, source, $"{where}[{i}]")).ToList();
            case YamlScalarNode s:
                var value = s.Value ?? "";
                var tag = s.Tag.IsEmpty ? "" : s.Tag.Value;
                if (tag.EndsWith(":float", StringComparison.Ordinal) || tag == "!!float")
                    return double.TryParse(value.Replace("_", ""), NumberStyles.Float, CultureInfo.InvariantCulture, out var f)
                        ? f : throw new McirException($"{source}: {where}: '{value}' is not a float");
                if (tag.EndsWith(":int", StringComparison.Ordinal) || tag == "!!int")
                    return long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n)
                        ? n : throw new McirException($"{source}: {where}: '{value}' is not an integer");
                if (tag.EndsWith(":str", StringComparison.Ordinal) || tag == "!!str" || s.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted
                    or ScalarStyle.Literal or ScalarStyle.Folded)
                    return value;
                switch (value)
                {
                    case "~" or "null" or "Null" or "NULL" or "": return null;
                    case "true" or "True" or "TRUE" or "yes" or "Yes" or "on" or "On": return true;
                    case "false" or "False" or "FALSE" or "no" or "No" or "off" or "Off": return false;
                }
                if (IntPattern.IsMatch(value)) return long.Parse(value.Replace("_", ""), CultureInfo.InvariantCulture);
                if (FloatPattern.IsMatch(value)) return double.Parse(value.Replace("_", ""), NumberStyles.Float, CultureInfo.InvariantCulture);
                return value;
            default:
                throw new McirException($"{source}: {where}: unsupported YAML node");
        }
    }

    private static JsonNode? ToJson(object? v) => v switch
    {
        null => null,
        Dictionary<string, object?> d => new JsonObject(d.Select(p => KeyValuePair.Create(p.Key, ToJson(p.Value)))),
        List<object?> l => new JsonArray(l.Select(ToJson).ToArray()),
        string s => JsonValue.Create(s),
        long n => JsonValue.Create(n),
        double f => JsonValue.Create(f),
        bool b => JsonValue.Create(b),
        _ => throw new InvalidOperationException(v.GetType().Name),
    };

    /// <summary>One section of the option file: values are taken by key; what is left is reported at the end.</summary>
    private sealed class Section(Mapper owner, string path, Dictionary<string, object?> values)
    {
        private readonly HashSet<string> _taken = new(StringComparer.Ordinal);
        public string Path { get; } = path;
        /// <summary>The keys not taken yet, in file order.</summary>
        public List<string> Keys() => values.Keys.Where(k => !_taken.Contains(k)).ToList();
        public bool Has(string key) => values.ContainsKey(key) && values[key] is not null;
        public string Where(string key) => Path.Length == 0 ? key : $"{Path}.{key}";

        public object? Take(string key)
        {
            _taken.Add(key);
            return values.TryGetValue(key, out var v) ? v : null;
        }

        /// <summary>The key to read: <paramref name="key"/>, or its older BasicSR name when only that is set.</summary>
        public string Either(string key, string alias)
        {
            var used = Has(key) || !Has(alias) ? key : alias;
            _taken.Add(used == key ? alias : key);
            return used;
        }

        public Section? Sub(string key) => Take(key) switch
        {
            null => null,
            Dictionary<string, object?> d => new Section(owner, Where(key), d),
            var other => throw owner.Error(Where(key), $"expected a mapping, got '{other}'"),
        };

        public double? Number(string key) => Take(key) switch
        {
            null => null,
            long n => n,
            double f => f,
            var other => throw owner.Error(Where(key), $"expected a number, got '{other}'"),
        };

        public long? Integer(string key) => Number(key) is { } d
            ? (d == Math.Floor(d) ? (long)d : throw owner.Error(Where(key), $"expected an integer, got {d}")) : null;

        public bool? Bool(string key) => Take(key) switch
        {
            null => null,
            bool b => b,
            var other => throw owner.Error(Where(key), $"expected true or false, got '{other}'"),
        };

        public string? Text(string key) => Take(key) switch
        {
            null => null,
            string s => s,
            var other => System.Convert.ToString(other, CultureInfo.InvariantCulture),
        };

        public JsonNode? Json(string key) => ToJson(Take(key));

        /// <summary>Every key not taken: a warning when it cannot change results, else an error.</summary>
        public void Finish()
        {
            foreach (var (key, value) in values)
            {
                if (_taken.Contains(key)) continue;
                if (value is null)
                    owner.Warn(Where(key), "is null (off); not used");
                else if (NeutralKeys.Contains(key))
                    owner.Warn(Where(key), "does not change the trained weights or the scores here; not used");
                else
                    throw owner.Error(Where(key), "has no equivalent in this framework and may change results (remove it or use a JSON configuration)");
            }
        }
    }

    private sealed class Mapper(string source)
    {
        private readonly List<string> _warnings = [];

        public void Warn(string key, string why) => _warnings.Add($"{source}: {key} {why}");

        public McirException Error(string key, string what) => new($"{source}: {key}: {what}");

        public BasicSrMapping Run(Dictionary<string, object?> rootValues)
        {
            var root = new Section(this, "", rootValues);
            var config = new JsonObject();
            if (root.Text("name") is { } name) config["name"] = name;

            // model_type: BasicSR's SRModel / ImageRestorationModel train the network alone; MCLIR's *_Neg_* models add
            // the negative models and use perceptual_opt as the SPN term.
            var modelType = root.Text("model_type") ?? "SRModel";
            bool negativeModel = modelType.Contains("Neg", StringComparison.Ordinal);
            if (!negativeModel && modelType is not ("SRModel" or "ImageRestorationModel" or "ImageCleanModel" or "SwinIRModel"))
                throw Error("model_type", $"'{modelType}' is not a model this mapping knows (SRModel, ImageRestorationModel, MCLIR's *_Neg_* models)");

            long scale = root.Integer("scale") ?? 1;
            var train = new JsonObject();
            if (root.Integer("manual_seed") is { } seed) train["seed"] = seed;

            config["model"] = MapNetwork(root.Sub("network_g") ?? throw Error("network_g", "missing (the network to train)"), scale);
            var data = new JsonObject();
            var loss = new JsonObject { ["reconstruction"] = "l1" };
            if (root.Sub("datasets") is { } datasets) MapDatasets(datasets, scale, data);
            else throw Error("datasets", "missing (datasets.train is needed)");
            config["data"] = data;

            if (root.Sub("path") is { } path) config["path"] = MapPath(path);
            if (root.Sub("path_neg") is { } pathNeg)
            {
                if (pathNeg.Has("pretrain_network_g"))
                    throw Error(pathNeg.Where("pretrain_network_g"), "pretrained negative models are not mapped (use negatives.kind fixed-pretrained in a JSON configuration)");
                if (pathNeg.Has("resume_state"))
                    throw Error(pathNeg.Where("resume_state"), "use 'mcir-host run --resume CHECKPOINT|auto' instead");
                // strict_load_g only matters for a pretrained negative, which is refused above.
                foreach (var key in new[] { "pretrain_network_g", "strict_load_g", "resume_state" }) pathNeg.Take(key);
                pathNeg.Finish();
            }

            var trainSection = root.Sub("train") ?? throw Error("train", "missing");
            MapTrain(trainSection, train, loss, config, negativeModel);
            if (root.Sub("val") is { } val) MapVal(val, train, config);
            if (root.Sub("logger") is { } logger)
            {
                if (logger.Integer("print_freq") is { } pf) train["print_freq"] = pf;
                if (logger.Integer("save_checkpoint_freq") is { } cf) train["checkpoint_freq"] = cf;
                logger.Finish();
            }
            config["loss"] = loss;
            config["train"] = train;
            root.Finish();
            return new BasicSrMapping(config, _warnings);
        }

        private JsonObject MapNetwork(Section net, long scale)
        {
            var type = net.Text("type") ?? throw Error(net.Where("type"), "missing");
            if (!Networks.TryGetValue(type, out var entry))
                throw Error(net.Where("type"), $"'{type}' has no model here (known: {string.Join(", ", Networks.Keys)})");
            if (type == "NAFNetLocal")
            {
                // TLC (local average pooling at test time) is not implemented: validation uses global pooling.
                Warn(net.Where("type"), "NAFNetLocal is trained as NAFNet (training is the same; validation scores use global pooling, not TLC)");
                net.Take("train_size"); net.Take("fast_imp");
            }
            var options = new JsonObject();
            foreach (var key in net.Keys())
                options[entry.Renames.GetValueOrDefault(key, key)] = net.Json(key);
            // Model option names are checked when the run binds them (unknown keys are errors naming the closest one).
            if (entry.Model is "edsr" or "swinir" && !Runs.RunComposition.HasUpscale(options) && scale > 1) options[Runs.RunComposition.UpscaleKey] = scale;
            net.Finish();
            return new JsonObject { ["name"] = entry.Model, ["options"] = options };
        }

        private void MapDatasets(Section datasets, long scale, JsonObject data)
        {
            var trainSet = datasets.Sub("train") ?? throw Error(datasets.Where("train"), "missing");
            data["train"] = MapDataset(trainSet, scale, true, data);
            if (datasets.Sub("val") is { } val) data["val"] = MapDataset(val, scale, false, data);
            var tests = new JsonArray();
            foreach (var key in datasets.Keys().Where(k => k.StartsWith("val", StringComparison.Ordinal) || k.StartsWith("test", StringComparison.Ordinal)).ToList())
                if (datasets.Sub(key) is { } extra) tests.Add(MapDataset(extra, scale, false, data));
            if (tests.Count > 0) data["test"] = tests;
            datasets.Finish();
        }

        private JsonObject MapDataset(Section s, long scale, bool training, JsonObject data)
        {
            var type = s.Text("type") ?? throw Error(s.Where("type"), "missing");
            if (type is not ("PairedImageDataset" or "Dataset_PairedImage"))
                throw Error(s.Where("type"), $"'{type}' is not mapped (PairedImageDataset only; use a JSON configuration for other data sets)");
            var d = new JsonObject { ["type"] = "paired-folder" };
            if (s.Text("name") is { } name) d["name"] = name;
            d["dataroot_gt"] = s.Text("dataroot_gt") ?? throw Error(s.Where("dataroot_gt"), "missing");
            d["dataroot_lq"] = s.Text("dataroot_lq") ?? throw Error(s.Where("dataroot_lq"), "missing");
            if (scale != 1) d["scale"] = scale;
            if (s.Text("filename_tmpl") is { } tmpl && tmpl != "{}") d["filename_tmpl"] = tmpl; // BasicSR's rule, as paired-folder applies it
            if (s.Sub("io_backend") is { } io)
            {
                var backend = io.Text("type") ?? "disk";
                if (backend != "disk") throw Error(io.Where("type"), $"'{backend}' is not supported (image folders on disk only)");
                io.Finish();
            }
            if (s.Has("meta_info_file"))
            {
                s.Take("meta_info_file");
                Warn(s.Where("meta_info_file"), "is not read: every image in dataroot_gt is used");
            }
            if (s.Bool("use_shuffle") == false) throw Error(s.Where("use_shuffle"), "false is not supported (training samples are always shuffled)");
            if (s.Integer("gt_size") is { } gt && training) d["gt_size"] = gt;
            if ((s.Bool(s.Either("use_hflip", "use_flip"))) is { } flip && training) d["use_hflip"] = flip;
            if (s.Bool("use_rot") is { } rot && training) d["use_rot"] = rot;
            if (s.Integer("dataset_enlarge_ratio") is { } enlarge && training) d["dataset_enlarge_ratio"] = enlarge;
            if (s.Integer("batch_size_per_gpu") is { } batch && training) data["batch_size"] = batch;
            s.Take("phase");
            s.Finish();
            return d;
        }

        private JsonObject MapPath(Section path)
        {
            var p = new JsonObject();
            if (path.Text(path.Either("pretrain_network_g", "pretrain_model_g")) is { } w) p["pretrain_network_g"] = w;
            if (path.Text("param_key_g") is { } key) p["param_key_g"] = key;
            if (path.Bool(path.Either("strict_load_g", "strict_load")) is { } strict) p["strict_load_g"] = strict;
            if (path.Has("resume_state"))
                throw Error(path.Where("resume_state"), "use 'mcir-host run --resume CHECKPOINT|auto' instead");
            path.Take("resume_state");
            path.Finish();
            return p;
        }

        private void MapTrain(Section t, JsonObject train, JsonObject loss, JsonObject config, bool negativeModel)
        {
            if (t.Integer("total_iter") is { } total) train["total_iter"] = total;
            if (t.Number("ema_decay") is { } ema) train["ema_decay"] = ema > 0 ? ema : null;
            if ((t.Integer("warmup_iter") ?? -1) > 0) throw Error(t.Where("warmup_iter"), "learning-rate warm-up is not supported (use -1)");
            if (t.Has("use_grad_norm"))
            {
                t.Take("use_grad_norm");
                Warn(t.Where("use_grad_norm"), "is never read by MCLIR's training code (it reads use_grad_clip); not used");
            }
            // NAFNet's ImageRestorationModel clips the gradient norm to 0.01 when use_grad_clip is true.
            if (t.Bool("use_grad_clip") == true) train["grad_clip_norm"] = 0.01;

            if (t.Sub("optim_g") is { } o)
            {
                var type = o.Text("type") ?? "Adam";
                var opt = new JsonObject
                {
                    ["type"] = type switch
                    {
                        "Adam" => "adam",
                        "AdamW" => "adamw",
                        _ => throw Error(o.Where("type"), $"'{type}' is not supported (Adam, AdamW)"),
                    },
                };
                if (o.Number("lr") is { } lr) opt["lr"] = lr;
                if (o.Json("betas") is { } betas) opt["betas"] = betas;
                if (o.Number("weight_decay") is { } wd) opt["weight_decay"] = wd;
                if (o.Number("eps") is { } eps) opt["eps"] = eps;
                o.Finish();
                train["optimizer"] = opt;
            }
            if (t.Sub("scheduler") is { } s) train["scheduler"] = MapScheduler(s);

            if (t.Sub("pixel_opt") is { } pix)
            {
                var type = pix.Text("type") ?? throw Error(pix.Where("type"), "missing");
                var reduction = pix.Text("reduction") ?? "mean";
                if (reduction != "mean") throw Error(pix.Where("reduction"), $"'{reduction}' is not supported (mean)");
                var weight = pix.Number("loss_weight") ?? 1.0;
                switch (type)
                {
                    case "L1Loss":
                        loss["reconstruction"] = "l1";
                        loss["reconstruction_options"] = new JsonObject { ["weight"] = weight };
                        break;
                    case "PSNRLoss":
                        loss["reconstruction"] = "psnr-loss";
                        var psnr = new JsonObject { ["loss_weight"] = weight };
                        if (pix.Bool("toY") is { } toY) psnr["to_y"] = toY;
                        loss["reconstruction_options"] = psnr;
                        break;
                    default:
                        throw Error(pix.Where("type"), $"'{type}' is not mapped (L1Loss, PSNRLoss)");
                }
                pix.Finish();
            }

            var negatives = new JsonObject
            {
                ["kind"] = "ema", ["init"] = "blend",
                // MCLIR's released code pairs the reversed neg_iter periods with the forward negative index.
                ["schedule_order"] = "authors",
            };
            bool anyNeg = false;
            if (t.Json("neg_iter") is { } steps) { negatives["steps"] = steps; anyNeg = true; }
            if (t.Json("neg_decay") is { } decays) { negatives["decays"] = decays is JsonArray ? decays : new JsonArray(decays); anyNeg = true; }
            if (t.Number("neg_start") is { } start) { negatives["neg_start"] = start; anyNeg = true; }

            var perceptual = t.Sub("perceptual_opt");
            if (perceptual is not null)
            {
                double weight = perceptual.Number("perceptual_weight") ?? 1.0;
                if (!negativeModel && weight != 0)
                    throw Error(perceptual.Where("type"), $"a positive perceptual loss (model_type without Neg) is not supported; only MCLIR's negative (SPN) use of perceptual_opt is mapped");
                var type = perceptual.Text("type") ?? "PerceptualLoss";
                if (type != "PerceptualLoss") throw Error(perceptual.Where("type"), $"'{type}' is not mapped (PerceptualLoss)");
                var vgg = perceptual.Text("vgg_type") ?? "vgg19";
                if (vgg is not ("vgg16" or "vgg19")) throw Error(perceptual.Where("vgg_type"), $"'{vgg}' is not supported (vgg16, vgg19)");
                if (perceptual.Bool("range_norm") == true) throw Error(perceptual.Where("range_norm"), "true is not supported (inputs are in [0, 1])");
                var criterion = perceptual.Text("criterion") ?? "l1";
                if (criterion != "l1") throw Error(perceptual.Where("criterion"), $"'{criterion}' is not supported (l1)");
                if ((perceptual.Number("style_weight") ?? 0) != 0) throw Error(perceptual.Where("style_weight"), "a style term is not supported (0)");
                var spn = new JsonObject { ["lambda"] = weight, ["form"] = "subtract" };
                if (perceptual.Json("layer_weights") is { } lw) spn["layer_weights"] = lw;
                spn["embedding"] = new JsonObject { ["variant"] = vgg, ["normalize"] = perceptual.Bool("use_input_norm") ?? true };
                perceptual.Finish();
                if (negativeModel && weight != 0) loss["spn"] = spn;
            }
            if (negativeModel)
            {
                if (!loss.ContainsKey("spn")) throw Error(t.Where("perceptual_opt"), $"model_type needs negatives but perceptual_opt (the SPN term) is missing");
                config["negatives"] = negatives;
            }
            else if (anyNeg)
                throw Error(t.Where("neg_iter"), "negative-model settings need an MCLIR *_Neg_* model_type");
            t.Finish();
        }

        private JsonObject MapScheduler(Section s)
        {
            var type = s.Text("type") ?? throw Error(s.Where("type"), "missing");
            var j = new JsonObject();
            switch (type)
            {
                case "MultiStepLR" or "MultiStepRestartLR":
                    j["type"] = "multistep";
                    if (s.Json("milestones") is { } m) j["milestones"] = m;
                    if (s.Number("gamma") is { } g) j["gamma"] = g;
                    if (s.Take("restarts") is List<object?> { Count: > 0 } r && !(r.Count == 1 && r[0] is 0L))
                        throw Error(s.Where("restarts"), "restarts of MultiStepRestartLR are not supported");
                    s.Take("restart_weights");
                    break;
                case "CosineAnnealingRestartLR":
                    j["type"] = "cosine";
                    if (s.Json("periods") is { } p) j["periods"] = p;
                    if (s.Json("restart_weights") is { } w) j["restart_weights"] = w;
                    if (s.Number("eta_min") is { } e) j["eta_min"] = e;
                    break;
                case "TrueCosineAnnealingLR" or "CosineAnnealingLR":
                    j["type"] = "TrueCosineAnnealingLR";
                    if (s.Integer("T_max") is { } tmax) j["t_max"] = tmax;
                    if (s.Number("eta_min") is { } e2) j["eta_min"] = e2;
                    break;
                default:
                    throw Error(s.Where("type"), $"'{type}' is not supported (MultiStepLR, MultiStepRestartLR, CosineAnnealingRestartLR, TrueCosineAnnealingLR)");
            }
            s.Finish();
            return j;
        }

        private void MapVal(Section val, JsonObject train, JsonObject config)
        {
            if (val.Integer("val_freq") is { } freq) train["val_freq"] = freq;
            if (val.Sub("metrics") is { } metrics)
            {
                (long Crop, bool Y)? protocol = null;
                foreach (var name in metrics.Keys().ToList())
                {
                    var m = metrics.Sub(name);
                    if (m is null) continue;
                    var type = m.Text("type") ?? "";
                    if (type is not ("calculate_psnr" or "calculate_ssim"))
                    {
                        Warn(m.Path, $"metric '{type}' is not computed (PSNR and SSIM only)");
                        foreach (var k in m.Keys().ToList()) m.Take(k);
                        continue;
                    }
                    var p = (m.Integer("crop_border") ?? 0, m.Bool("test_y_channel") ?? false);
                    m.Take("better");
                    if (protocol is { } seen && seen != p)
                        throw Error(m.Path, $"crop_border/test_y_channel ({p.Item1}, {p.Item2}) differ from the other metric's ({seen.Crop}, {seen.Y}); one protocol scores both here");
                    protocol = p;
                    m.Finish();
                }
                if (protocol is { } pr) config["metrics"] = new JsonObject { ["crop_border"] = pr.Crop, ["y_channel"] = pr.Y };
                metrics.Finish();
            }
            val.Finish();
        }
    }
}
