using Backprop.Nn;

namespace Backprop.Tests.Training;

/// <summary>A temporary directory removed (best effort) on dispose.</summary>
public sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"backprop-train-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        for (int attempt = 0; attempt < 5; attempt++)
        {
            try
            {
                if (Directory.Exists(Path)) Directory.Delete(Path, recursive: true);
                return;
            }
            catch (IOException) { Thread.Sleep(100); }
            catch (UnauthorizedAccessException) { Thread.Sleep(100); }
        }
    }
}

internal static class TrainingAssert
{
    /// <summary>Every parameter of <paramref name="a"/> and <paramref name="b"/> has the same shape and the same bits.</summary>
    public static void BitIdentical<T>(Sequential<T> a, Sequential<T> b) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        Assert.True(SameBits(a, b), "the networks' parameters differ");
    }

    public static bool SameBits<T>(Sequential<T> a, Sequential<T> b) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        var pa = a.Parameters().ToArray();
        var pb = b.Parameters().ToArray();
        if (pa.Length != pb.Length) return false;
        for (int i = 0; i < pa.Length; i++)
        {
            if (!pa[i].Value.SameShape(pb[i].Value)) return false;
            var sa = System.Runtime.InteropServices.MemoryMarshal.AsBytes(pa[i].Value.Data);
            var sb = System.Runtime.InteropServices.MemoryMarshal.AsBytes(pb[i].Value.Data);
            if (!sa.SequenceEqual(sb)) return false;
        }
        return true;
    }

    /// <summary>A CLI failure from bad input: exit code 2, exactly one line on stderr, no stack trace.</summary>
    public static void UsageError(Backprop.Tests.Cli.CliRunner.Result r, string? contains = null)
    {
        Assert.True(r.ExitCode == 2, $"exit code {r.ExitCode}, stderr: {r.Stderr}");
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.True(lines.Length == 1, $"expected one stderr line, got {lines.Length}: {r.Stderr}");
        Assert.StartsWith("backprop: ", lines[0]);
        Assert.DoesNotContain("   at ", r.Stderr);
        Assert.DoesNotContain("Exception", r.Stderr);
        if (contains is not null) Assert.Contains(contains, lines[0]);
    }
}
