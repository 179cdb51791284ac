using System.IO.Compression;
using Backprop.Data;

namespace Backprop.Tests.Data;

/// <summary>Locates the repository's data/ folder and makes scratch directories.</summary>
internal static class TestData
{
    private static readonly Lazy<string> Root = new(() =>
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null)
        {
            if (Directory.Exists(Path.Combine(dir.FullName, "data", "mnist"))) return dir.FullName;
            dir = dir.Parent;
        }
        throw new InvalidOperationException("cannot find the repository's data/ folder above " + AppContext.BaseDirectory);
    });

    public static string RepoRoot => Root.Value;
    public static string Path_(params string[] parts) => Path.Combine([RepoRoot, "data", .. parts]);
    public static string MnistDir => Path_("mnist");
    public static string Tabular(string file) => Path_("tabular", file);
    public static string TorchModel(string file) => Path_("torch-models", file);

    private static readonly Lazy<MnistDataset> MnistLazy = new(() => MnistDataset.Load(MnistDir));
    public static MnistDataset Mnist => MnistLazy.Value;

    public static byte[] Gunzip(string path)
    {
        using var gz = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        using var ms = new MemoryStream();
        gz.CopyTo(ms);
        return ms.ToArray();
    }

    public static byte[] Gzip(byte[] data)
    {
        using var ms = new MemoryStream();
        using (var gz = new GZipStream(ms, CompressionLevel.Fastest, leaveOpen: true)) gz.Write(data);
        return ms.ToArray();
    }
}

/// <summary>A temporary directory removed on dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "backprop-data-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }
    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
