using Backprop.IO;

namespace Backprop.Tests.Data;

public class AtomicFileTests
{
    [Fact]
    public void WritesReplacesAndLeavesNoTempFiles()
    {
        using var tmp = new TempDir();
        var p = tmp.File("out.txt");
        AtomicFile.WriteAllText(p, "hello ü");
        Assert.Equal("hello ü", File.ReadAllText(p));
        Assert.Equal((byte)'h', File.ReadAllBytes(p)[0]); // no BOM
        AtomicFile.WriteAllBytes(p, [1, 2, 3]);
        Assert.Equal(new byte[] { 1, 2, 3 }, File.ReadAllBytes(p));
        AtomicFile.WriteAllLines(p, ["a", "b"]);
        Assert.Equal("a\nb\n", File.ReadAllText(p));
        AtomicFile.Write(p, s => s.Write("xyz"u8));
        Assert.Equal("xyz", File.ReadAllText(p));
        Assert.Equal(new[] { p }, Directory.GetFiles(tmp.Path));
    }

    [Fact]
    public void FailureKeepsTheOldFileAndRemovesTheTemp()
    {
        using var tmp = new TempDir();
        var p = tmp.File("model.safetensors");
        File.WriteAllText(p, "old");
        var ex = Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(p, s =>
        {
            s.Write("partial"u8);
            throw new InvalidOperationException("boom");
        }));
        Assert.Equal("boom", ex.Message);
        Assert.Equal("old", File.ReadAllText(p));
        Assert.Equal(new[] { p }, Directory.GetFiles(tmp.Path));
        var missing = Assert.Throws<DirectoryNotFoundException>(() => AtomicFile.WriteAllText(tmp.File("no/such/dir.txt"), "x"));
        // the message names the file asked for and its missing directory, not the temporary file
        Assert.Contains(tmp.File("no/such/dir.txt"), missing.Message);
        Assert.Contains("does not exist", missing.Message);
        Assert.DoesNotContain(".tmp", missing.Message);
    }

    [Fact]
    public void RelativePathsWork()
    {
        using var tmp = new TempDir();
        var old = Environment.CurrentDirectory;
        // Not changing the process's current directory (tests run in parallel): use a relative path from it instead.
        var rel = Path.GetRelativePath(old, tmp.File("r.txt"));
        AtomicFile.WriteAllText(rel, "r");
        Assert.Equal("r", File.ReadAllText(tmp.File("r.txt")));
    }
}
