using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Backprop.Data;
using Backprop.Nn;
using Backprop.Tests.Cli;

namespace Backprop.Tests.Interop;

/// <summary>Shared helpers: PyTorch-style state dicts, random networks, the first MNIST test images.</summary>
internal static class InteropTestData
{
    /// <summary>One Linear layer of a synthetic state dict.</summary>
    public sealed record Linear(int Module, float[] Weight, float[]? Bias, int Outputs, int Inputs);

    /// <summary>Random Linear layers for <paramref name="sizes"/> at the given PyTorch module indices.</summary>
    public static List<Linear> RandomLinears(Random rng, int[] sizes, int[] modules, bool[] bias, double scale = 1.0)
    {
        var list = new List<Linear>();
        for (int i = 0; i + 1 < sizes.Length; i++)
        {
            int o = sizes[i + 1], n = sizes[i];
            double s = scale / Math.Sqrt(n);
            var w = Enumerable.Range(0, o * n).Select(_ => (float)((rng.NextDouble() * 2 - 1) * s * 1.7)).ToArray();
            float[]? b = bias[i] ? Enumerable.Range(0, o).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray() : null;
            list.Add(new Linear(modules[i], w, b, o, n));
        }
        return list;
    }

    /// <summary>The direct network of the same weights (output layer identity).</summary>
    public static Sequential<float> Network(IReadOnlyList<Linear> layers, IReadOnlyList<string> hidden) =>
        new(layers.Select((l, i) => new DenseLayer<float>(
            new Tensor<float>((float[])l.Weight.Clone(), l.Outputs, l.Inputs),
            l.Bias is null ? null : new Tensor<float>((float[])l.Bias.Clone(), l.Outputs),
            Activations.Create<float>(i < hidden.Count ? hidden[i] : "identity"))));

    public static IEnumerable<(string Name, float[] Data, int[] Shape)> StateDict(IEnumerable<Linear> layers)
    {
        foreach (var l in layers)
        {
            yield return ($"{l.Module}.weight", l.Weight, [l.Outputs, l.Inputs]);
            if (l.Bias is not null) yield return ($"{l.Module}.bias", l.Bias, [l.Outputs]);
        }
    }

    /// <summary>
    /// Writes a safetensors file by hand in dtype F32, F16 or BF16 (the project's writer does F32/F64 only). The values are
    /// rounded to the dtype first and written back into <paramref name="tensors"/>' arrays, so a forward pass on them
    /// is the reference.
    /// </summary>
    public static void WriteRaw(string path, string dtype, IEnumerable<(string Name, float[] Data, int[] Shape)> tensors)
    {
        var list = tensors.ToList();
        int size = dtype == "F32" ? 4 : 2;
        var header = new Dictionary<string, object>();
        long offset = 0;
        foreach (var (name, data, shape) in list)
        {
            header[name] = new { dtype, shape, data_offsets = new[] { offset, offset + (long)data.Length * size } };
            offset += (long)data.Length * size;
        }
        var json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header));
        var buf = new byte[offset];
        long pos = 0;
        foreach (var (_, data, _) in list)
        {
            for (int i = 0; i < data.Length; i++, pos += size)
            {
                var span = buf.AsSpan((int)pos, size);
                switch (dtype)
                {
                    case "F32": BinaryPrimitives.WriteSingleLittleEndian(span, data[i]); break;
                    case "F16":
                        var h = (Half)data[i];
                        BinaryPrimitives.WriteHalfLittleEndian(span, h);
                        data[i] = (float)h;
                        break;
                    case "BF16":
                        // Round to nearest even on the top 16 bits.
                        uint bits = BitConverter.SingleToUInt32Bits(data[i]);
                        uint rounded = bits + 0x7FFF + ((bits >> 16) & 1);
                        ushort top = (ushort)(rounded >> 16);
                        BinaryPrimitives.WriteUInt16LittleEndian(span, top);
                        data[i] = BitConverter.UInt32BitsToSingle((uint)top << 16);
                        break;
                    default: throw new ArgumentException(dtype);
                }
            }
        }
        using var fs = File.Create(path);
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)json.Length);
        fs.Write(len);
        fs.Write(json);
        fs.Write(buf);
    }

    public static Tensor<float> RandomInput(Random rng, int rows, int cols, double range = 2.0) =>
        new(Enumerable.Range(0, rows * cols).Select(_ => (float)((rng.NextDouble() * 2 - 1) * range)).ToArray(), rows, cols);

    private static readonly Lazy<LabeledData> Mnist64 = new(() =>
    {
        var test = MnistDataset.LoadPair(CliRunner.DataPath("mnist", "t10k-images-idx3-ubyte.gz"), CliRunner.DataPath("mnist", "t10k-labels-idx1-ubyte.gz"));
        return test.Subset(Enumerable.Range(0, 64).ToArray());
    });

    /// <summary>The first 64 MNIST test images, pixels / 255, as a 64 × 784 tensor.</summary>
    public static Tensor<float> MnistFirst64() => Mnist64.Value.FeaturesTensor();

    /// <summary>The architecture and expected outputs of data/torch-models/mlp-K.json.</summary>
    public static (string[] Activations, float[][] Expected) TorchReference(int k)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(CliRunner.DataPath("torch-models", $"mlp-{k}.json")));
        var acts = doc.RootElement.GetProperty("architecture").GetProperty("activations").EnumerateArray().Select(a => a.GetString()!).ToArray();
        var expected = doc.RootElement.GetProperty("expected_output").EnumerateArray()
            .Select(r => r.EnumerateArray().Select(v => (float)v.GetDouble()).ToArray()).ToArray();
        return (acts, expected);
    }

    /// <summary>The largest |a − b|, after checking the lengths agree.</summary>
    public static double MaxAbsDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        Assert.Equal(a.Length, b.Length);
        double m = 0;
        for (int i = 0; i < a.Length; i++) m = Math.Max(m, Math.Abs((double)a[i] - b[i]));
        return m;
    }
}
