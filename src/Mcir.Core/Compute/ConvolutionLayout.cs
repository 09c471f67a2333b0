using System.Text.Json.Serialization;
using static TorchSharp.torch;

namespace Mcir.Core.Compute;

/// <summary>PyTorch's memory formats of a 4-D image batch (<c>torch.channels_last</c>, <c>torch.contiguous_format</c>).</summary>
public enum MemoryFormat
{
    /// <summary>NHWC strides (<c>torch.channels_last</c>): the engine's default.</summary>
    [JsonStringEnumMemberName("channels_last")] ChannelsLast,
    /// <summary>Dense NCHW strides (<c>torch.contiguous_format</c>).</summary>
    [JsonStringEnumMemberName("contiguous")] Contiguous,
}

/// <summary>
/// The memory format the convolutions of each kind of network take in this process: the restoration networks (target,
/// negatives, target EMA, inference: <see cref="Model"/>) and the contrastive terms' embedding φ (<see cref="Embedding"/>).
/// Which is faster depends on the CPU and the network (measured: EDSR-light's training step 13 % faster in NCHW under
/// oneDNN's AVX2 kernels, VGG16's 20 % faster channels-last under its AVX-512 kernels), so the host measures it per
/// machine and workload (<see cref="IsaProbe"/>) and applies the choice with <see cref="Apply"/>; the user can fix it
/// with <c>MCIR_MEMORY_FORMAT</c> (<c>channels_last</c> | <c>contiguous</c>, or per network:
/// <c>model=contiguous,embedding=channels_last</c>).
/// </summary>
/// <remarks>
/// Contiguous is used only where it is correct: a convolution whose input has more than 16 channels, not a multiple of
/// 16, takes channels-last whatever the setting (libtorch 2.10's oneDNN fault described in <see cref="ChannelsLast"/>),
/// and so does one whose output channels are not a multiple of 16 (the same fault in the backward pass: oneDNN's
/// blocked NCHW gradient of the input of EDSR's 64 → 3 <c>conv_last</c> is wrong or NaN under its AVX2 and AVX-512
/// kernels, while its forward pass and weight gradient are right; measured on AMD Zen 5, agreeing under AVX/SSE4.1
/// kernels and in channels-last). A contiguous input is given dense strides on every dimension, size-1 ones included.
/// </remarks>
public static class ConvolutionLayout
{
    /// <summary>Environment variable that fixes the formats (and keeps the probe from measuring them).</summary>
    public const string Variable = "MCIR_MEMORY_FORMAT";

    /// <summary>Format of the restoration networks' convolution inputs.</summary>
    public static MemoryFormat Model { get; private set; } = MemoryFormat.ChannelsLast;

    /// <summary>Format of the embedding networks' convolution inputs.</summary>
    public static MemoryFormat Embedding { get; private set; } = MemoryFormat.ChannelsLast;

    /// <summary>True when <see cref="Variable"/> set the formats.</summary>
    public static bool SetByUser { get; private set; }

    /// <summary>Why <see cref="Variable"/> could not be read (one line naming it), or null.</summary>
    public static string? ConfigurationError { get; private set; }

    static ConvolutionLayout()
    {
        if (Environment.GetEnvironmentVariable(Variable) is not { Length: > 0 } value) return;
        if (Parse(value, out var model, out var embedding, out var error)) { Model = model; Embedding = embedding; SetByUser = true; }
        else ConfigurationError = error;
    }

    /// <summary>One phrase for the run log and <c>bench</c>.</summary>
    public static string Note => $"memory format: model {Name(Model)}, embedding {Name(Embedding)}{(SetByUser ? $" (set by {Variable})" : "")}";

    /// <summary>The value's name as PyTorch spells it.</summary>
    public static string Name(MemoryFormat f) => f == MemoryFormat.ChannelsLast ? "channels_last" : "contiguous";

    /// <summary>
    /// Reads a <see cref="Variable"/> value: one format for both networks, or <c>model=…,embedding=…</c> (either may be
    /// left out; it stays channels-last).
    /// </summary>
    public static bool Parse(string value, out MemoryFormat model, out MemoryFormat embedding, out string? error)
    {
        ArgumentNullException.ThrowIfNull(value);
        model = embedding = MemoryFormat.ChannelsLast;
        error = null;
        if (!value.Contains('='))
        {
            if (ParseOne(value, out model)) { embedding = model; return true; }
            error = $"{Variable}: expected 'channels_last', 'contiguous' or 'model=…,embedding=…', got '{value}'";
            return false;
        }
        foreach (var part in value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var kv = part.Split('=', 2, StringSplitOptions.TrimEntries);
            bool ok = kv.Length == 2 && kv[0] switch
            {
                "model" => ParseOne(kv[1], out model),
                "embedding" => ParseOne(kv[1], out embedding),
                _ => false,
            };
            if (!ok)
            {
                error = $"{Variable}: expected 'model=<format>' or 'embedding=<format>' with channels_last or contiguous, got '{part}'";
                return false;
            }
        }
        return true;
    }

    private static bool ParseOne(string s, out MemoryFormat f)
    {
        switch (s.Trim().ToLowerInvariant())
        {
            case "channels_last": f = MemoryFormat.ChannelsLast; return true;
            case "contiguous": f = MemoryFormat.Contiguous; return true;
            default: f = MemoryFormat.ChannelsLast; return false;
        }
    }

    /// <summary>The value of <see cref="Variable"/> that gives these formats (what a probe child is started with).</summary>
    public static string Format(MemoryFormat model, MemoryFormat embedding) => $"model={Name(model)},embedding={Name(embedding)}";

    /// <summary>Sets both formats (the probe's choice). Takes effect for the next convolution.</summary>
    public static void Apply(MemoryFormat model, MemoryFormat embedding)
    {
        if (SetByUser) throw new InvalidOperationException($"the user's {Variable} is not replaced");
        Model = model;
        Embedding = embedding;
    }

    /// <summary>
    /// A restoration network's convolution input in <see cref="Model"/>'s format ([B, C, H, W]; other ranks as they are).
    /// <paramref name="outChannels"/>: the output channels of the convolution it is for (0 for a network's input).
    /// </summary>
    public static Tensor ForModel(Tensor x, long outChannels = 0) => For(x, Model, outChannels);

    /// <summary>An embedding network's convolution input in <see cref="Embedding"/>'s format (<paramref name="outChannels"/> as in <see cref="ForModel"/>).</summary>
    public static Tensor ForEmbedding(Tensor x, long outChannels = 0) => For(x, Embedding, outChannels);

    /// <summary>
    /// <paramref name="x"/> [B, C, H, W] with <paramref name="format"/>'s strides (itself when it has them, else a
    /// copy); channels-last regardless when C &gt; 16 and C is not a multiple of 16, or when the convolution's
    /// <paramref name="outChannels"/> (0: not known) is not a multiple of 16 (see the remarks).
    /// </summary>
    public static Tensor For(Tensor x, MemoryFormat format, long outChannels = 0)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.dim() != 4) return x;
        if (format == MemoryFormat.ChannelsLast || (GuardContiguous && !ContiguousIsCorrect(x.shape[1], outChannels))) return ChannelsLast.Of(x);
        if (IsDenseContiguous(x)) return x;
        var dense = empty(x.shape, x.dtype, x.device);
        dense.copy_(x);
        return dense;
    }

    /// <summary>
    /// True while the <see cref="ContiguousIsCorrect"/> rule is applied: unless this process corrected oneDNN's cache
    /// sizes (<see cref="OneDnnCacheSizes"/>), since the faults behind the rule were oneDNN blocking for 1-byte caches
    /// (with the sizes corrected, contiguous convolutions of every channel count agree with float64 to float32 rounding).
    /// </summary>
    internal static bool GuardContiguous
    {
        get => guardContiguous ?? !OneDnnCacheSizes.Corrected; // read when used: the correction is made at start-up
        set => guardContiguous = value;
    }

    private static bool? guardContiguous;

    /// <summary>
    /// False where libtorch 2.10's oneDNN computes a contiguous (blocked NCHW) convolution wrongly: more than 16 input
    /// channels not a multiple of 16, or output channels (when known: &gt; 0) not a multiple of 16.
    /// </summary>
    public static bool ContiguousIsCorrect(long inChannels, long outChannels) =>
        !(inChannels > 16 && inChannels % 16 != 0) && !(outChannels > 0 && outChannels % 16 != 0);

    /// <summary>True when every stride of <paramref name="t"/>, size-1 dimensions included, is the dense NCHW one.</summary>
    public static bool IsDenseContiguous(Tensor t)
    {
        var s = t.stride();
        long expected = 1;
        for (int d = (int)t.dim() - 1; d >= 0; d--)
        {
            if (s[d] != expected) return false;
            expected *= t.shape[d];
        }
        return true;
    }
}
