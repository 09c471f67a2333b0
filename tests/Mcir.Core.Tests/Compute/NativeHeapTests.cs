using Mcir.Core.Compute;
using Xunit;
using static TorchSharp.torch;

namespace Mcir.Core.Tests.Compute;

public class NativeHeapTests
{
    private static Dictionary<string, string?> Env(params (string Key, string Value)[] vars) =>
        vars.ToDictionary(v => v.Key, v => (string?)v.Value, StringComparer.Ordinal);

    [Fact]
    public void Applies_on_glibc_unless_the_user_set_a_malloc_variable_or_chose_the_default()
    {
        Assert.Null(NativeHeap.ReasonToKeepDefaults(Env(("PATH", "/bin")), glibc: true));
        Assert.Null(NativeHeap.ReasonToKeepDefaults(Env(("MCIR_NATIVE_HEAP", "kept")), glibc: true));
        Assert.Equal("MALLOC_ARENA_MAX set by the environment", NativeHeap.ReasonToKeepDefaults(Env(("MALLOC_ARENA_MAX", "2")), glibc: true));
        Assert.Equal("MCIR_NATIVE_HEAP=default", NativeHeap.ReasonToKeepDefaults(Env(("MCIR_NATIVE_HEAP", "Default")), glibc: true));
        Assert.Equal("not glibc", NativeHeap.ReasonToKeepDefaults(Env(), glibc: false));
        var e = Assert.Throws<McirException>(() => NativeHeap.ReasonToKeepDefaults(Env(("MCIR_NATIVE_HEAP", "off")), glibc: true));
        Assert.Equal("MCIR_NATIVE_HEAP: expected 'kept' or 'default', got 'off'", e.Message);
    }

    [Fact]
    public void This_process_has_the_settings_the_environment_asks_for()
    {
        NativeHeap.EnsureApplied();
        Assert.Null(NativeHeap.ConfigurationError);
        if (!OperatingSystem.IsLinux()) return;
        var env = Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
            .ToDictionary(x => (string)x.Key, x => (string?)x.Value, StringComparer.Ordinal);
        bool expected = NativeHeap.ReasonToKeepDefaults(env, glibc: true) is null && File.Exists("/lib/x86_64-linux-gnu/libc.so.6");
        if (expected) Assert.True(NativeHeap.Kept, NativeHeap.Note);
        Assert.Contains(NativeHeap.Kept ? "kept between steps" : "glibc defaults", NativeHeap.Note, StringComparison.Ordinal);
    }

    [Fact]
    public void ReservedBytes_CountsWhatATensorHolds()
    {
        if (!File.Exists("/lib/x86_64-linux-gnu/libc.so.6")) { Assert.Null(NativeHeap.ReservedBytes()); return; }
        using var held = ones(32L << 20); // 128 MB, written
        long? reserved = NativeHeap.ReservedBytes();
        Assert.NotNull(reserved);
        Assert.True(reserved >= 128L << 20, $"{reserved} bytes held while a 128 MB tensor lives");
    }
}
