using System.Globalization;
using System.Text;
using Backprop.Data;
using Backprop.IO;
using CsCheck;

namespace Backprop.Tests.Data;

/// <summary>
/// Corrupted, truncated and random inputs: every reader either throws <see cref="DataFormatException"/> or
/// returns a self-consistent result, never any other exception.
/// </summary>
public class CorruptInputPropertyTests
{
    private const int Iterations = 1500;

    private static void Tolerates<T>(Func<T> parse, Action<T> validate)
    {
        T result;
        try { result = parse(); }
        catch (DataFormatException e)
        {
            Assert.DoesNotContain('\n', e.Message);
            Assert.False(string.IsNullOrWhiteSpace(e.Message));
            return;
        }
        validate(result);
    }

    private static byte[] Flip(byte[] original, (int Pos, byte Xor)[] flips)
    {
        var b = (byte[])original.Clone();
        foreach (var (pos, xor) in flips) b[pos % b.Length] ^= xor;
        return b;
    }

    private static Gen<(int, byte)[]> Flips => Gen.Select(Gen.Int[0, int.MaxValue], Gen.Byte[1, 255]).Array[1, 6];

    // ------------------------------------------------------------------ IDX

    private static void ValidImages(IdxImages r)
    {
        Assert.Equal((long)r.Count * r.Rows * r.Cols, r.Pixels.Length);
        Assert.All(r.Pixels, v => Assert.InRange(v, 0f, 1f));
    }

    private static void ValidLabels(int[] labels) => Assert.All(labels, l => Assert.InRange(l, 0, 255));

    [Fact]
    public void IdxByteFlips()
    {
        var images = IdxReaderTests.MakeImages(3, 4, 5);
        var imagesGz = TestData.Gzip(images);
        var labels = IdxReaderTests.MakeLabels(1, 2, 3, 4, 5, 6, 7);
        var labelsGz = TestData.Gzip(labels);
        Flips.Sample(f =>
        {
            Tolerates(() => IdxReader.ParseImages(Flip(images, f), "i"), ValidImages);
            Tolerates(() => IdxReader.ParseImages(Flip(imagesGz, f), "i.gz"), ValidImages);
            Tolerates(() => IdxReader.ParseLabels(Flip(labels, f), "l"), ValidLabels);
            Tolerates(() => IdxReader.ParseLabels(Flip(labelsGz, f), "l.gz"), ValidLabels);
        }, iter: Iterations);
    }

    [Fact]
    public void IdxTruncatedAtEveryLength()
    {
        var images = IdxReaderTests.MakeImages(3, 4, 5);
        var imagesGz = TestData.Gzip(images);
        var realLabelsGz = File.ReadAllBytes(Path.Combine(TestData.MnistDir, "t10k-labels-idx1-ubyte.gz"));
        for (int len = 0; len < images.Length; len++)
            Assert.Throws<DataFormatException>(() => IdxReader.ParseImages(images[..len], "i"));
        for (int len = 0; len < imagesGz.Length; len++)
            Tolerates(() => IdxReader.ParseImages(imagesGz[..len], "i.gz"), ValidImages);
        for (int len = 0; len < realLabelsGz.Length; len += 3)
            Tolerates(() => IdxReader.ParseLabels(realLabelsGz[..len], "t10k-labels.gz"), l => Assert.Equal(10000, l.Length));
    }

    [Fact]
    public void IdxRandomBytes()
    {
        Gen.Byte.Array[0, 64].Sample(b =>
        {
            Tolerates(() => IdxReader.ParseImages(b, "r"), ValidImages);
            Tolerates(() => IdxReader.ParseLabels(b, "r"), ValidLabels);
            // With a valid magic and a random header.
            var img = (byte[])b.Clone();
            if (img.Length >= 4) { img[0] = 0; img[1] = 0; img[2] = 8; img[3] = 3; }
            Tolerates(() => IdxReader.ParseImages(img, "r"), ValidImages);
        }, iter: Iterations);
    }

    // ------------------------------------------------------------------ CSV

    private static void ValidCsv(CsvDataset d)
    {
        Assert.Equal((long)d.Count * d.FeatureCount, d.Features.Length);
        Assert.Equal(d.FeatureCount, d.FeatureNames.Length);
        Assert.True(d.Count > 0);
        Assert.All(d.Features, v => Assert.True(float.IsFinite(v)));
        Assert.All(d.Labels, l => Assert.InRange(l, 0, d.ClassCount - 1));
        Assert.Equal(d.LabelNames.Length, d.LabelNames.Distinct().Count());
    }

    [Fact]
    public void CsvByteFlips()
    {
        var iris = File.ReadAllBytes(TestData.Tabular("iris.csv"));
        var small = Encoding.UTF8.GetBytes("a,\"b\",label\n1.5,2,x\n3,-4e2,\"y\"\n5,6,x\n");
        var smallGz = TestData.Gzip(small);
        Flips.Sample(f =>
        {
            Tolerates(() => CsvDataset.Parse(Flip(iris, f), "iris.csv"), ValidCsv);
            Tolerates(() => CsvDataset.Parse(Flip(small, f), "s.csv"), ValidCsv);
            Tolerates(() => CsvDataset.Parse(Flip(smallGz, f), "s.csv.gz"), ValidCsv);
            Tolerates(() => CsvDataset.Parse(Flip(small, f), "s.csv", labelNames: ["x", "y"]), ValidCsv);
        }, iter: Iterations);
    }

    [Fact]
    public void CsvTruncatedAtEveryLength()
    {
        var iris = File.ReadAllBytes(TestData.Tabular("iris.csv"));
        for (int len = 0; len <= iris.Length; len++)
            Tolerates(() => CsvDataset.Parse(iris[..len], "iris.csv"), ValidCsv);
        var digitsGz = File.ReadAllBytes(TestData.Tabular("digits.csv.gz"));
        for (int len = 0; len <= digitsGz.Length; len += 211)
            Tolerates(() => CsvDataset.Parse(digitsGz[..len], "digits.csv.gz"), ValidCsv);
    }

    [Fact]
    public void CsvRandomText()
    {
        var chars = Gen.OneOf('0', '1', '2', '.', ',', ',', '-', '"', '"', '\n', '\n', '\r', ' ', 'e', 'a', 'N', '\t', 'ü');
        chars.Array[0, 80].Select(cs => new string(cs)).Sample(text =>
        {
            Tolerates(() => CsvDataset.ParseText(text, "r.csv"), ValidCsv);
            Tolerates(() => CsvDataset.ParseText("x,label\n" + text, "r.csv", labelColumn: "x"), ValidCsv);
        }, iter: Iterations);
    }

    // ------------------------------------------------------------------ safetensors

    private static void ValidSafeTensors(SafeTensorsFile f)
    {
        foreach (var name in f.Names)
        {
            var t = f.GetInfo(name);
            long product = 1;
            foreach (var d in t.Shape) product *= d;
            Assert.Equal(product, t.ElementCount);
            Assert.Equal(t.ElementCount * SafeTensorsFile.DTypeSize(t.DType), t.ByteCount);
            try
            {
                Assert.Equal(t.ElementCount, f.GetFloats(name).Length);
                Assert.Equal(t.ElementCount, f.GetDoubles(name).Length);
            }
            catch (DataFormatException) { } // a dtype that cannot be converted
        }
        _ = f.Metadata.Count;
    }

    private static byte[] SmallSafeTensors() => SafeTensorsFile.Serialize(
    [
        SafeTensorEntry.Float32("0.weight", [1, 2, 3, 4, 5, 6], 2, 3),
        SafeTensorEntry.Float32("0.bias", [0.5f, -0.5f], 2),
        SafeTensorEntry.Float64("scale", [3.0], 1),
    ], new Dictionary<string, string> { ["format"] = "pt" });

    [Fact]
    public void SafeTensorsByteFlips()
    {
        var mlp = File.ReadAllBytes(TestData.TorchModel("mlp-0.safetensors"));
        var small = SmallSafeTensors();
        // Flips concentrated on the length field and header, where the structure is.
        var headerFlips = Gen.Select(Gen.Int[0, 8 + 300], Gen.Byte[1, 255]).Array[1, 4];
        Gen.Select(Flips, headerFlips).Sample((f, h) =>
        {
            Tolerates(() => SafeTensorsFile.Parse(Flip(mlp, f), "mlp-0.safetensors"), ValidSafeTensors);
            Tolerates(() => SafeTensorsFile.Parse(Flip(mlp, h), "mlp-0.safetensors"), ValidSafeTensors);
            Tolerates(() => SafeTensorsFile.Parse(Flip(small, h), "small.safetensors"), ValidSafeTensors);
        }, iter: Iterations);
    }

    [Fact]
    public void SafeTensorsTruncatedAtEveryLength()
    {
        var small = SmallSafeTensors();
        for (int len = 0; len < small.Length; len++)
            Assert.Throws<DataFormatException>(() => SafeTensorsFile.Parse(small[..len], "small.safetensors"));
        var mlp = File.ReadAllBytes(TestData.TorchModel("mlp-0.safetensors"));
        for (int len = 0; len < mlp.Length; len += len < 400 ? 1 : 509)
            Assert.Throws<DataFormatException>(() => SafeTensorsFile.Parse(mlp[..len], "mlp-0.safetensors"));
        ValidSafeTensors(SafeTensorsFile.Parse(mlp, "mlp-0.safetensors"));
    }

    [Fact]
    public void SafeTensorsRandomHeaders()
    {
        var dtype = Gen.OneOf("F32", "F64", "F16", "BF16", "I8", "U8", "BOOL", "I64", "F8_E4M3", "F128", "f32", "");
        var number = Gen.OneOf(Gen.Int[-3, 40].Select(i => i.ToString(CultureInfo.InvariantCulture)),
                               Gen.OneOf("1.5", "1e3", "99999999999999999999", "-0", "\"4\"", "null", "true"));
        var numbers = number.Array[0, 4].Select(a => "[" + string.Join(",", a) + "]");
        var value = Gen.OneOf(numbers, number, Gen.OneOf("\"x\"", "{}", "[]", "null"));
        Gen<string> entry = Gen.Select(dtype, numbers, numbers, Gen.Int[0, 9], value).Select((dt, shape, offsets, drop, extra) =>
        {
            var parts = new List<string>();
            if (drop != 0) parts.Add($"\"dtype\":\"{dt}\"");
            if (drop != 1) parts.Add($"\"shape\":{shape}");
            if (drop != 2) parts.Add($"\"data_offsets\":{offsets}");
            if (drop == 3) parts.Add($"\"extra\":{extra}");
            return drop == 4 ? extra : "{" + string.Join(",", parts) + "}";
        });
        // Entries whose offsets agree with their shape, so that valid files are generated too.
        var consistent = Gen.Select(Gen.OneOf("F32", "F64", "F16", "BF16", "U8", "F8_E5M2"), Gen.Int[0, 6], Gen.Int[0, 24]).Select((dt, k, o) =>
            $"{{\"dtype\":\"{dt}\",\"shape\":[{k}],\"data_offsets\":[{o},{o + k * SafeTensorsFile.DTypeSize(dt)}]}}");
        entry = Gen.OneOf(entry, consistent, consistent);
        var name = Gen.OneOf("a", "b", "w", "__metadata__", "", "é");
        var meta = Gen.OneOf("", "\"__metadata__\":{\"k\":\"v\"},", "\"__metadata__\":{\"k\":1},", "\"__metadata__\":null,", "\"__metadata__\":[],");
        var header = Gen.Select(meta, Gen.Select(name, entry).Array[0, 4], Gen.Int[0, 3]).Select((m, es, junk) =>
        {
            var body = m + string.Join(",", es.Select(e => $"\"{e.Item1}\":{e.Item2}"));
            body = body.TrimEnd(',');
            var json = "{" + body + "}";
            return junk switch { 1 => json[..(json.Length / 2)], 2 => json + "   ", _ => json };
        });
        int validWithTensors = 0;
        Gen.Select(header, Gen.Byte.Array[0, 96], Gen.Int[-2, 2]).Sample((h, buffer, lengthSkew) =>
        {
            var bytes = SafeTensorsTests.Build(h, buffer);
            Tolerates(() => SafeTensorsFile.Parse(bytes, "r.safetensors"), f =>
            {
                ValidSafeTensors(f);
                if (f.Names.Count > 0) Interlocked.Increment(ref validWithTensors);
            });
            // A header length that is off by a little.
            var skewed = (byte[])bytes.Clone();
            System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(skewed, Encoding.UTF8.GetByteCount(h) + lengthSkew);
            Tolerates(() => SafeTensorsFile.Parse(skewed, "r.safetensors"), ValidSafeTensors);
        }, iter: 3000);
        Assert.True(validWithTensors > 0, "no generated file was valid");
    }
}
