using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Mcir.Core.Embeddings.Onnx;

/// <summary>Construction options of <see cref="OnnxGraphModule"/>.</summary>
public sealed record OnnxGraphModuleOptions
{
    /// <summary>
    /// Fold an inference BatchNormalization into the Conv that feeds it (when that Conv output is used by nothing else and
    /// is not requested). Same function, one op fewer per block; off = run every node as written.
    /// </summary>
    public bool FoldBatchNorm { get; init; } = true;
}

/// <summary>
/// Runs (a cut of) an ONNX graph with TorchSharp ops, so autograd flows from the requested outputs back to the graph's
/// single data input. Supported ops: Conv (2-D, group, dilations, asymmetric pads, auto_pad), BatchNormalization
/// (inference form), Relu, LeakyRelu, Sigmoid, Add/Sub/Mul/Div (tensors or constants, numpy or legacy axis broadcast),
/// MaxPool, AveragePool (asymmetric pads, count_include_pad, ceil_mode), GlobalAveragePool, Concat, Split, Flatten,
/// Identity, Dropout (inference), Constant. Only the nodes the requested outputs depend on are built and run (so the
/// forward stops after the deepest requested output); their initializers become buffers. Frozen (no parameters, every
/// buffer requires no grad) and in eval mode. Unsupported ops, missing initializers and unknown output names are
/// reported at construction, naming the node.
/// </summary>
public sealed class OnnxGraphModule : nn.Module<Tensor, Tensor>
{
    /// <summary>Op types this module can run.</summary>
    public static readonly IReadOnlySet<string> SupportedOps = new HashSet<string>(StringComparer.Ordinal)
    {
        "Conv", "BatchNormalization", "Relu", "LeakyRelu", "Sigmoid", "Add", "Sub", "Mul", "Div", "MaxPool", "AveragePool",
        "GlobalAveragePool", "Concat", "Split", "Flatten", "Identity", "Dropout", "Constant",
    };

    private readonly Step[] _steps;
    private readonly int _inputSlot;
    private readonly int[] _outputSlots;
    private readonly int _slotCount;
    private readonly int[] _initialUses;
    private readonly bool[] _keep;
    private readonly long? _inputChannels;

    /// <summary>Builds the part of <paramref name="graph"/> needed for <paramref name="outputs"/> (node output names).</summary>
    public OnnxGraphModule(OnnxGraph graph, IEnumerable<string> outputs, OnnxGraphModuleOptions? options = null, string name = "onnx_graph")
        : base(name)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(outputs);
        options ??= new OnnxGraphModuleOptions();
        OutputNames = outputs.ToArray();
        if (OutputNames.Count == 0) throw new ArgumentException("ONNX graph module: at least one output must be requested.", nameof(outputs));

        // Who produces what.
        var producer = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < graph.Nodes.Count; i++)
            foreach (var o in graph.Nodes[i].Outputs)
                if (o.Length > 0 && !producer.TryAdd(o, i))
                    throw new OnnxFormatException($"value '{o}' is produced twice ({graph.Nodes[producer[o]].Display} and {graph.Nodes[i].Display}).");
        var dataInputs = graph.DataInputs.Select(v => v.Name).ToHashSet(StringComparer.Ordinal);

        foreach (var o in OutputNames)
            if (!producer.ContainsKey(o) && !dataInputs.Contains(o))
                throw new ArgumentException(
                    $"ONNX graph '{graph.Name}': no node produces '{o}'. Node outputs are e.g. {string.Join(", ", graph.Nodes.Take(6).SelectMany(n => n.Outputs))} …", nameof(outputs));

        // The nodes the outputs depend on (walk back), in file (= topological) order.
        var needed = new SortedSet<int>();
        var stack = new Stack<string>(OutputNames);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var usedInputs = new HashSet<string>(StringComparer.Ordinal);
        while (stack.Count > 0)
        {
            string v = stack.Pop();
            if (!seen.Add(v)) continue;
            if (producer.TryGetValue(v, out int ni))
            {
                if (needed.Add(ni))
                    foreach (var i in graph.Nodes[ni].Inputs)
                        if (i.Length > 0) stack.Push(i);
            }
            else if (dataInputs.Contains(v)) usedInputs.Add(v);
        }
        foreach (int ni in needed)
        {
            var node = graph.Nodes[ni];
            if (!SupportedOps.Contains(node.OpType) || (node.Domain.Length > 0 && node.Domain != "ai.onnx"))
                throw new NotSupportedException(
                    $"ONNX op '{(node.Domain.Length > 0 ? node.Domain + "." : "")}{node.OpType}' (node '{node.Name}', output '{node.Outputs.FirstOrDefault()}') " +
                    $"is not supported by the TorchSharp graph runner. Supported: {string.Join(", ", SupportedOps.Order(StringComparer.Ordinal))}.");
            foreach (var i in node.Inputs)
            {
                if (i.Length == 0 || graph.Initializers.ContainsKey(i) || dataInputs.Contains(i)) continue;
                if (!producer.TryGetValue(i, out int p))
                    throw new OnnxFormatException(
                        $"{node.Display}: input '{i}' is neither an initializer, a graph input nor a node output (missing initializer?).");
                if (p >= ni)
                    throw new OnnxFormatException($"{node.Display}: input '{i}' is produced later by {graph.Nodes[p].Display} (graph not in topological order).");
            }
        }
        if (usedInputs.Count != 1)
            throw new NotSupportedException(usedInputs.Count == 0
                ? $"ONNX graph '{graph.Name}': the requested outputs do not depend on any graph input."
                : $"ONNX graph '{graph.Name}': the requested outputs depend on {usedInputs.Count} inputs ({string.Join(", ", usedInputs)}); only single-input graphs are supported.");
        InputName = usedInputs.Single();
        var inputInfo = graph.Inputs.First(v => v.Name == InputName);
        if (inputInfo.Shape is { Count: 4 } s && s[1].Value is long c) _inputChannels = c;

        // Slots for values computed at run time.
        var slots = new Dictionary<string, int>(StringComparer.Ordinal) { [InputName] = 0 };
        int Slot(string v) => slots.TryGetValue(v, out int k) ? k : slots[v] = slots.Count;

        var builder = new StepBuilder(this, graph);
        var neededNodes = needed.Select(i => graph.Nodes[i]).ToList();
        var requested = OutputNames.ToHashSet(StringComparer.Ordinal);

        // BatchNorm folding: Conv output used only by one BN (among the needed nodes) and not requested.
        var consumers = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var n in neededNodes) foreach (var i in n.Inputs) if (i.Length > 0) consumers[i] = consumers.GetValueOrDefault(i) + 1;
        var foldInto = new Dictionary<OnnxNode, OnnxNode>();   // BN node → its Conv
        var folded = new HashSet<OnnxNode>();                   // Convs folded away
        if (options.FoldBatchNorm)
            foreach (var bn in neededNodes.Where(n => n.OpType == "BatchNormalization"))
            {
                string x = bn.Inputs[0];
                if (!producer.TryGetValue(x, out int p)) continue;
                var conv = graph.Nodes[p];
                if (conv.OpType != "Conv" || requested.Contains(x) || consumers.GetValueOrDefault(x) != 1) continue;
                if (!graph.Initializers.ContainsKey(conv.Inputs[1]) || (conv.Inputs.Count > 2 && conv.Inputs[2].Length > 0 && !graph.Initializers.ContainsKey(conv.Inputs[2]))) continue;
                foldInto[bn] = conv;
                folded.Add(conv);
            }

        var steps = new List<Step>();
        foreach (var node in neededNodes)
        {
            if (folded.Contains(node)) continue;
            if (node.OpType == "Constant")
            {
                if (node.Outputs.Any(requested.Contains)) throw new NotSupportedException($"{node.Display}: a Constant cannot be a requested output.");
                builder.RegisterConstantNode(node);
                continue;
            }
            Step step = foldInto.TryGetValue(node, out var convNode)
                ? builder.FoldedConvBn(convNode, node)
                : builder.Build(node);
            step.InputSlots = step.Inputs.Select(i => i.Length == 0 || builder.IsConstant(i) ? -1 : Slot(i)).ToArray();
            step.OutputSlots = step.Node.Outputs.Select(o => o.Length == 0 ? -1 : Slot(o)).ToArray();
            steps.Add(step);
        }
        _steps = steps.ToArray();
        _slotCount = slots.Count;
        _inputSlot = 0;
        _outputSlots = OutputNames.Select(o => slots[o]).ToArray();
        _initialUses = new int[_slotCount];
        foreach (var st in _steps) foreach (int k in st.InputSlots) if (k >= 0) _initialUses[k]++;
        _keep = new bool[_slotCount];
        _keep[_inputSlot] = true;
        foreach (int k in _outputSlots) _keep[k] = true;

        ExecutedNodes = neededNodes;
        FoldedBatchNorms = foldInto.Count;
        foreach (var (_, b) in named_buffers()) b.requires_grad = false;
        eval();
    }

    /// <summary>The single data input the requested outputs depend on.</summary>
    public string InputName { get; }

    /// <summary>The requested outputs, in the order <see cref="Run"/> returns them.</summary>
    public IReadOnlyList<string> OutputNames { get; }

    /// <summary>The ONNX nodes run (only those the outputs depend on), in order.</summary>
    public IReadOnlyList<OnnxNode> ExecutedNodes { get; }

    /// <summary>How many BatchNormalization nodes were folded into their Conv.</summary>
    public int FoldedBatchNorms { get; }

    /// <summary>The first requested output.</summary>
    public override Tensor forward(Tensor input) => Run(input)[0];

    /// <summary>
    /// Runs the graph on <paramref name="input"/> and returns the requested outputs in <see cref="OutputNames"/> order.
    /// Intermediate tensors are disposed as soon as nothing else needs them (autograd keeps what it saved).
    /// </summary>
    public IReadOnlyList<Tensor> Run(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (_inputChannels is long c && (input.dim() != 4 || input.shape[1] != c))
            throw new ArgumentException($"ONNX graph input '{InputName}' expects [N, {c}, H, W], got [{string.Join(", ", input.shape)}].", nameof(input));
        var consts = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (n, b) in named_buffers())
        {
            if (b.dtype != input.dtype || b.device_type != input.device_type || b.device_index != input.device_index)
                throw new ArgumentException($"ONNX graph: input is {input.dtype} on {input.device} but the graph's constants are {b.dtype} on {b.device}; move the module with .to(...) first.", nameof(input));
            consts[n] = b;
        }

        var values = new Tensor?[_slotCount];
        var uses = (int[])_initialUses.Clone();
        values[_inputSlot] = input;
        var args = new List<Tensor?>(8);
        foreach (var step in _steps)
        {
            args.Clear();
            for (int k = 0; k < step.Inputs.Length; k++)
            {
                int slot = step.InputSlots[k];
                args.Add(slot >= 0 ? values[slot] ?? throw new InvalidOperationException($"{step.Node.Display}: input '{step.Inputs[k]}' was not computed.")
                    : step.Inputs[k].Length == 0 ? null : consts[step.ConstantKey(step.Inputs[k])]);
            }
            Tensor[] results;
            try
            {
                results = step.Run(args);
            }
            catch (Exception e) when (e is not OnnxFormatException and not NotSupportedException)
            {
                throw new InvalidOperationException(
                    $"{step.Node.Display} failed on inputs {string.Join(", ", args.Select(a => a is null ? "-" : "[" + string.Join("×", a.shape) + "]"))}: {e.Message}", e);
            }
            for (int k = 0; k < step.OutputSlots.Length && k < results.Length; k++)
                if (step.OutputSlots[k] >= 0) values[step.OutputSlots[k]] = results[k];
            foreach (int slot in step.InputSlots)
            {
                if (slot < 0 || --uses[slot] > 0 || _keep[slot]) continue;
                values[slot]?.Dispose();
                values[slot] = null;
            }
        }
        return _outputSlots.Select(k => values[k]!).ToArray();
    }

    /// <summary>A compiled node: its input names (graph or constant), slots, and the function computing its outputs.</summary>
    internal sealed class Step
    {
        public Step(OnnxNode node, string[] inputs, Func<IReadOnlyList<Tensor?>, Tensor[]> run, IReadOnlyDictionary<string, string> constantKeys)
        {
            Node = node;
            Inputs = inputs;
            Run = run;
            _constantKeys = constantKeys;
        }

        private readonly IReadOnlyDictionary<string, string> _constantKeys;

        public OnnxNode Node { get; }

        public string[] Inputs { get; }

        public Func<IReadOnlyList<Tensor?>, Tensor[]> Run { get; }

        public int[] InputSlots { get; set; } = [];

        public int[] OutputSlots { get; set; } = [];

        public string ConstantKey(string name) => _constantKeys[name];
    }

    /// <summary>Turns nodes into steps; registers the initializers they use as buffers.</summary>
    private sealed class StepBuilder
    {
        private readonly OnnxGraphModule _module;
        private readonly OnnxGraph _graph;
        private readonly Dictionary<string, string> _bufferKeys = new(StringComparer.Ordinal);

        public StepBuilder(OnnxGraphModule module, OnnxGraph graph)
        {
            _module = module;
            _graph = graph;
        }

        public bool IsConstant(string name) => _bufferKeys.ContainsKey(name);

        private string Register(string onnxName, Tensor value)
        {
            if (_bufferKeys.TryGetValue(onnxName, out var key)) { value.Dispose(); return key; }
            key = "c" + _bufferKeys.Count.ToString(CultureInfo.InvariantCulture) + "_" + new string(onnxName.Select(ch => char.IsLetterOrDigit(ch) ? ch : '_').ToArray());
            value.requires_grad = false;
            _module.register_buffer(key, value);
            _bufferKeys[onnxName] = key;
            return key;
        }

        private OnnxTensor Initializer(OnnxNode node, int index, string role)
        {
            if (index >= node.Inputs.Count || node.Inputs[index].Length == 0)
                throw new OnnxFormatException($"{node.Display}: missing input #{index} ({role}).");
            string n = node.Inputs[index];
            if (!_graph.Initializers.TryGetValue(n, out var t))
                throw new OnnxFormatException($"{node.Display}: {role} '{n}' must be an initializer (constant), but it is not (missing initializer?).");
            return t;
        }

        private static Tensor ToTensor(OnnxTensor t, OnnxNode node)
        {
            if (t.Floats is { } f) return torch.tensor(f, dtype: ScalarType.Float32).reshape(t.Dims);
            if (t.Int64s is { } l) return torch.tensor(l.Select(v => (float)v).ToArray(), dtype: ScalarType.Float32).reshape(t.Dims);
            throw new OnnxFormatException($"{node.Display}: constant '{t.Name}' has element type {t.DataType}, which the runner cannot use (float32/float64/int only).");
        }

        /// <summary>Registers every initializer input of <paramref name="node"/> (from index <paramref name="from"/>) as a buffer.</summary>
        private Dictionary<string, string> RegisterInputs(OnnxNode node, int from = 0)
        {
            var keys = new Dictionary<string, string>(StringComparer.Ordinal);
            for (int k = from; k < node.Inputs.Count; k++)
            {
                string n = node.Inputs[k];
                if (n.Length == 0) continue;
                if (_bufferKeys.TryGetValue(n, out var key)) keys[n] = key;
                else if (_graph.Initializers.TryGetValue(n, out var t)) keys[n] = Register(n, ToTensor(t, node));
            }
            return keys;
        }

        private Step Make(OnnxNode node, Func<IReadOnlyList<Tensor?>, Tensor[]> run, int from = 0) =>
            new(node, node.Inputs.ToArray(), run, RegisterInputs(node, from));

        private static Func<IReadOnlyList<Tensor?>, Tensor[]> One(Func<IReadOnlyList<Tensor?>, Tensor> f) => a => [f(a)];

        public void RegisterConstantNode(OnnxNode node)
        {
            if (!node.Attributes.TryGetValue("value", out var attr) || attr.T is null)
                throw new NotSupportedException($"{node.Display}: only Constant nodes with a tensor 'value' attribute are supported.");
            Register(node.Outputs[0], ToTensor(attr.T, node));
        }

        public Step Build(OnnxNode node)
        {
            if (node.Outputs.Count == 0) throw new OnnxFormatException($"{node.Display} has no outputs.");
            switch (node.OpType)
            {
                case "Conv": return Conv(node);
                case "BatchNormalization": return BatchNorm(node);
                case "Relu": return Make(node, One(a => F.relu(a[0]!)));
                case "LeakyRelu": { double alpha = node.Float("alpha", 0.01f); return Make(node, One(a => F.leaky_relu(a[0]!, alpha))); }
                case "Sigmoid": return Make(node, One(a => torch.sigmoid(a[0]!)));
                case "Identity":
                case "Dropout":
                    return Make(node, a => node.Outputs.Count > 1 && node.Outputs[1].Length > 0
                        ? throw new NotSupportedException($"{node.Display}: the Dropout mask output is not supported.")
                        : [a[0]!.alias()]);
                case "Add": case "Sub": case "Mul": case "Div": return Binary(node);
                case "MaxPool": case "AveragePool": return Pool(node);
                case "GlobalAveragePool": return Make(node, One(a => a[0]!.mean([2, 3], keepdim: true)));
                case "Concat":
                {
                    long axis = node.Int("axis", 1);
                    return Make(node, One(a => torch.cat(a.Where(t => t is not null).Select(t => t!).ToArray(), axis)));
                }
                case "Flatten":
                {
                    long axis = node.Int("axis", 1);
                    return Make(node, One(a =>
                    {
                        var x = a[0]!;
                        long ax = axis < 0 ? axis + x.dim() : axis;
                        long lead = x.shape.Take((int)ax).Aggregate(1L, (p, d) => p * d);
                        return x.reshape(lead, -1);
                    }));
                }
                case "Split": return Split(node);
                default:
                    throw new NotSupportedException($"ONNX op '{node.OpType}' (node '{node.Name}') is not supported.");
            }
        }

        private static long[] Ints(OnnxNode node, string name, int rank, long fallback)
        {
            var v = node.Ints(name);
            if (v is null || v.Length == 0) return Enumerable.Repeat(fallback, rank).ToArray();
            return v;
        }

        /// <summary>ONNX pads [x1_begin, x2_begin, x1_end, x2_end] for this input (auto_pad SAME_* resolved on its size).</summary>
        private static long[] Pads(OnnxNode node, Tensor x, long[] kernel, long[] strides, long[] dilations)
        {
            string autoPad = node.String("auto_pad") ?? "NOTSET";
            switch (autoPad)
            {
                case "" or "NOTSET":
                    var p = node.Ints("pads");
                    if (p is null || p.Length == 0) return new long[4];
                    if (p.Length != 4) throw new NotSupportedException($"{node.Display}: pads has {p.Length} values; only 2-D (4 values) is supported.");
                    return p;
                case "VALID": return new long[4];
                case "SAME_UPPER" or "SAME_LOWER":
                    var pads = new long[4];
                    for (int d = 0; d < 2; d++)
                    {
                        long size = x.shape[2 + d];
                        long outSize = (size + strides[d] - 1) / strides[d];
                        long total = Math.Max(0, (outSize - 1) * strides[d] + (kernel[d] - 1) * dilations[d] + 1 - size);
                        long small = total / 2;
                        (pads[d], pads[d + 2]) = autoPad == "SAME_UPPER" ? (small, total - small) : (total - small, small);
                    }
                    return pads;
                default: throw new NotSupportedException($"{node.Display}: auto_pad '{autoPad}' is not supported.");
            }
        }

        private static bool Symmetric(long[] pads) => pads[0] == pads[2] && pads[1] == pads[3];

        /// <summary>torch pad order: last dim first → [left, right, top, bottom].</summary>
        private static Tensor PadExplicit(Tensor x, long[] pads, double value) =>
            F.pad(x, [pads[1], pads[3], pads[0], pads[2]], PaddingModes.Constant, value);

        private static void Check2d(OnnxNode node, Tensor x)
        {
            if (x.dim() != 4) throw new NotSupportedException($"{node.Display}: only 2-D (4-D NCHW input) is supported, got [{string.Join(", ", x.shape)}].");
        }

        private Step Conv(OnnxNode node)
        {
            long group = node.Int("group", 1);
            return Make(node, One(a => ConvCore(node, a[0]!, a[1]!, a.Count > 2 ? a[2] : null, group)));
        }

        private static Tensor ConvCore(OnnxNode node, Tensor x, Tensor w, Tensor? b, long group)
        {
            Check2d(node, x);
            long[] kernel = node.Ints("kernel_shape") is { Length: 2 } k ? k : [w.shape[2], w.shape[3]];
            long[] strides = Ints(node, "strides", 2, 1);
            long[] dil = Ints(node, "dilations", 2, 1);
            long[] pads = Pads(node, x, kernel, strides, dil);
            // Channels-last input: exact on every CPU (see ChannelsLast) and the fast oneDNN path.
            if (Symmetric(pads)) return F.conv2d(Compute.ConvolutionLayout.ForEmbedding(x, w.shape[0]), w, b, strides, [pads[0], pads[1]], dil, group);
            using var padded = PadExplicit(x, pads, 0);
            return F.conv2d(Compute.ConvolutionLayout.ForEmbedding(padded, w.shape[0]), w, b, strides, [0, 0], dil, group);
        }

        /// <summary>y = x·s + t with s = scale/√(var+ε), t = bias − mean·s (per channel).</summary>
        private (double[] S, double[] T) BnAffine(OnnxNode bn)
        {
            if (bn.Int("spatial", 1) != 1) throw new NotSupportedException($"{bn.Display}: spatial = 0 (per-activation BatchNormalization) is not supported.");
            if (bn.Outputs.Skip(1).Any(o => o.Length > 0) && bn.Outputs.Count > 1)
            {
                // Training-mode outputs (running mean/var, saved stats) are never used by an inference graph; ignore.
            }
            double eps = bn.Float("epsilon", 1e-5f);
            var scale = Vector(Initializer(bn, 1, "scale"), bn);
            var bias = Vector(Initializer(bn, 2, "B"), bn);
            var mean = Vector(Initializer(bn, 3, "mean"), bn);
            var variance = Vector(Initializer(bn, 4, "var"), bn);
            int c = scale.Length;
            if (bias.Length != c || mean.Length != c || variance.Length != c)
                throw new OnnxFormatException($"{bn.Display}: scale/B/mean/var lengths differ ({c}, {bias.Length}, {mean.Length}, {variance.Length}).");
            var s = new double[c];
            var t = new double[c];
            for (int i = 0; i < c; i++)
            {
                s[i] = scale[i] / Math.Sqrt(variance[i] + eps);
                t[i] = bias[i] - mean[i] * s[i];
            }
            return (s, t);
        }

        private static float[] Vector(OnnxTensor t, OnnxNode node) =>
            t.Floats ?? throw new OnnxFormatException($"{node.Display}: '{t.Name}' is {t.DataType}, expected float.");

        private Step BatchNorm(OnnxNode bn)
        {
            var (s, t) = BnAffine(bn);
            string ks = Register(bn.Name + "#scale", torch.tensor(s.Select(v => (float)v).ToArray()).reshape(1, -1, 1, 1));
            string kt = Register(bn.Name + "#shift", torch.tensor(t.Select(v => (float)v).ToArray()).reshape(1, -1, 1, 1));
            var keys = new Dictionary<string, string>(StringComparer.Ordinal) { [bn.Name + "#scale"] = ks, [bn.Name + "#shift"] = kt };
            return new Step(bn, [bn.Inputs[0], bn.Name + "#scale", bn.Name + "#shift"], One(a =>
            {
                var x = a[0]!;
                if (x.dim() < 2) throw new NotSupportedException($"{bn.Display}: input of rank {x.dim()}.");
                var shape = Enumerable.Repeat(1L, (int)x.dim()).ToArray();
                shape[1] = -1;
                return torch.addcmul(a[2]!.reshape(shape), x, a[1]!.reshape(shape), 1);
            }), keys);
        }

        public Step FoldedConvBn(OnnxNode conv, OnnxNode bn)
        {
            var (s, t) = BnAffine(bn);
            var w = Initializer(conv, 1, "W");
            var wf = Vector(w, conv);
            long outC = w.Dims[0];
            if (outC != s.Length) throw new OnnxFormatException($"{bn.Display}: {s.Length} channels, but {conv.Display} has {outC} output channels.");
            long per = w.ElementCount / outC;
            var folded = new float[wf.Length];
            for (long o = 0; o < outC; o++)
                for (long j = 0; j < per; j++)
                    folded[o * per + j] = (float)(wf[o * per + j] * s[o]);
            float[]? convBias = conv.Inputs.Count > 2 && conv.Inputs[2].Length > 0 ? Vector(Initializer(conv, 2, "B"), conv) : null;
            var bias = new float[outC];
            for (int o = 0; o < outC; o++) bias[o] = (float)((convBias?[o] ?? 0) * s[o] + t[o]);
            string wName = conv.Name + "#W⊗" + bn.Name, bName = conv.Name + "#B⊗" + bn.Name;
            var keys = new Dictionary<string, string>(StringComparer.Ordinal)
            {
                [wName] = Register(wName, torch.tensor(folded).reshape(w.Dims)),
                [bName] = Register(bName, torch.tensor(bias)),
            };
            long group = conv.Int("group", 1);
            // The step reads the conv's data input and writes the BN's output.
            return new Step(bn, [conv.Inputs[0], wName, bName], One(a => ConvCore(conv, a[0]!, a[1]!, a[2], group)), keys);
        }

        private Step Binary(OnnxNode node)
        {
            // Legacy (opset < 7) broadcasting: broadcast = 1 with axis aligns B's dims to A starting at axis.
            bool legacy = node.Int("broadcast", 0) == 1 && node.Attributes.ContainsKey("axis");
            long axis = node.Int("axis", 0);
            Func<Tensor, Tensor, Tensor> op = node.OpType switch
            {
                "Add" => (x, y) => x + y,
                "Sub" => (x, y) => x - y,
                "Mul" => (x, y) => x * y,
                _ => (x, y) => x / y,
            };
            return Make(node, One(a =>
            {
                var x = a[0]!;
                var y = a[1] ?? throw new OnnxFormatException($"{node.Display}: missing second operand.");
                if (legacy)
                {
                    long ax = axis < 0 ? axis + x.dim() : axis;
                    var shape = Enumerable.Repeat(1L, (int)x.dim()).ToArray();
                    for (int d = 0; d < y.dim(); d++) shape[ax + d] = y.shape[d];
                    return op(x, y.reshape(shape));
                }
                return op(x, y);
            }));
        }

        private Step Pool(OnnxNode node)
        {
            bool max = node.OpType == "MaxPool";
            if (max && node.Outputs.Count > 1 && node.Outputs[1].Length > 0)
                throw new NotSupportedException($"{node.Display}: the MaxPool Indices output is not supported.");
            var kernel = node.Ints("kernel_shape") ?? throw new OnnxFormatException($"{node.Display}: no kernel_shape.");
            if (kernel.Length != 2) throw new NotSupportedException($"{node.Display}: only 2-D pooling is supported (kernel_shape [{string.Join(", ", kernel)}]).");
            long[] strides = Ints(node, "strides", 2, 1);
            long[] dil = Ints(node, "dilations", 2, 1);
            bool ceil = node.Int("ceil_mode", 0) == 1;
            bool includePad = node.Int("count_include_pad", 0) == 1;
            if (!max && dil.Any(d => d != 1)) throw new NotSupportedException($"{node.Display}: AveragePool with dilations is not supported.");
            return Make(node, One(a =>
            {
                var x = a[0]!;
                Check2d(node, x);
                long[] pads = Pads(node, x, kernel, strides, dil);
                bool native = Symmetric(pads) && pads[0] * 2 <= kernel[0] && pads[1] * 2 <= kernel[1];
                if (max)
                {
                    if (native) return F.max_pool2d(x, kernel, strides, [pads[0], pads[1]], dil, ceil);
                    using var padded = PadExplicit(x, pads, double.NegativeInfinity);
                    return F.max_pool2d(padded, kernel, strides, [0, 0], dil, ceil);
                }
                if (native) return F.avg_pool2d(x, kernel, strides, [pads[0], pads[1]], ceil, includePad);
                using var xp = PadExplicit(x, pads, 0);
                var sum = F.avg_pool2d(xp, kernel, strides, [0, 0], ceil, true);
                if (includePad) return sum;
                using var ones = torch.ones([1, 1, x.shape[2], x.shape[3]], x.dtype, x.device);
                using var onesPadded = PadExplicit(ones, pads, 0);
                using var fraction = F.avg_pool2d(onesPadded, kernel, strides, [0, 0], ceil, true);
                using (sum) return sum / fraction;
            }));
        }

        private Step Split(OnnxNode node)
        {
            long axis = node.Int("axis", 0);
            long[]? sizes = node.Ints("split");
            if ((sizes is null || sizes.Length == 0) && node.Inputs.Count > 1 && node.Inputs[1].Length > 0)
                sizes = Initializer(node, 1, "split").Int64s ?? throw new OnnxFormatException($"{node.Display}: split sizes must be integers.");
            int n = node.Outputs.Count;
            var step = new Step(node, [node.Inputs[0]], a =>
            {
                var x = a[0]!;
                long ax = axis < 0 ? axis + x.dim() : axis;
                long[] s = sizes is { Length: > 0 } ? sizes : Enumerable.Repeat(x.shape[ax] / n, n).ToArray();
                if (s.Sum() != x.shape[ax]) throw new OnnxFormatException($"{node.Display}: split sizes [{string.Join(", ", s)}] do not add up to {x.shape[ax]}.");
                return x.split(s, ax);
            }, new Dictionary<string, string>());
            return step;
        }
    }
}
