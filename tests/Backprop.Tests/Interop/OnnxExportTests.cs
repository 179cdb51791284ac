using Backprop.Data;
using Backprop.Interop;
using Backprop.Interop.Onnx;
using Backprop.IO;
using Backprop.Nn;
using Backprop.Tests.Cli;
using Backprop.Tests.Data;
using Backprop.Tests.Nn;
using Backprop.Training;
using Microsoft.ML.OnnxRuntime;
using Xunit.Abstractions;
using static Backprop.Tests.Interop.InteropTestData;

namespace Backprop.Tests.Interop;

public sealed class OnnxExportTests(ITestOutputHelper output)
{
    /// <summary>Runs an ONNX file in ONNX Runtime on a batch; returns the flat output and its shape.</summary>
    private static (float[] Data, long[] Shape) RunOnnx(string path, Tensor<float> x)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1 };
        using var session = new InferenceSession(path, options);
        Assert.Equal(new[] { "input" }, session.InputNames);
        Assert.Equal(new[] { "output" }, session.OutputNames);
        using var input = OrtValue.CreateTensorValueFromMemory(x.Data.ToArray(), [x.Dim(0), x.Dim(1)]);
        using var run = new RunOptions();
        using var results = session.Run(run, ["input"], [input], ["output"]);
        var shape = results[0].GetTensorTypeAndShape().Shape;
        return (results[0].GetTensorDataAsSpan<float>().ToArray(), shape);
    }

    /// <summary>max |onnx − backprop| / max(1, |backprop|), with both errors reported.</summary>
    private static (double Abs, double Scaled) Compare(float[] got, float[] want)
    {
        Assert.Equal(want.Length, got.Length);
        double abs = 0, scaled = 0;
        for (int i = 0; i < got.Length; i++)
        {
            Assert.True(float.IsFinite(got[i]), $"ONNX output {i} is {got[i]}");
            double d = Math.Abs((double)got[i] - want[i]);
            abs = Math.Max(abs, d);
            scaled = Math.Max(scaled, d / Math.Max(1.0, Math.Abs(want[i])));
        }
        return (abs, scaled);
    }

    private static Sequential<float> SmallNet(Random rng, string hidden, string outputActivation = "identity", double scale = 2.0)
    {
        int[] sizes = [6, 5, 4, 3];
        var layers = new List<DenseLayer<float>>();
        for (int i = 0; i < 3; i++)
        {
            var w = Tensor<float>.Random(rng, -scale / Math.Sqrt(sizes[i]), scale / Math.Sqrt(sizes[i]), sizes[i + 1], sizes[i]);
            var b = i == 1 ? null : Tensor<float>.Random(rng, -0.5, 0.5, sizes[i + 1]); // layer 1 has no bias
            layers.Add(new DenseLayer<float>(w, b, Activations.Create<float>(i == 2 ? outputActivation : hidden)));
        }
        return new Sequential<float>(layers);
    }

    public static TheoryData<string, int> ActivationsAndOpsets()
    {
        var d = new TheoryData<string, int>();
        foreach (var a in Activations.Names) d.Add(a, OnnxExport.DefaultOpset);
        d.Add("gelu", 13);   // erf decomposition
        d.Add("gelu", 20);   // the Gelu operator
        d.Add("silu", 13);
        d.Add("softmax", 13);
        d.Add("relu", 21);
        d.Add("softplus", 22);
        return d;
    }

    [Theory]
    [MemberData(nameof(ActivationsAndOpsets))]
    public void OnnxRuntimeMatchesBackprop(string activation, int opset)
    {
        using var tmp = new TempDir();
        var rng = new Random(activation.GetHashCode(StringComparison.Ordinal) ^ opset);
        double worst = 0;
        foreach (var outAct in new[] { "identity", "softmax" })
        {
            var net = SmallNet(rng, activation, outAct);
            string path = tmp.File($"{activation}-{outAct}.onnx");
            OnnxExport.Write(path, net, opset);
            foreach (int batch in new[] { 7, 1, 32 }) // the batch dimension is symbolic
            {
                var x = RandomInput(rng, batch, 6, range: 3);
                var (got, shape) = RunOnnx(path, x);
                Assert.Equal(new long[] { batch, 3 }, shape);
                var (abs, scaled) = Compare(got, net.Predict(x).Data.ToArray());
                worst = Math.Max(worst, abs);
                Assert.True(scaled <= 1e-5, $"{activation} (output {outAct}, opset {opset}, batch {batch}): max scaled difference {scaled}, abs {abs}");
            }
        }
        output.WriteLine($"{activation} opset {opset}: max |onnx − backprop| = {worst:E3}");
    }

    /// <summary>
    /// The test-only activation (its own ONNX node) and the test-only scale layer (its own Mul and initializer), defined in
    /// the test project: the export goes through the layer and the activation, so ONNX Runtime computes what backprop does.
    /// </summary>
    [Fact]
    public void TestOnlyKindsExportAndRunInOnnxRuntime()
    {
        using var tmp = new TempDir();
        var rng = new Random(21);
        var acts = TestKinds.Catalog.Activations;
        var scale = Tensor<float>.Random(rng, 0.5, 2.0, 5);
        var net = new Sequential<float>(
        [
            new DenseLayer<float>(Tensor<float>.Random(rng, -1, 1, 5, 6), Tensor<float>.Random(rng, -0.5, 0.5, 5), acts.Create<float>(TestKinds.Softsign)),
            new ScaleLayer<float>(scale, Tensor<float>.Random(rng, -0.5, 0.5, 5), acts.Create<float>(TestKinds.SoftsignUnfused)),
            new DenseLayer<float>(Tensor<float>.Random(rng, -1, 1, 3, 5), null, acts.Create<float>("identity")),
        ]);
        string path = tmp.File("test-kinds.onnx");
        OnnxExport.Write(path, net, 17);
        var m = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        Assert.Equal(2, m.Graph.Node.Count(n => n.OpType == "Softsign"));
        Assert.Contains(m.Graph.Node, n => n.OpType == "Mul" && n.Input.Contains("layers.1.scale"));
        Assert.Contains(m.Graph.Node, n => n.OpType == "Add" && n.Input.Contains("layers.1.shift"));
        Assert.Equal(scale.Data.ToArray(), System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(m.Graph.Initializer.Single(t => t.Name == "layers.1.scale").RawData.Span).ToArray());
        foreach (int batch in new[] { 1, 9 })
        {
            var x = RandomInput(rng, batch, 6, range: 3);
            var (got, shape) = RunOnnx(path, x);
            Assert.Equal(new long[] { batch, 3 }, shape);
            var (_, scaled) = Compare(got, net.Predict(x).Data.ToArray());
            Assert.True(scaled <= 1e-5, $"batch {batch}: max scaled difference {scaled}");
        }
    }

    [Fact]
    public void LargePreActivationsStayClose()
    {
        // Weights big enough to push softplus past its threshold and saturate sigmoid/tanh/softmax.
        using var tmp = new TempDir();
        var rng = new Random(11);
        foreach (var a in new[] { "softplus", "elu", "gelu", "silu", "leaky_relu" })
        {
            var net = SmallNet(rng, a, "identity", scale: 30);
            string path = tmp.File($"{a}.onnx");
            OnnxExport.Write(path, net, 17);
            var x = RandomInput(rng, 16, 6, range: 5);
            var (got, _) = RunOnnx(path, x);
            var (abs, scaled) = Compare(got, net.Predict(x).Data.ToArray());
            output.WriteLine($"{a} large: max abs {abs:E3}, max scaled {scaled:E3}");
            Assert.True(scaled <= 1e-5, $"{a}: max scaled difference {scaled}");
        }
    }

    [Fact]
    public void ModelProtoIsStandard()
    {
        var rng = new Random(3);
        var net = SmallNet(rng, "gelu");
        var bytes = OnnxExport.Serialize(net, 17, ["a", "b", "c"]);
        var m = ModelProto.Parser.ParseFrom(bytes);
        Assert.Equal(8, m.IrVersion);
        Assert.Equal("backprop", m.ProducerName);
        Assert.Equal(17, Assert.Single(m.OpsetImport).Version);
        Assert.Equal("", m.OpsetImport[0].Domain);
        var input = Assert.Single(m.Graph.Input);
        Assert.Equal("input", input.Name);
        Assert.Equal((int)TensorProto.Types.DataType.Float, input.Type.TensorType.ElemType);
        Assert.Equal("batch", input.Type.TensorType.Shape.Dim[0].DimParam);
        Assert.Equal(6, input.Type.TensorType.Shape.Dim[1].DimValue);
        Assert.Equal(3, Assert.Single(m.Graph.Output).Type.TensorType.Shape.Dim[1].DimValue);
        var inits = m.Graph.Initializer.Select(t => t.Name).ToHashSet();
        Assert.Superset(new HashSet<string> { "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.2.weight", "layers.2.bias" }, inits);
        Assert.DoesNotContain("layers.1.bias", inits);
        var w0 = m.Graph.Initializer.Single(t => t.Name == "layers.0.weight");
        Assert.Equal(new long[] { 5, 6 }, w0.Dims);
        Assert.Equal(net.Layers[0].Parameter("weight")!.Value.Data.ToArray(), System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(w0.RawData.Span).ToArray());
        var gemms = m.Graph.Node.Where(n => n.OpType == "Gemm").ToList();
        Assert.Equal(3, gemms.Count);
        Assert.All(gemms, g => Assert.Equal(1, g.Attribute.Single(a => a.Name == "transB").I));
        Assert.Equal(2, gemms[1].Input.Count);
        Assert.Contains(m.Graph.Node, n => n.OpType == "Erf");   // gelu below opset 20
        Assert.Equal("output", m.Graph.Node[^1].Output[0]);
        Assert.Contains(m.MetadataProps, p => p.Key == "label_names" && p.Value == "[\"a\",\"b\",\"c\"]");
        Assert.Contains(ModelProto.Parser.ParseFrom(OnnxExport.Serialize(net, 20)).Graph.Node, n => n.OpType == "Gelu");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    public void ExportedTorchModelRunsInOnnxRuntime(int k)
    {
        using var tmp = new TempDir();
        var (acts, expected) = TorchReference(k);
        string model = tmp.File("model.safetensors");
        var imp = CliRunner.Run("import", "--from", CliRunner.DataPath("torch-models", $"mlp-{k}.safetensors"),
            "--activations", string.Join(",", acts[..^1]), "--out", model);
        Assert.True(imp.ExitCode == 0, imp.Stderr);
        string onnx = tmp.File("model.onnx");
        var exp = CliRunner.Run("export", "--model", model, "--onnx", onnx, "--json");
        Assert.True(exp.ExitCode == 0, exp.Stderr);
        Assert.Equal(17, exp.Json.GetProperty("opset").GetInt32());

        var x = MnistFirst64();
        var (got, shape) = RunOnnx(onnx, x);
        Assert.Equal(new long[] { 64, 10 }, shape);
        var (abs, scaled) = Compare(got, ModelFile.Load<float>(model).Network.Predict(x).Data.ToArray());
        double vsTorch = MaxAbsDiff(got, expected.SelectMany(r => r).ToArray());
        output.WriteLine($"mlp-{k}: max |onnx − backprop| = {abs:E3}, max |onnx − pytorch| = {vsTorch:E3}");
        Assert.True(scaled <= 1e-5, $"mlp-{k}: max scaled difference {scaled}");
        Assert.True(vsTorch <= 1e-4, $"mlp-{k}: max abs difference to PyTorch {vsTorch}");
    }

    [Fact]
    public void StandardizerIsPartOfTheGraph()
    {
        using var tmp = new TempDir();
        var rng = new Random(8);
        var net = SmallNet(rng, "tanh");
        var raw = RandomInput(rng, 40, 6, range: 50);
        var std = Standardizer.Fit(raw.Data, 6);
        string model = tmp.File("model.safetensors");
        ModelFile.Save(model, net, ["x", "y", "z"], std);
        string onnx = tmp.File("model.onnx");
        var r = CliRunner.Run("export", "--model", model, "--onnx", onnx, "--opset", "13");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var (got, _) = RunOnnx(onnx, raw);
        var standardized = std.Apply(new LabeledData(raw.Data.ToArray(), new int[40], 6)).FeaturesTensor();
        var (_, scaled) = Compare(got, net.Predict(standardized).Data.ToArray());
        Assert.True(scaled <= 1e-5, $"max scaled difference {scaled}");
    }

    [Fact]
    public void Float64ModelsExportAsFloat32()
    {
        using var tmp = new TempDir();
        var rng = new Random(9);
        var net64 = SmallNet(rng, "silu").Cast<double>();
        string model = tmp.File("model.safetensors");
        ModelFile.Save(model, net64);
        string onnx = tmp.File("model.onnx");
        Assert.Equal(0, CliRunner.Run("export", "--model", model, "--onnx", onnx).ExitCode);
        var x = RandomInput(rng, 5, 6);
        var (got, _) = RunOnnx(onnx, x);
        var (_, scaled) = Compare(got, net64.Cast<float>().Predict(x).Data.ToArray());
        Assert.True(scaled <= 1e-5);
    }

    [Theory]
    [InlineData("--opset", "12", "supported opsets are 13 to 22")]
    [InlineData("--opset", "23", "supported opsets are 13 to 22")]
    [InlineData("--model", "missing", "missing")]
    [InlineData("--model", "not-a-model", "architecture is missing")]
    public void BadExportArgumentsAreExit2(string option, string value, string words)
    {
        using var tmp = new TempDir();
        string model = tmp.File("model.safetensors");
        ModelFile.Save(model, SmallNet(new Random(1), "relu"));
        string notModel = tmp.File("not-a-model.safetensors");
        SafeTensorsFile.Write(notModel, [SafeTensorEntry.Float32("0.weight", [1f], 1, 1)]);
        var args = new Dictionary<string, string> { ["--model"] = model, ["--onnx"] = tmp.File("out.onnx") };
        args[option] = value switch { "missing" => tmp.File("missing.safetensors"), "not-a-model" => notModel, _ => value };
        var r = CliRunner.Run(["export", .. args.SelectMany(kv => new[] { kv.Key, kv.Value })]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(words, r.Stderr);
        Assert.Single(r.Stderr.TrimEnd('\n').Split('\n'));
        Assert.False(File.Exists(tmp.File("out.onnx")));
    }
}
