using Mcir.Abstractions.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mcir.Plugins.SuperResolution;

/// <summary>
/// EDSR (Lim et al., "Enhanced Deep Residual Networks for Single Image Super-Resolution", CVPRW 2017), a port of
/// BasicSR's <c>basicsr/archs/edsr_arch.py</c> with the same module tree, so BasicSR/MCIR checkpoints load by name:
/// <c>conv_first</c>, <c>body.{i}.conv1</c>/<c>conv2</c>, <c>conv_after_body</c>, <c>upsample.{0,2,…}</c> (conv +
/// PixelShuffle pairs), <c>conv_last</c>.
/// </summary>
/// <remarks>
/// <para>Forward, as BasicSR: <c>x = (x − mean)·img_range; x = conv_first(x); res = conv_after_body(body(x)) + x;
/// y = conv_last(upsample(res)) / img_range + mean</c>. Input [N, C, h, w] in [0, 1], output [N, C, s·h, s·w].</para>
/// <para>The mean is a plain tensor, not a buffer: like BasicSR's <c>self.mean</c> it is not in the state dict, and it
/// follows the input's dtype and device at every call.</para>
/// </remarks>
[McirModel("edsr", Tasks = new[] { "sr" }, Description = "EDSR (Lim et al., 2017), BasicSR layout; presets edsr (256/32, res 0.1) and edsr-light (64/16)")]
public sealed partial class Edsr : nn.Module<Tensor, Tensor>
{
    // Field names are the state_dict names (BasicSR's attribute names); RegisterComponents() registers them.
    private readonly Conv2d conv_first;
    private readonly Sequential body;
    private readonly Conv2d conv_after_body;
    private readonly Sequential upsample;
    private readonly Conv2d conv_last;

    // Not a field of type Tensor, so RegisterComponents() does not turn it into a buffer.
    private readonly float[] _mean;

    /// <summary>Builds an EDSR with fresh PyTorch-default initialisation.</summary>
    /// <param name="options">The configuration; see <see cref="EdsrOptions"/>.</param>
    /// <exception cref="ArgumentException">The options are invalid (e.g. an unsupported <see cref="EdsrOptions.Upscale"/>).</exception>
    public Edsr(EdsrOptions options) : base("EDSR")
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        options.Validate();

        int feat = options.NumFeat;
        _mean = options.RgbMean.Select(static v => (float)v).ToArray();
        conv_first = nn.Conv2d(options.NumInChannels, feat, 3, stride: 1, padding: 1);
        body = nn.Sequential(Enumerable.Range(0, options.NumBlock)
            .Select(_ => (nn.Module<Tensor, Tensor>)new ResidualBlockNoBN(feat, options.ResScale))
            .ToArray());
        conv_after_body = nn.Conv2d(feat, feat, 3, stride: 1, padding: 1);
        upsample = Upsample.Build(options.Upscale, feat);
        conv_last = nn.Conv2d(feat, options.NumOutChannels, 3, stride: 1, padding: 1);
        RegisterComponents();
    }

    /// <summary>Named configurations: <c>"edsr"</c> = the paper's EDSR (<c>new EdsrOptions()</c>), <c>"edsr-light"</c> = <see cref="EdsrOptions.Light"/>.</summary>
    public static IReadOnlyDictionary<string, EdsrOptions> Presets { get; } =
        new System.Collections.ObjectModel.ReadOnlyDictionary<string, EdsrOptions>(new Dictionary<string, EdsrOptions>(StringComparer.Ordinal)
        {
            ["edsr"] = new EdsrOptions(),
            ["edsr-light"] = EdsrOptions.Light,
        });

    /// <summary>The options this network was built from.</summary>
    public EdsrOptions Options { get; }

    /// <inheritdoc />
    public override Tensor forward(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.dim() != 4 || input.shape[1] != Options.NumInChannels)
            throw new ArgumentException(
                $"EDSR expects a [N, {Options.NumInChannels}, H, W] input, got [{string.Join(", ", input.shape)}].", nameof(input));

        using var scope = NewDisposeScope();
        var mean = tensor(_mean, dtype: input.dtype, device: input.device).view(1, _mean.Length, 1, 1);
        var x = conv_first.call((input - mean).mul_(Options.ImgRange));
        var res = conv_after_body.call(body.call(x));
        res.add_(x);
        var y = conv_last.call(upsample.call(res)).div_(Options.ImgRange).add_(mean);
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>BasicSR's <c>ResidualBlockNoBN</c>: <c>x + conv2(relu(conv1(x)))·res_scale</c> (PyTorch-default init, as EDSR asks).</summary>
    private sealed class ResidualBlockNoBN : nn.Module<Tensor, Tensor>
    {
        private readonly Conv2d conv1;
        private readonly Conv2d conv2;
        private readonly double _resScale;

        public ResidualBlockNoBN(int feat, double resScale) : base(nameof(ResidualBlockNoBN))
        {
            conv1 = nn.Conv2d(feat, feat, 3, stride: 1, padding: 1);
            conv2 = nn.Conv2d(feat, feat, 3, stride: 1, padding: 1);
            _resScale = resScale;
            RegisterComponents();
        }

        public override Tensor forward(Tensor x)
        {
            using var scope = NewDisposeScope();
            // In place where autograd allows it (a convolution's backward needs its input, not its output): the same
            // values as BasicSR's out-of-place code without its temporaries; ×1 is skipped (EDSR-light's res_scale).
            var h = conv1.call(x).relu_();
            var r = conv2.call(h);
            if (_resScale != 1.0) r.mul_(_resScale);
            return r.add_(x).MoveToOuterDisposeScope();
        }
    }
}
