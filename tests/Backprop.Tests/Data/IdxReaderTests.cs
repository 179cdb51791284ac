using System.Buffers.Binary;
using System.Diagnostics;
using Backprop.Data;
using Backprop.IO;

namespace Backprop.Tests.Data;

public class IdxReaderTests
{
    internal static byte[] MakeImages(int count, int rows, int cols, Func<int, byte>? pixel = null)
    {
        var b = new byte[16 + count * rows * cols];
        BinaryPrimitives.WriteInt32BigEndian(b, IdxReader.ImagesMagic);
        BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(4), count);
        BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(8), rows);
        BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(12), cols);
        for (int i = 16; i < b.Length; i++) b[i] = pixel?.Invoke(i - 16) ?? (byte)((i * 37) & 0xFF);
        return b;
    }

    internal static byte[] MakeLabels(params byte[] labels)
    {
        var b = new byte[8 + labels.Length];
        BinaryPrimitives.WriteInt32BigEndian(b, IdxReader.LabelsMagic);
        BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(4), labels.Length);
        labels.CopyTo(b, 8);
        return b;
    }

    [Fact]
    public void LoadsRealMnist()
    {
        var sw = Stopwatch.StartNew();
        var m = TestData.Mnist;
        sw.Stop();
        Assert.Equal(60000, m.Train.Count);
        Assert.Equal(10000, m.Test.Count);
        Assert.Equal(28, m.Rows);
        Assert.Equal(28, m.Cols);
        Assert.Equal(784, m.Train.FeatureCount);
        Assert.Equal(60000 * 784, m.Train.Features.Length);
        Assert.Equal(new[] { 7, 2, 1, 0, 4 }, m.Test.Labels[..5]);
        Assert.Equal(new[] { 5, 0, 4, 1, 9 }, m.Train.Labels[..5]);
        float min = float.MaxValue, max = float.MinValue;
        foreach (var v in m.Test.Features) { min = Math.Min(min, v); max = Math.Max(max, v); }
        Assert.Equal(0f, min);
        Assert.Equal(1f, max);
        Assert.All(m.Train.Labels, l => Assert.InRange(l, 0, 9));
        // Each class appears; pixel mean of MNIST train is ≈ 0.1307.
        Assert.Equal(10, m.Train.Labels.Distinct().Count());
        double mean = m.Train.Features.Average(v => (double)v);
        Assert.InRange(mean, 0.1300, 0.1314);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"loading MNIST took {sw.Elapsed}");
    }

    [Fact]
    public void RawAndGzippedGiveTheSameResult()
    {
        using var tmp = new TempDir();
        var imagesGz = Path.Combine(TestData.MnistDir, "t10k-images-idx3-ubyte.gz");
        var labelsGz = Path.Combine(TestData.MnistDir, "t10k-labels-idx1-ubyte.gz");
        var rawImages = tmp.File("images.bin");
        var rawLabels = tmp.File("labels.gz"); // a raw file with a misleading extension: detection is by magic
        File.WriteAllBytes(rawImages, TestData.Gunzip(imagesGz));
        File.WriteAllBytes(rawLabels, TestData.Gunzip(labelsGz));

        var a = IdxReader.ReadImages(imagesGz);
        var b = IdxReader.ReadImages(rawImages);
        Assert.Equal((10000, 28, 28), (b.Count, b.Rows, b.Cols));
        Assert.Equal(a.Pixels, b.Pixels);
        Assert.Equal(IdxReader.ReadLabels(labelsGz), IdxReader.ReadLabels(rawLabels));
        Assert.Equal(IdxReader.ReadLabelBytes(labelsGz)[..5], new byte[] { 7, 2, 1, 0, 4 });
        var t = b.ToTensor();
        Assert.Equal(new[] { 10000, 784 }, t.ShapeArray);
    }

    [Fact]
    public void MnistDirectoryWithRawFiles()
    {
        using var tmp = new TempDir();
        foreach (var f in new[] { "train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte" })
            File.Copy(Path.Combine(TestData.MnistDir, f + ".gz"), tmp.File(f + ".gz"));
        // Small raw image files whose counts match the labels: use synthetic ones.
        int nTrain = IdxReader.ReadLabels(tmp.File("train-labels-idx1-ubyte.gz")).Length;
        File.WriteAllBytes(tmp.File("train-images-idx3-ubyte"), MakeImages(nTrain, 2, 3));
        File.WriteAllBytes(tmp.File("t10k-images-idx3-ubyte"), MakeImages(10000, 2, 3));
        var m = MnistDataset.Load(tmp.Path);
        Assert.Equal(6, m.Train.FeatureCount);
        Assert.Equal(10000, m.Test.Count);
    }

    [Fact]
    public void PixelsAreBytesOver255()
    {
        var img = IdxReader.ParseImages(MakeImages(2, 2, 2, i => (byte)(i * 36)), "mem");
        Assert.Equal(8, img.Pixels.Length);
        for (int i = 0; i < 8; i++) Assert.Equal(i * 36 / 255f, img.Pixels[i]);
        var gz = IdxReader.ParseImages(TestData.Gzip(MakeImages(2, 2, 2, i => (byte)(i * 36))), "mem.gz");
        Assert.Equal(img.Pixels, gz.Pixels);
    }

    [Fact]
    public void TruncatedImagesNameTheClaimAndTheSize()
    {
        var full = MakeImages(10, 28, 28);
        var cut = full[..(16 + 512)];
        var ex = Assert.Throws<DataFormatException>(() => IdxReader.ParseImages(cut, "data/x-images.gz"));
        Assert.Equal("data/x-images.gz: header claims 10 images of 28×28 (7840 bytes of pixels) but the file holds 512 bytes of pixels", ex.Message);
        Assert.Throws<DataFormatException>(() => IdxReader.ParseImages(TestData.Gzip(cut), "g"));
        // Trailing bytes are an error too.
        var extra = full.Concat(new byte[] { 1 }).ToArray();
        Assert.Throws<DataFormatException>(() => IdxReader.ParseImages(extra, "x"));
        // A header shorter than 16 bytes.
        Assert.Contains("too short", Assert.Throws<DataFormatException>(() => IdxReader.ParseImages(full[..10], "x")).Message);
    }

    [Fact]
    public void HugeClaimsAreRejectedWithoutAllocating()
    {
        var b = MakeImages(1, 1, 1);
        BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(4), int.MaxValue);
        BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(8), int.MaxValue);
        BinaryPrimitives.WriteInt32BigEndian(b.AsSpan(12), int.MaxValue);
        var ex = Assert.Throws<DataFormatException>(() => IdxReader.ParseImages(b, "x"));
        Assert.Contains("header claims 2147483647 images", ex.Message);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(4), 0xFFFFFFFF);
        Assert.Contains("image count", Assert.Throws<DataFormatException>(() => IdxReader.ParseImages(b, "x")).Message);
        var l = MakeLabels(1, 2, 3);
        BinaryPrimitives.WriteInt32BigEndian(l.AsSpan(4), 1_000_000_000);
        Assert.Equal("x: header claims 1000000000 labels but the file holds 3 bytes of labels",
            Assert.Throws<DataFormatException>(() => IdxReader.ParseLabels(l, "x")).Message);
    }

    [Fact]
    public void WrongMagicIsNamed()
    {
        var labels = MakeLabels(1, 2);
        var ex = Assert.Throws<DataFormatException>(() => IdxReader.ParseImages(labels, "f"));
        Assert.Equal("f: magic number is 0x00000801 (an IDX1 label file), expected 0x00000803 for images (IDX3)", ex.Message);
        var images = MakeImages(1, 1, 1);
        Assert.Contains("expected 0x00000801", Assert.Throws<DataFormatException>(() => IdxReader.ParseLabels(images, "f")).Message);
        Assert.Contains("not an IDX file", Assert.Throws<DataFormatException>(() => IdxReader.ParseLabels("hello, world"u8.ToArray(), "f")).Message);
        Assert.Contains("too short", Assert.Throws<DataFormatException>(() => IdxReader.ParseLabels([], "f")).Message);
    }

    [Fact]
    public void MissingFileIsADataFormatException()
    {
        var ex = Assert.Throws<DataFormatException>(() => IdxReader.ReadImages("/nonexistent/dir/x.gz"));
        Assert.Equal("/nonexistent/dir/x.gz: no such file", ex.Message);
        using var tmp = new TempDir();
        var ex2 = Assert.Throws<DataFormatException>(() => MnistDataset.Load(tmp.Path));
        Assert.EndsWith("(.gz): no such file", ex2.Message);
    }

    [Fact]
    public void CountMismatchBetweenImagesAndLabels()
    {
        using var tmp = new TempDir();
        File.WriteAllBytes(tmp.File("train-images-idx3-ubyte"), MakeImages(3, 2, 2));
        File.WriteAllBytes(tmp.File("train-labels-idx1-ubyte"), MakeLabels(1, 2, 3));
        File.WriteAllBytes(tmp.File("t10k-images-idx3-ubyte"), MakeImages(3, 2, 2));
        File.WriteAllBytes(tmp.File("t10k-labels-idx1-ubyte.gz"), TestData.Gzip(MakeLabels(1, 2)));
        var ex = Assert.Throws<DataFormatException>(() => MnistDataset.Load(tmp.Path));
        Assert.Contains("t10k images hold 3 images but t10k labels hold 2 labels", ex.Message);

        File.WriteAllBytes(tmp.File("t10k-labels-idx1-ubyte.gz"), TestData.Gzip(MakeLabels(1, 2, 11)));
        Assert.Contains("outside the digits", Assert.Throws<DataFormatException>(() => MnistDataset.Load(tmp.Path)).Message);

        File.WriteAllBytes(tmp.File("t10k-labels-idx1-ubyte.gz"), TestData.Gzip(MakeLabels(1, 2, 3)));
        var m = MnistDataset.Load(tmp.Path);
        Assert.Equal(3, m.Test.Count);
        File.WriteAllBytes(tmp.File("two-labels"), MakeLabels(1, 2));
        var pairEx = Assert.Throws<DataFormatException>(() => MnistDataset.LoadPair(tmp.File("train-images-idx3-ubyte"), tmp.File("two-labels")));
        Assert.EndsWith("two-labels: holds 2 labels but the image file holds 3 images", pairEx.Message);
        Assert.Equal(3, MnistDataset.LoadPair(tmp.File("train-images-idx3-ubyte"), tmp.File("train-labels-idx1-ubyte")).Count);
    }

    [Fact]
    public void CorruptGzipIsADataFormatException()
    {
        var gz = TestData.Gzip(MakeImages(4, 5, 5));
        gz[gz.Length / 2] ^= 0xFF;
        gz[gz.Length / 2 + 1] ^= 0x55;
        try
        {
            var r = IdxReader.ParseImages(gz, "c.gz");
            Assert.Equal(r.Count * r.Rows * r.Cols, r.Pixels.Length);
        }
        catch (DataFormatException) { }
    }

    /// <summary>Rows 0..n−1 dealt into three parts in a seeded random order (one row left out).</summary>
    private static int[][] ThreeParts(int n)
    {
        var p = DataSplit.Permutation(n, 7);
        int a = n / 3, b = 2 * n / 3;
        return [p[..a], p[a..b], p[b..^1]];
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void StreamedPartsAreTheWholeFilesRows(bool gzipped)
    {
        using var tmp = new TempDir();
        // 300 images of 13×17: several read buffers, the last one partial
        var bytes = MakeImages(300, 13, 17, i => (byte)((i * 97 + i / 221) & 0xFF));
        var path = tmp.File(gzipped ? "x.gz" : "x");
        File.WriteAllBytes(path, gzipped ? TestData.Gzip(bytes) : bytes);
        var whole = IdxReader.ReadImages(path);
        int[][]? asked = null;
        var parts = IdxReader.ReadImages(path, n => asked = ThreeParts(n));
        Assert.Equal(3, parts.Length);
        for (int k = 0; k < 3; k++)
        {
            Assert.Equal((asked![k].Length, 13, 17), (parts[k].Count, parts[k].Rows, parts[k].Cols));
            for (int j = 0; j < asked[k].Length; j++)
                Assert.True(whole.Image(asked[k][j]).SequenceEqual(parts[k].Image(j)), $"part {k} row {j}");
        }
    }

    [Fact]
    public void StreamedReadOfADamagedFileSaysWhatTheWholeFileReaderSays()
    {
        using var tmp = new TempDir();
        var full = MakeImages(10, 28, 28);
        var cases = new Dictionary<string, byte[]>
        {
            ["cut"] = full[..(16 + 512)], ["cut.gz"] = TestData.Gzip(full[..(16 + 512)]),
            ["extra"] = [.. full, 1], ["extra.gz"] = TestData.Gzip([.. full, 1]),
            ["short-header"] = full[..10], ["labels"] = MakeLabels(1, 2),
        };
        foreach (var (name, content) in cases)
        {
            var path = tmp.File(name);
            File.WriteAllBytes(path, content);
            var expected = Assert.Throws<DataFormatException>(() => IdxReader.ReadImages(path)).Message;
            Assert.Equal(expected, Assert.Throws<DataFormatException>(() => IdxReader.ReadImages(path, ThreeParts)).Message);
        }
        Assert.Equal("/nonexistent/x.gz: no such file", Assert.Throws<DataFormatException>(() => IdxReader.ReadImages("/nonexistent/x.gz", ThreeParts)).Message);
        var good = tmp.File("good");
        File.WriteAllBytes(good, full);
        Assert.Throws<ArgumentException>(() => IdxReader.ReadImages(good, n => [[0, 1], [1]]));
        Assert.Throws<ArgumentException>(() => IdxReader.ReadImages(good, n => [[n]]));
    }

    [Fact]
    public void MnistSplitWhileLoadingIsTheSplitOfTheLoadedSet()
    {
        var (train, holdout, test) = MnistDataset.LoadSplit(TestData.MnistDir, 1.0 / 12, 42);
        var (expectedTrain, expectedHoldout) = DataSplit.Split(TestData.Mnist.Train, 1.0 / 12, 42);
        Assert.Equal((55000, 5000), (train.Count, holdout.Count));
        foreach (var (got, want) in new[] { (train, expectedTrain), (holdout, expectedHoldout), (test, TestData.Mnist.Test) })
        {
            Assert.Equal(want.Labels, got.Labels);
            Assert.True(want.Features.AsSpan().SequenceEqual(got.Features), "features");
        }
        var alone = MnistDataset.LoadTestSet(TestData.MnistDir);
        Assert.Equal(TestData.Mnist.Test.Labels, alone.Labels);
        Assert.True(TestData.Mnist.Test.Features.AsSpan().SequenceEqual(alone.Features));
    }
}
