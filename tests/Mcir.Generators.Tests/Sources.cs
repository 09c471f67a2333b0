namespace Mcir.Generators.Tests;

/// <summary>Input sources shared by the tests.</summary>
internal static class Sources
{
    public const string Usings = """
        using Mcir.Abstractions.Models;
        using TorchSharp;
        using static TorchSharp.torch;

        """;

    /// <summary>A valid model with a positional options record (all parameters have defaults).</summary>
    public const string TinyNet = Usings + """
        namespace Demo.Sr;

        public sealed record TinyOptions(int Features = 8, int Scale = 2);

        [McirModel("tiny-net", Tasks = new[] { "sr" }, Description = "A tiny network for tests")]
        public sealed partial class TinyNet : nn.Module<Tensor, Tensor>
        {
            private readonly nn.Module<Tensor, Tensor> body;

            public TinyNet(TinyOptions options) : base("tiny-net")
            {
                Options = options;
                body = nn.Conv2d(3, options.Features, 3, padding: 1);
                RegisterComponents();
            }

            public TinyOptions Options { get; }

            public override Tensor forward(Tensor input) => body.forward(input);
        }
        """;

    /// <summary>A valid model that is not tile-safe (its output depends on the mean of the whole input).</summary>
    public const string GlobalPoolNet = Usings + """
        namespace Demo.Dehaze;

        public sealed record PoolOptions(int Channels = 3);

        [McirModel("pool-net", Tasks = new[] { "dehaze" }, TileSafe = false, TileSafetyNote = "global average pooling in its \"attention\"")]
        public sealed partial class PoolNet : nn.Module<Tensor, Tensor>
        {
            public PoolNet(PoolOptions options) : base("pool-net")
            {
                Options = options;
            }

            public PoolOptions Options { get; }

            public override Tensor forward(Tensor input) => input * input.mean(new long[] { 2, 3 }, keepdim: true);
        }
        """;

    /// <summary>A second valid model, in another namespace, with a class options type and no tasks.</summary>
    public const string Denoiser = Usings + """
        namespace Demo.Denoise;

        public sealed class DenoiserOptions
        {
            public int Channels { get; init; } = 3;
        }

        [McirModel("denoiser-lite", Tasks = new[] { "denoise", "jpeg-car" })]
        internal partial class Denoiser : nn.Module<Tensor, Tensor>
        {
            public Denoiser(DenoiserOptions options) : base("denoiser")
            {
                Options = options;
            }

            internal DenoiserOptions Options { get; }

            public override Tensor forward(Tensor input) => input;
        }
        """;

    /// <summary>An unrelated file, for the incrementality test.</summary>
    public const string Unrelated = """
        namespace Demo.Other;

        public static class Helpers
        {
            public static int Twice(int x) => 2 * x;
        }
        """;

    /// <summary>A model class body (inside namespace Demo) with the given declaration line, for diagnostic tests.</summary>
    public static string Model(string attribute, string declaration, string? body = null) => Usings + $$"""
        namespace Demo;

        public sealed record Opts(int Features = 8);

        {{attribute}}
        {{declaration}}
        {
        {{body ?? DefaultBody}}
        }
        """;

    public const string DefaultBody = """
            public M(Opts options) : base("m") { Options = options; }
            public Opts Options { get; }
            public override Tensor forward(Tensor input) => input;
        """;
}
