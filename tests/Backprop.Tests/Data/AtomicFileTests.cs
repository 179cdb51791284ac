using Backprop.IO;
using Backprop.Tests.Cli;
using Backprop.Tests.Training;

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

    /// <summary>
    /// `--out` naming a symbolic link replaces the file it names and keeps the link; one naming something that is not
    /// a file (a named pipe; as root also /dev/null or /dev/stdout, which the rename replaced with a regular file) is
    /// written in place.
    /// </summary>
    [Fact]
    public async Task ALinkIsFollowedAndAPipeIsWrittenInPlace()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp.File("real.txt"), "old");
        File.CreateSymbolicLink(tmp.File("link.txt"), "real.txt");
        AtomicFile.WriteAllText(tmp.File("link.txt"), "new");
        Assert.Equal("real.txt", new FileInfo(tmp.File("link.txt")).LinkTarget);
        Assert.Equal("new", File.ReadAllText(tmp.File("real.txt")));

        string fifo = tmp.File("pipe");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", [fifo])!)
        {
            await mkfifo.WaitForExitAsync();
            Assert.Equal(0, mkfifo.ExitCode);
        }
        // read and write ends at once (opening a pipe for reading alone waits for a writer)
        using var pipe = new FileStream(fifo, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite, 1);
        AtomicFile.WriteAllText(fifo, "through the pipe");
        var buffer = new byte[64];
        var read = Task.Factory.StartNew(() => pipe.Read(buffer), TaskCreationOptions.LongRunning);
        if (await Task.WhenAny(read, Task.Delay(TimeSpan.FromSeconds(30))) != read)
        {
            pipe.Write("!"u8);   // ends the read that nothing else would
            Assert.Fail("nothing came through the pipe");
        }
        Assert.Equal("through the pipe", System.Text.Encoding.UTF8.GetString(buffer, 0, await read));
        Assert.Equal(["link.txt", "pipe", "real.txt"], Directory.GetFileSystemEntries(tmp.Path).Select(Path.GetFileName).Order());
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
    public void ADirectoryIsRefusedBeforeAnythingIsWritten()
    {
        using var tmp = new TempDir();
        var dir = tmp.File("out");
        Directory.CreateDirectory(dir);
        bool wrote = false;
        var ex = Assert.Throws<ArgumentException>(() => AtomicFile.Write(dir, s => { wrote = true; s.Write("x"u8); }));
        Assert.Equal($"{dir} is a directory, not a file", ex.Message);
        Assert.False(wrote);
        Assert.True(Directory.Exists(dir));
        Assert.Empty(Directory.GetFiles(tmp.Path));   // no temporary file left beside it
        Assert.Throws<ArgumentException>(() => AtomicFile.WriteAllText(tmp.Path, "x"));
        Assert.Throws<ArgumentException>(() => AtomicFile.WriteAllBytes(Path.GetRelativePath(Environment.CurrentDirectory, dir), [1]));
    }

    [Fact]
    public void ExportToADirectoryIsOneLineAndExit2()
    {
        using var tmp = new TempDir();
        var model = tmp.File("m.safetensors");
        Backprop.Models.Model.Build().Input(4).Dense(8, "relu").Output(3).Seed(1).ForClassification().Save(model);
        var r = Backprop.Tests.Cli.CliRunner.Run("export", "--model", model, "--onnx", tmp.Path);
        Assert.Equal(2, r.ExitCode);
        Assert.Equal($"backprop: {tmp.Path} is a directory, not a file", r.Stderr.Trim());
        Assert.Equal([model], Directory.GetFiles(tmp.Path));
    }

    /// <summary>
    /// A file system that refuses the write is said of the destination, with the reason: .NET's own words named the
    /// temporary file ("No space left on device : '/dev/full'", "Could not find file '/proc/.version.3f2a….tmp'"), and
    /// the CLI called it an internal error (exit 1).
    /// </summary>
    [Fact]
    public void AWriteTheFileSystemRefusesNamesTheDestinationAndTheReason()
    {
        var full = Assert.Throws<IOException>(() => AtomicFile.WriteAllText("/dev/full", "x"));
        Assert.Equal("cannot write /dev/full: no space left on device", full.Message);
        var proc = Assert.ThrowsAny<IOException>(() => AtomicFile.WriteAllText("/proc/version", "x"));
        Assert.Equal("cannot write /proc/version: its directory takes no new files", proc.Message);
        var r = CliRunner.Run("train", "--data", CliRunner.DataPath("tabular", "iris.csv"), "--epochs", "1", "--quiet", "--out", "/dev/full");
        TrainingAssert.UsageError(r, "cannot write /dev/full: no space left on device");
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
