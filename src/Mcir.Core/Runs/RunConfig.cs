using System.Text.Json.Nodes;
using Mcir.Core.Data.Datasets;
using Mcir.Core.Metrics;
using Mcir.Core.ModelContrast;
using Mcir.Core.Training;

namespace Mcir.Core.Runs;

/// <summary>
/// A training run as written in a configuration file (snake_case keys). Every section has defaults; a key that is
/// not listed here is an error naming the closest valid key.
/// </summary>
public sealed record RunConfig
{
    /// <summary>Run name: the run folder is <c>&lt;output_root&gt;/&lt;name&gt;</c>.</summary>
    public string Name { get; init; } = "run";

    /// <summary>Folder that holds run folders.</summary>
    public string OutputRoot { get; init; } = "runs";

    /// <summary>
    /// Where training computes: <c>auto</c> (the first CUDA device when the CUDA backend is present, else the CPU),
    /// <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c> (see <see cref="Compute.TorchDevice"/>).
    /// </summary>
    public string Device { get; init; } = "auto";

    /// <summary>
    /// Data-parallel training: <c>auto</c> (MPI when launched as one of several ranks by <c>mpirun</c>/<c>srun</c>),
    /// <c>mpi</c> (always), <c>none</c> (one process). See <see cref="Distributed.Communicators"/>.
    /// </summary>
    public string Distributed { get; init; } = "auto";

    /// <summary>
    /// How a data-parallel job all-reduces gradients (PyTorch's <c>backend</c>): <c>auto</c> (NCCL on the GPUs when the
    /// device is CUDA and <c>libnccl.so.2</c> loads, else MPI through host memory), <c>nccl</c>, <c>mpi</c>.
    /// See <see cref="Distributed.Communicators.ChooseBackend"/>.
    /// </summary>
    public string DistBackend { get; init; } = "auto";

    /// <summary>The architecture, by registered name, and option overrides on top of its defaults.</summary>
    public ModelSection Model { get; init; } = new();

    /// <summary>Training, validation and test data.</summary>
    public DataSection Data { get; init; } = new();

    /// <summary>The terms of the objective.</summary>
    public LossSection Loss { get; init; } = new();

    /// <summary>The negative models (used when a loss term needs negatives).</summary>
    public NegativeBankOptions Negatives { get; init; } = new();

    /// <summary>Iterations, optimiser, schedule, checkpoints (BasicSR's <c>train</c> section).</summary>
    public TrainingOptions Train { get; init; } = new();

    /// <summary>When a run counts as collapsed (the reconstruction part is set from <c>loss.reconstruction</c>).</summary>
    public CollapseGuardOptions CollapseGuard { get; init; } = new();

    /// <summary>How validation and test images are scored (SR: Y channel, crop border = scale).</summary>
    public MetricsProtocol Metrics { get; init; } = new();

    /// <summary>Weights to start from (BasicSR's <c>path</c> section).</summary>
    public PathSection Path { get; init; } = new();
}

/// <summary>
/// The <c>path</c> section, BasicSR's keys for starting a run from pretrained weights: <c>pretrain_network_g</c>,
/// <c>param_key_g</c>, <c>strict_load_g</c>. The weights are loaded into the network before anything else uses it (the
/// negatives start from them); a resumed run takes its weights from the checkpoint instead.
/// </summary>
public sealed record PathSection
{
    /// <summary>A weights file (<c>.pth</c> of BasicSR/KAIR/FFA-Net/…, or <c>.safetensors</c>); null: random initialisation.</summary>
    public string? PretrainNetworkG { get; init; }

    /// <summary>
    /// The wrapper key of a <c>.pth</c> (<c>params</c>, <c>params_ema</c>, <c>state_dict</c>, <c>model</c>); null: the
    /// default rule of <see cref="Weights.StateDictFile"/> (<c>params</c> when present, then the other wrappers, else a
    /// bare state dict).
    /// </summary>
    public string? ParamKeyG { get; init; }

    /// <summary>
    /// True (default): the file must fit the network exactly. False: the keys with the same name and shape are loaded;
    /// every ignored, missing and shape-mismatched key is listed in the run log (e.g. EDSR ×3 from a ×2 model).
    /// </summary>
    public bool StrictLoadG { get; init; } = true;
}

/// <summary>The <c>model</c> section.</summary>
public sealed record ModelSection
{
    /// <summary>Registered model name (see <c>mcir-host list</c>), e.g. <c>edsr-light</c>.</summary>
    public string Name { get; init; } = "";

    /// <summary>Options overriding the model's defaults, in the model's own snake_case keys (default: none).</summary>
    public JsonObject Options { get; init; } = [];

    /// <summary>
    /// A registered model that validation and the test sets are scored with instead of <see cref="Name"/> (null: the
    /// trained model itself): built from its own defaults plus <see cref="Options"/>, it receives the trained (or EMA)
    /// weights by name before every evaluation, so its state dict must be the trained model's. For NAFNet's test-time
    /// variant: <c>"name": "nafnet", "eval_name": "nafnet-local"</c> (NAFNet's GoPro numbers are NAFNetLocal's).
    /// </summary>
    public string? EvalName { get; init; }
}

/// <summary>The <c>data</c> section.</summary>
public sealed record DataSection
{
    public DatasetSection Train { get; init; } = new();
    public DatasetSection? Val { get; init; }
    public IReadOnlyList<DatasetSection> Test { get; init; } = [];
    public int BatchSize { get; init; } = 16;

    /// <summary>Throws an <see cref="ArgumentException"/> for an invalid value (the configuration binder calls it).</summary>
    public void Validate()
    {
        if (BatchSize < 1) throw new ArgumentException($"must be 1 or more, got {BatchSize}", nameof(BatchSize));
    }
}

/// <summary>
/// One data set: <c>hr-folder</c> (LR made by MATLAB bicubic on the fly), <c>degraded-folder</c> (LQ made from the clean
/// images by a registered degradation, see <see cref="Degradation"/>), or a registered file layout: <c>paired-folder</c>
/// (BasicSR's PairedImageDataset), <c>reside</c>, <c>rain200</c>, <c>ddn</c>, <c>did</c>, <c>spa</c>, <c>gopro</c> or a
/// plugin's (docs/configuration.md).
/// </summary>
public sealed record DatasetSection
{
    /// <summary>The data set type (see the record's summary; <c>mcir-host list</c> shows the registered layouts).</summary>
    public string Type { get; init; } = "hr-folder";
    /// <summary>A name for tables and logs; default: the folder name.</summary>
    public string? Name { get; init; }
    /// <summary>HR images (<c>hr-folder</c>), ground truth (<c>paired-folder</c>) or clean images (<c>degraded-folder</c>).</summary>
    public string DatarootGt { get; init; } = "";
    /// <summary>Degraded inputs (the layouts' input folder; some layouts find it under <see cref="DatarootGt"/> when unset).</summary>
    public string? DatarootLq { get; init; }
    /// <summary>
    /// BasicSR's <c>filename_tmpl</c> (<c>paired-folder</c>): the input's stem with <c>{}</c> = the GT stem, e.g.
    /// <c>"{}x2"</c> for DIV2K's <c>0001.png</c> ↔ <c>0001x2.png</c>. Default <c>"{}"</c> (same names).
    /// </summary>
    public string FilenameTmpl { get; init; } = "{}";
    /// <summary>A list file: BasicSR's meta info (<c>paired-folder</c>: one GT path per line), SPA's pair list (<c>spa</c>).</summary>
    public string? MetaInfoFile { get; init; }
    /// <summary>Options of a plugin's layout, in its own snake_case keys (the built-in layouts have none).</summary>
    public System.Text.Json.Nodes.JsonObject? Options { get; init; }
    /// <summary>
    /// Channels the images are read with: null (default) = the model's input channels; 1 = gray (colour files
    /// converted with OpenCV's BT.601 luma), 3 = RGB. A value different from the model's is an error.
    /// </summary>
    public int? Channels { get; init; }
    public int Scale { get; init; } = 1;
    /// <summary>Training patch size on the GT side; null for whole images (validation/test).</summary>
    public int? GtSize { get; init; }
    public bool UseHflip { get; init; }
    public bool UseRot { get; init; }
    /// <summary>Training only: each image is seen this many times per epoch (BasicSR's dataset_enlarge_ratio).</summary>
    public int DatasetEnlargeRatio { get; init; } = 1;
    /// <summary>
    /// Keep decoded images in memory: true, false, or null (default) = only when the folders hold at most
    /// <see cref="RunComposition.AutoCacheBytes"/> of image files (decoded float images take 10–30× their PNG size, so a
    /// DIV2K-sized set is read from disk each time instead).
    /// </summary>
    public bool? CacheImages { get; init; }
    /// <summary>How <c>degraded-folder</c> makes its inputs (required there, not allowed elsewhere).</summary>
    public DegradationSection? Degradation { get; init; }
    /// <summary>
    /// Validation and test sets: the evaluation protocol that scores this set (<c>basicsr</c>, <c>sr</c>, <c>ffa-net</c>,
    /// <c>dehazeformer</c>, <c>idt</c>, <c>nafnet</c>; docs/configuration.md); null (default) = <c>metrics.protocol</c>.
    /// </summary>
    public string? Protocol { get; init; }

    /// <summary>Throws an <see cref="ArgumentException"/> for an invalid value (the configuration binder calls it).</summary>
    public void Validate()
    {
        if (Scale < 1) throw new ArgumentException($"must be 1 or more, got {Scale}", nameof(Scale));
        if (DatasetEnlargeRatio < 1) throw new ArgumentException($"must be 1 or more, got {DatasetEnlargeRatio}", nameof(DatasetEnlargeRatio));
        if (Protocol is not null && !Metrics.Protocols.EvaluationProtocols.IsKnown(Protocol))
            throw new ArgumentException(Metrics.Protocols.EvaluationProtocols.UnknownMessage(Protocol), nameof(Protocol));
        if (GtSize is { } g && (g < Scale || g % Scale != 0))
            throw new ArgumentException($"must be a positive multiple of the scale {Scale} (the LQ patch is gt_size / scale), got {g}", nameof(GtSize));
    }
}

/// <summary>The <c>degradation</c> of a <c>degraded-folder</c> data set: a registered degradation and its options.</summary>
public sealed record DegradationSection
{
    /// <summary>Registered name (see <c>mcir-host list</c>), e.g. <c>gaussian-noise</c>, <c>bicubic</c>.</summary>
    public string Name { get; init; } = "";

    /// <summary>Options overriding the degradation's defaults, in its own snake_case keys (e.g. <c>{"sigma": 25}</c>; default: none).</summary>
    public JsonObject Options { get; init; } = [];

    /// <summary>
    /// Validation and test sets only: each image is degraded once with a generator seeded from (this seed, image name),
    /// so their inputs are the same in every run. Training sets degrade every sample anew from the run's seed.
    /// </summary>
    public int Seed { get; init; }
}

/// <summary>The <c>loss</c> section: a reconstruction term plus optional contrastive terms.</summary>
public sealed record LossSection
{
    /// <summary>Reconstruction loss: a registered loss term (see <c>mcir-host list</c>), e.g. <c>l1</c> (built in).</summary>
    public string Reconstruction { get; init; } = "l1";

    /// <summary>Options overriding the reconstruction term's defaults, in its own snake_case keys (e.g. <c>{"weight": 1}</c>).</summary>
    public JsonObject ReconstructionOptions { get; init; } = [];

    /// <summary>The SPN term; null to train without it.</summary>
    public SpnLossOptions? Spn { get; init; }

    /// <summary>The CR term (AECR-Net); null to train without it.</summary>
    public ContrastRegularizationOptions? Cr { get; init; }
}
