using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Backprop.IO;

namespace Backprop.Tests.Data;

public class SafeTensorsTests
{
    internal static byte[] Build(string headerJson, byte[] buffer)
    {
        var h = Encoding.UTF8.GetBytes(headerJson);
        var b = new byte[8 + h.Length + buffer.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(b, (ulong)h.Length);
        h.CopyTo(b, 8);
        buffer.CopyTo(b, 8 + h.Length);
        return b;
    }

    private static DataFormatException Bad(string headerJson, int bufferBytes = 16)
        => Assert.Throws<DataFormatException>(() => SafeTensorsFile.Parse(Build(headerJson, new byte[bufferBytes]), "s"));

    [Fact]
    public void RoundTripsF32AndF64WithMetadataExactly()
    {
        using var tmp = new TempDir();
        var rng = new Random(1);
        var w = Enumerable.Range(0, 35).Select(_ => (float)rng.NextDouble() - 0.5f).Append(float.Epsilon).Append(-0f).ToArray(); // 37: odd
        var b = Enumerable.Range(0, 5).Select(_ => rng.NextDouble()).Append(double.MaxValue).ToArray();
        var md = new Dictionary<string, string> { ["format"] = "pt", ["architecture"] = "{\"sizes\": [4, 3]}", ["ü"] = "line1\nline2" };
        var path = tmp.File("m.safetensors");
        SafeTensorsFile.Write(path,
        [
            SafeTensorEntry.Float32("z.weight", w, 37),
            SafeTensorEntry.Float64("a.bias", b, 2, 3),
            SafeTensorEntry.From("m.scalar", new Tensor<float>([42f])),
            SafeTensorEntry.From("empty", new Tensor<double>(new double[0], 0, 4)),
        ], md);

        var bytes = File.ReadAllBytes(path);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0UL, n % 8); // the buffer starts 8-aligned
        Assert.Empty(Directory.GetFiles(tmp.Path, "*.tmp")); // the atomic writer left no temp file

        var f = SafeTensorsFile.Read(path);
        Assert.Equal(md, f.Metadata);
        Assert.Equal(w, f.GetFloats("z.weight"));
        Assert.Equal(b, f.GetDoubles("a.bias"));
        Assert.Equal("F64", f.GetInfo("a.bias").DType);
        Assert.Equal(new[] { 2, 3 }, f.GetInfo("a.bias").ShapeArray);
        Assert.Equal(42f, f.GetTensor<float>("m.scalar").Data.ToArray().Single());
        Assert.Equal(0, f.GetInfo("m.scalar").Rank);
        Assert.Equal(new[] { 0, 4 }, f.GetTensor<double>("empty").ShapeArray);
        foreach (var t in f.Tensors)
        {
            int size = SafeTensorsFile.DTypeSize(t.DType);
            Assert.Equal(0, t.DataBegin % size); // each tensor aligned to its element size
        }
        // F64 first then F32, each group in name order, contiguous.
        Assert.Equal(new[] { "a.bias", "empty", "m.scalar", "z.weight" }, f.Names);
        var t2 = f.GetTensor<double>("z.weight");
        Assert.Equal(w.Select(v => (double)v), t2.Data.ToArray());
        Assert.Equal("s.safetensors: no tensor named 'nope' (the file holds: a.bias, empty, m.scalar, z.weight)",
            Assert.Throws<DataFormatException>(() => SafeTensorsFile.Parse(bytes, "s.safetensors").GetFloats("nope")).Message);
    }

    [Fact]
    public void OverwritesAndMatchesSerialize()
    {
        using var tmp = new TempDir();
        var path = tmp.File("x.safetensors");
        File.WriteAllText(path, "old");
        var tensors = new Dictionary<string, Tensor<float>> { ["w"] = new Tensor<float>([1f, 2f, 3f, 4f], 2, 2) };
        SafeTensorsFile.Write(path, tensors);
        Assert.Equal(SafeTensorsFile.Serialize([SafeTensorEntry.From("w", tensors["w"])]), File.ReadAllBytes(path));
        Assert.Empty(SafeTensorsFile.Read(path).Metadata);
        var dt = new Dictionary<string, Tensor<double>> { ["w"] = new Tensor<double>([1.0, 2.0], 2) };
        SafeTensorsFile.Write(path, dt, new Dictionary<string, string> { ["k"] = "v" });
        Assert.Equal(new[] { 1.0, 2.0 }, SafeTensorsFile.Read(path).GetDoubles("w"));
        Assert.Throws<ArgumentException>(() => SafeTensorEntry.Float32("w", [1f], 2));
        Assert.Throws<ArgumentException>(() => SafeTensorEntry.Float32("__metadata__", [1f], 1));
        Assert.Throws<ArgumentException>(() => SafeTensorsFile.Serialize([SafeTensorEntry.Float32("a", [1f], 1), SafeTensorEntry.Float32("a", [1f], 1)]));
    }

    [Fact]
    public void ReadsTorchStateDictMatchingArchitecture()
    {
        foreach (var k in new[] { 0, 1, 2 })
        {
            var f = SafeTensorsFile.Read(TestData.TorchModel($"mlp-{k}.safetensors"));
            using var json = JsonDocument.Parse(File.ReadAllBytes(TestData.TorchModel($"mlp-{k}.json")));
            var sizes = json.RootElement.GetProperty("architecture").GetProperty("sizes").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            var keys = json.RootElement.GetProperty("state_dict_keys").EnumerateArray().Select(e => e.GetString()!).ToArray();
            Assert.Equal(keys.Order(), f.Names.Order());
            int layers = sizes.Length - 1;
            Assert.Equal(2 * layers, keys.Length);
            for (int l = 0; l < layers; l++)
            {
                var weight = f.GetInfo(keys[2 * l]);
                var bias = f.GetInfo(keys[2 * l + 1]);
                Assert.EndsWith(".weight", weight.Name);
                Assert.Equal("F32", weight.DType);
                Assert.Equal(new[] { sizes[l + 1], sizes[l] }, weight.ShapeArray); // out × in
                Assert.Equal(new[] { sizes[l + 1] }, bias.ShapeArray);
                var wData = f.GetFloats(weight.Name);
                Assert.Equal(sizes[l + 1] * sizes[l], wData.Length);
                Assert.All(wData, v => Assert.True(float.IsFinite(v)));
                Assert.Contains(wData, v => v != 0);
            }
            if (k == 0) Assert.Equal(new[] { "0.weight", "0.bias", "2.weight", "2.bias" }, f.Names);
        }
    }

    [Fact]
    public void ConvertsHalfBFloatAndIntegers()
    {
        var buf = new byte[2 * 3 + 2 * 3 + 4 * 2 + 1];
        var halves = new[] { (Half)1.5, (Half)(-2), Half.MaxValue };
        for (int i = 0; i < 3; i++) BinaryPrimitives.WriteHalfLittleEndian(buf.AsSpan(2 * i), halves[i]);
        var bf = new[] { 1.0f, -3.5f, 1e30f };
        for (int i = 0; i < 3; i++) BinaryPrimitives.WriteUInt16LittleEndian(buf.AsSpan(6 + 2 * i), (ushort)(BitConverter.SingleToInt32Bits(bf[i]) >> 16));
        BinaryPrimitives.WriteInt32LittleEndian(buf.AsSpan(12), -7);
        BinaryPrimitives.WriteInt32LittleEndian(buf.AsSpan(16), 9);
        buf[20] = 200;
        var header = """{"h":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[6,12]},"i":{"dtype":"I32","shape":[1,2],"data_offsets":[12,20]},"u":{"dtype":"U8","shape":[],"data_offsets":[20,21]}}""";
        var f = SafeTensorsFile.Parse(Build(header, buf), "s");
        Assert.Equal(new[] { 1.5f, -2f, 65504f }, f.GetFloats("h"));
        Assert.Equal(new[] { 1.5, -2, 65504 }, f.GetDoubles("h"));
        var b = f.GetFloats("b");
        Assert.Equal(1.0f, b[0]);
        Assert.Equal(-3.5f, b[1]);
        Assert.Equal(1e30f, b[2], 1e28f); // 8-bit mantissa: within 2^-8
        Assert.Equal(new[] { -7f, 9f }, f.GetFloats("i"));
        Assert.Equal(200.0, f.GetDoubles("u").Single());
    }

    [Fact]
    public void ValidatesTheHeader()
    {
        const string ok = """{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}""";
        Assert.Equal(4, SafeTensorsFile.Parse(Build(ok, new byte[16]), "s").GetFloats("w").Length);

        Assert.Equal("s: the file holds 3 bytes, too short for the 8-byte header length",
            Assert.Throws<DataFormatException>(() => SafeTensorsFile.Parse([1, 2, 3], "s")).Message);
        var huge = Build(ok, new byte[16]);
        BinaryPrimitives.WriteUInt64LittleEndian(huge, 200_000_000);
        Assert.Contains("more than the 100000000 allowed", Assert.Throws<DataFormatException>(() => SafeTensorsFile.Parse(huge, "s")).Message);
        BinaryPrimitives.WriteUInt64LittleEndian(huge, ulong.MaxValue);
        Assert.Throws<DataFormatException>(() => SafeTensorsFile.Parse(huge, "s"));
        BinaryPrimitives.WriteUInt64LittleEndian(huge, 1000);
        Assert.Contains("header length field claims 1000 bytes but only", Assert.Throws<DataFormatException>(() => SafeTensorsFile.Parse(huge, "s")).Message);
        // another kind of file altogether (text, here): said so, not as a header length of 7e18 bytes
        Assert.Equal("s: not a safetensors file: it does not start with a header length and a JSON header",
            Assert.Throws<DataFormatException>(() => SafeTensorsFile.Parse("sepal_length,sepal_width,label\n5.1,3.5,0\n"u8.ToArray(), "s")).Message);

        Assert.Contains("not valid JSON", Bad("""{"w":{"dtype":"F32",""").Message);
        Assert.Contains("must start with '{'", Bad("[1,2]").Message);
        Assert.Contains("unknown dtype 'F128'", Bad("""{"w":{"dtype":"F128","shape":[2],"data_offsets":[0,16]}}""").Message);
        Assert.Contains("'dtype' is missing", Bad("""{"w":{"shape":[2],"data_offsets":[0,8]}}""").Message);
        Assert.Contains("'shape' is missing", Bad("""{"w":{"dtype":"F32","data_offsets":[0,8]}}""").Message);
        Assert.Contains("'data_offsets' is missing", Bad("""{"w":{"dtype":"F32","shape":[2]}}""").Message);
        Assert.Contains("'data_offsets' is missing", Bad("""{"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}}""").Message);
        Assert.Contains("shape dimension 0 is negative (-2)", Bad("""{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}""").Message);
        Assert.Contains("not an integer", Bad("""{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}}""").Message);
        Assert.Contains("begin 8 is after end 0", Bad("""{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}""").Message);
        Assert.Equal("s: tensor 'w': data_offsets end 32 is past the end of the 16-byte data buffer",
            Bad("""{"w":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}}""").Message);
        Assert.Equal("s: tensor 'w': shape [3] of F32 needs 12 bytes but data_offsets span 16 bytes",
            Bad("""{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}""").Message);
        Assert.Contains("more than 2^63 elements", Bad("""{"w":{"dtype":"F32","shape":[2147483647,2147483647,2147483647],"data_offsets":[0,16]}}""").Message);
        Assert.Contains("overlaps tensor 'a'", Bad("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""").Message);
        Assert.Contains("twice", Bad("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""").Message);
        Assert.Contains("not a string", Bad("""{"__metadata__":{"k":1}}""").Message);
        Assert.Contains("not an object", Bad("""{"__metadata__":[1]}""").Message);
        Assert.Contains("not an object", Bad("""{"w":5}""").Message);
        Assert.Contains("cannot be converted", Assert.Throws<DataFormatException>(() =>
            SafeTensorsFile.Parse(Build("""{"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}""", new byte[2]), "s").GetFloats("w")).Message);
        var bad = Encoding.UTF8.GetBytes("{\"w\":1}");
        bad[2] = 0xFF;
        var inv = new byte[8 + bad.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(inv, (ulong)bad.Length);
        bad.CopyTo(inv, 8);
        Assert.Contains("not valid UTF-8", Assert.Throws<DataFormatException>(() => SafeTensorsFile.Parse(inv, "s")).Message);
        // Zero-size tensors may share an offset; metadata null is accepted.
        var z = SafeTensorsFile.Parse(Build("""{"__metadata__":null,"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[2,0],"data_offsets":[0,0]}}""", []), "s");
        Assert.Empty(z.GetFloats("b"));
        Assert.Equal("/no/such.safetensors: no such file", Assert.Throws<DataFormatException>(() => SafeTensorsFile.Read("/no/such.safetensors")).Message);
    }
}
