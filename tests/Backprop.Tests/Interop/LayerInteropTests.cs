using System.Text.Json;
using Backprop.Interop;
using Backprop.IO;
using Backprop.Nn;
using Backprop.Tests.Cli;
using Backprop.Tests.Data;
using Backprop.Training;
using Microsoft.ML.OnnxRuntime;
using Xunit.Abstractions;

namespace Backprop.Tests.Interop;

/// <summary>
/// Norm and dropout layers through model files, PyTorch import (against tools/make_torch_layer_models.py's reference
/// models in data/torch-models/layers-*), ONNX export (against ONNX Runtime) and summary's parameter counts.
/// </summary>
public sealed class LayerInteropTests(ITestOutputHelper output)
{
    public static readonly string[] ReferenceModels =
        ["bn-relu-dropout-ln", "ln-noaffine-bn-noaffine", "ln-gelu-bn-silu-nobias", "dropout-first-bn-last"];

    public static TheoryData<string, string> ReferenceModelsAndDtypes()
    {
        var d = new TheoryData<string, string>();
        foreach (var m in ReferenceModels) { d.Add(m, "f32"); d.Add(m, "f64"); }
        return d;
    }

    private sealed record Reference(string Layout, string? Activations, string Dtype, long Parameters, long Buffers, double[][] Input, double[][] Expected, string[] Modules);

    private static Reference Load(string name, string dtype)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(CliRunner.DataPath("torch-models", $"layers-{name}-{dtype}.json")));
        var r = doc.RootElement;
        double[][] M(string key) => r.GetProperty(key).EnumerateArray().Select(row => row.EnumerateArray().Select(v => v.GetDouble()).ToArray()).ToArray();
        return new Reference(r.GetProperty("layout").GetString()!, r.GetProperty("activations").GetString(), r.GetProperty("dtype").GetString()!,
            r.GetProperty("parameters").GetInt64(), r.GetProperty("buffers").GetInt64(), M("input"), M("expected_output"),
            r.GetProperty("modules").EnumerateArray().Select(m => m.GetString()!).ToArray());
    }

    private static Tensor<double> Matrix(double[][] rows) => new(rows.SelectMany(r => r).ToArray(), rows.Length, rows[0].Length);

    /// <summary>Imports through the CLI, loads the model file and compares its eval outputs with PyTorch's.</summary>
    private Sequential<double> ImportAndCheck(string name, string dtype, string option, string value)
    {
        using var tmp = new TempDir();
        var reference = Load(name, dtype);
        string model = tmp.File("model.safetensors");
        var imp = CliRunner.Run("import", "--from", CliRunner.DataPath("torch-models", $"layers-{name}-{dtype}.safetensors"), option, value,
            "--dtype", reference.Dtype, "--out", model, "--json");
        Assert.True(imp.ExitCode == 0, imp.Stderr);
        Assert.Equal(reference.Parameters, imp.Json.GetProperty("parameters").GetInt64());
        var x = Matrix(reference.Input);
        var want = Matrix(reference.Expected).Data.ToArray();
        double max;
        Sequential<double> net;
        if (dtype == "f32")
        {
            var m = ModelFile.Load<float>(model);
            Assert.Equal("float32", m.Metadata["dtype"]);
            var got = m.Network.Predict(x.Cast<float>()).Data.ToArray();
            max = got.Select((g, i) => Math.Abs(g - want[i]) / Math.Max(1, Math.Abs(want[i]))).Max();
            net = m.Network.Cast<double>();
        }
        else
        {
            var m = ModelFile.Load<double>(model);
            var got = m.Network.Predict(x).Data.ToArray();
            max = got.Select((g, i) => Math.Abs(g - want[i]) / Math.Max(1, Math.Abs(want[i]))).Max();
            net = m.Network;
        }
        output.WriteLine($"{name} {dtype} ({option}): max |backprop − pytorch| / max(1, |pytorch|) = {max:E3}");
        Assert.True(max <= (dtype == "f32" ? 1e-6 : 1e-12), $"{name} {dtype}: {max}");
        return net;
    }

    [Theory]
    [MemberData(nameof(ReferenceModelsAndDtypes))]
    public void ImportWithLayoutReproducesPyTorchEvalOutputs(string name, string dtype)
    {
        var reference = Load(name, dtype);
        var net = ImportAndCheck(name, dtype, "--layout", reference.Layout);
        // every module but the activations is a layer, in order
        var kinds = reference.Modules.Where(m => m is "Linear" or "LayerNorm" or "BatchNorm1d" or "Dropout")
            .Select(m => LayerKindRegistry.Default.ForTorchModule(m)!.Name).ToArray();
        Assert.Equal(kinds, net.Layers.Select(l => l.Kind).ToArray());
        // summary agrees with torch's sum(p.numel() for p in model.parameters()) and its running statistics
        var s = ModelSummary.Of(net);
        Assert.Equal(reference.Parameters, s.Parameters);
        Assert.Equal(reference.Buffers, s.Buffers);
    }

    [Theory]
    [InlineData("bn-relu-dropout-ln", "f32")]
    [InlineData("bn-relu-dropout-ln", "f64")]
    [InlineData("ln-gelu-bn-silu-nobias", "f32")]
    [InlineData("ln-gelu-bn-silu-nobias", "f64")]
    public void ImportWithActivationListReproducesPyTorchEvalOutputs(string name, string dtype)
    {
        var reference = Load(name, dtype);
        Assert.NotNull(reference.Activations);
        var net = ImportAndCheck(name, dtype, "--activations", reference.Activations!);
        Assert.DoesNotContain(net.Layers, l => l.Kind == DropoutKind.KindName); // left out: the identity in evaluation
    }

    [Theory]
    [MemberData(nameof(ReferenceModelsAndDtypes))]
    public void SummaryCommandCountsWhatPyTorchCounts(string name, string dtype)
    {
        using var tmp = new TempDir();
        var reference = Load(name, dtype);
        string model = tmp.File("model.safetensors");
        Assert.Equal(0, CliRunner.Run("import", "--from", CliRunner.DataPath("torch-models", $"layers-{name}-{dtype}.safetensors"),
            "--layout", reference.Layout, "--out", model).ExitCode);
        var r = CliRunner.Run("summary", "--model", model, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(reference.Parameters, r.Json.GetProperty("parameters").GetInt64());
        Assert.Equal(reference.Buffers, r.Json.GetProperty("buffers").GetInt64());
        var layers = r.Json.GetProperty("layers").EnumerateArray().ToArray();
        Assert.Equal(reference.Parameters, layers.Sum(l => l.GetProperty("parameters").GetInt64()));
    }

    public static TheoryData<string, string, string[]> BadLayerImports => new()
    {
        // case, layout (or "acts:LIST"), words the one-line error must contain
        { "weight-only", "acts:relu", ["1.weight", "not 1.bias", "both"] },
        { "mean-only", "acts:relu", ["1.running_mean", "running_var"] },
        { "norm-width", "acts:relu", ["1.weight", "normalises 3 inputs", "gives 4 outputs"] },
        { "ok", "linear,layernorm,relu,linear", ["module 1", "BatchNorm1d", "not a LayerNorm"] },
        { "ok", "linear,batchnorm,swish,linear", ["'swish'", "not a module"] },
        { "ok", "linear,batchnorm,relu", ["names 3 modules", "module 3"] },
        { "ok", "linear,batchnorm,relu,linear,dropout:1.5", ["dropout:1.5", "[0, 1)"] },
        { "ok", "relu,batchnorm,relu,linear", ["module 0", "not an activation"] },
        { "ok", "linear,batchnorm,relu,tanh,linear", ["module 3", "tanh"] },
        { "gap", "acts:relu", ["modules 0 and 2", "layout"] },
    };

    [Theory]
    [MemberData(nameof(BadLayerImports))]
    public void BadLayerImportIsOneLineErrorExit2(string kind, string layout, string[] words)
    {
        using var tmp = new TempDir();
        string sd = tmp.File($"{kind}.safetensors");
        SafeTensorEntry E(string name, params int[] shape) =>
            SafeTensorEntry.Float32(name, Enumerable.Range(0, shape.Aggregate(1, (a, b) => a * b)).Select(i => 0.5f + i * 0.1f).ToArray(), shape);
        var linears = new[] { E("0.weight", 4, 3), E("0.bias", 4) };
        switch (kind)
        {
            case "weight-only": SafeTensorsFile.Write(sd, [.. linears, E("1.weight", 4), E("2.weight", 2, 4)]); break;
            case "mean-only": SafeTensorsFile.Write(sd, [.. linears, E("1.running_mean", 4), E("2.weight", 2, 4)]); break;
            case "norm-width": SafeTensorsFile.Write(sd, [.. linears, E("1.weight", 3), E("1.bias", 3), E("2.weight", 2, 4)]); break;
            case "ok": SafeTensorsFile.Write(sd, [.. linears, E("1.weight", 4), E("1.bias", 4), E("1.running_mean", 4), E("1.running_var", 4), E("3.weight", 2, 4)]); break;
            case "gap": SafeTensorsFile.Write(sd, [.. linears, E("2.weight", 4), E("2.bias", 4), E("4.weight", 2, 4)]); break;
        }
        string model = tmp.File("model.safetensors");
        File.WriteAllText(model, "existing");
        string[] how = layout.StartsWith("acts:") ? ["--activations", layout[5..]] : ["--layout", layout];
        var r = CliRunner.Run(["import", "--from", sd, .. how, "--out", model]);
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("", r.Stdout);
        string line = r.Stderr.TrimEnd('\n', '\r');
        Assert.DoesNotContain('\n', line);
        foreach (var word in words) Assert.Contains(word, line);
        Assert.Equal("existing", File.ReadAllText(model));
        output.WriteLine(line);
    }

    /// <summary>A network with every kind, random parameters, settings off their defaults and running statistics moved by training passes.</summary>
    private static Sequential<T> EveryKind<T>(int seed, bool affine) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        var rng = new Random(seed);
        var net = new Sequential<T>([
            new DenseLayer<T>(5, 7, Activations.Create<T>("identity")),
            new BatchNormLayer<T>(7, Activations.Create<T>("relu"), affine, eps: 1e-3, momentum: 0.3),
            new DropoutLayer<T>(7, 0.25),
            new DenseLayer<T>(7, 6, Activations.Create<T>("identity"), bias: false),
            new LayerNormLayer<T>(6, Activations.Create<T>("tanh"), affine, eps: 1e-4),
            new DenseLayer<T>(6, 3, Activations.Create<T>("identity")),
        ]);
        foreach (var p in net.Parameters())
            for (int i = 0; i < p.Value.Length; i++) p.Value.Span[i] = T.CreateChecked(rng.NextDouble() * 1.6 - 0.8);
        net.SetTraining(true);
        net.Layers[2].SeedRandom(7, 0);
        for (int step = 0; step < 3; step++)
        {
            var tape = new Backprop.Autodiff.Tape<T>(Backprop.Kernels.ComputeContext.Default);
            net.Forward(tape.Leaf(Tensor<T>.Random(rng, -2, 3, 8, 5), requiresGrad: false, "x"));
        }
        return net;
    }

    private static void RoundTrip<T>(bool affine) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        using var tmp = new TempDir();
        var net = EveryKind<T>(11, affine);
        string path = tmp.File("m.safetensors");
        ModelFile.Save(path, net);
        var back = ModelFile.Load<T>(path).Network;
        Assert.Equal(net.Layers.Select(l => l.Kind), back.Layers.Select(l => l.Kind));
        Assert.Equal(net.Layers.Select(l => l.Activation.Name), back.Layers.Select(l => l.Activation.Name));
        for (int i = 0; i < net.Layers.Count; i++)
        {
            Assert.Equal(net.Layers[i].Settings.OrderBy(kv => kv.Key), back.Layers[i].Settings.OrderBy(kv => kv.Key));
            Assert.Equal(net.Layers[i].Parameters.Select(p => p.Name), back.Layers[i].Parameters.Select(p => p.Name));
            for (int j = 0; j < net.Layers[i].Parameters.Count; j++)
                Assert.Equal(net.Layers[i].Parameters[j].Value.Value.Data.ToArray(), back.Layers[i].Parameters[j].Value.Value.Data.ToArray());
            Assert.Equal(net.Layers[i].Buffers.Select(b => b.Name), back.Layers[i].Buffers.Select(b => b.Name));
            for (int j = 0; j < net.Layers[i].Buffers.Count; j++)
                Assert.Equal(net.Layers[i].Buffers[j].Value.Data.ToArray(), back.Layers[i].Buffers[j].Value.Data.ToArray());
        }
        var bn = Assert.IsType<BatchNormLayer<T>>(back.Layers[1]);
        Assert.Equal(0.3, bn.Momentum);
        Assert.Equal(1e-3, bn.Eps);
        Assert.Equal(1e-4, Assert.IsType<LayerNormLayer<T>>(back.Layers[4]).Eps);
        Assert.Equal(0.25, Assert.IsType<DropoutLayer<T>>(back.Layers[2]).P);
        Assert.NotEqual(T.One, bn.Statistics.RunningVar.Span[0]); // the statistics moved, so equal ones were saved
        var x = Tensor<T>.Random(new Random(3), -2, 2, 9, 5);
        Assert.Equal(net.Predict(x).Data.ToArray(), back.Predict(x).Data.ToArray());
    }

    [Fact] public void ModelFileRoundTripsEveryKindFloat32() => RoundTrip<float>(affine: true);
    [Fact] public void ModelFileRoundTripsEveryKindFloat64() => RoundTrip<double>(affine: true);
    [Fact] public void ModelFileRoundTripsNormLayersWithoutAffineFloat32() => RoundTrip<float>(affine: false);
    [Fact] public void ModelFileRoundTripsNormLayersWithoutAffineFloat64() => RoundTrip<double>(affine: false);

    [Fact]
    public void DenseModelFilesKeepNoKindsOrSettings()
    {
        using var tmp = new TempDir();
        string path = tmp.File("m.safetensors");
        ModelFile.Save(path, Initializers.Mlp<float>([4, 5, 3], "relu", seed: 1));
        var arch = SafeTensorsFile.Read(path).Metadata[ModelFile.ArchitectureKey];
        using var doc = JsonDocument.Parse(arch);
        Assert.Equal(["sizes", "activations", "bias"], doc.RootElement.EnumerateObject().Select(p => p.Name).ToArray());
    }

    [Fact]
    public void ModelFileWithAnUnknownSettingIsAFormatError()
    {
        using var tmp = new TempDir();
        string path = tmp.File("m.safetensors");
        var net = EveryKind<float>(2, affine: true);
        var meta = ModelFile.Metadata(net, null, null);
        meta[ModelFile.ArchitectureKey] = meta[ModelFile.ArchitectureKey].Replace("\"p\":", "\"q\":");
        SafeTensorsFile.Write(path, ModelFile.Tensors(net), meta);
        var e = Assert.Throws<DataFormatException>(() => ModelFile.Load<float>(path));
        Assert.Contains("'q'", e.Message);
    }

    private static float[] RunOnnx(string path, Tensor<float> x)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1, InterOpNumThreads = 1 };
        using var session = new InferenceSession(path, options);
        using var input = OrtValue.CreateTensorValueFromMemory(x.Data.ToArray(), [x.Dim(0), x.Dim(1)]);
        using var run = new RunOptions();
        using var results = session.Run(run, ["input"], [input], ["output"]);
        return results[0].GetTensorDataAsSpan<float>().ToArray();
    }

    [Theory]
    [InlineData(true, 17)]
    [InlineData(false, 17)]
    [InlineData(true, 20)]
    public void OnnxRuntimeReproducesEvalOutputsOfEveryKind(bool affine, int opset)
    {
        using var tmp = new TempDir();
        var net = EveryKind<float>(5, affine);
        string path = tmp.File("m.onnx");
        OnnxExport.Write(path, net, opset);
        var x = Tensor<float>.Random(new Random(8), -2, 2, 16, 5);
        var want = net.Predict(x).Data.ToArray();
        var got = RunOnnx(path, x);
        Assert.Equal(want.Length, got.Length);
        double max = got.Select((g, i) => Math.Abs(g - want[i]) / Math.Max(1, Math.Abs(want[i]))).Max();
        output.WriteLine($"affine {affine}, opset {opset}: max |onnx − backprop| / max(1, |backprop|) = {max:E3}");
        Assert.True(max <= 1e-5, $"{max}");
        var model = Backprop.Interop.Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        var ops = model.Graph.Node.Select(n => n.OpType).ToArray();
        Assert.Contains("LayerNormalization", ops);
        Assert.Contains("BatchNormalization", ops);
        Assert.DoesNotContain("Dropout", ops);
    }

    [Theory]
    [InlineData("bn-relu-dropout-ln")]
    [InlineData("ln-noaffine-bn-noaffine")]
    public void ImportedPyTorchModelsExportToOnnxThatReproducesPyTorch(string name)
    {
        using var tmp = new TempDir();
        var reference = Load(name, "f32");
        var net = TorchImport.ImportLayout<float>(CliRunner.DataPath("torch-models", $"layers-{name}-f32.safetensors"), reference.Layout);
        string path = tmp.File("m.onnx");
        OnnxExport.Write(path, net);
        var got = RunOnnx(path, Matrix(reference.Input).Cast<float>());
        var want = reference.Expected.SelectMany(r => r).ToArray();
        double max = got.Select((g, i) => Math.Abs(g - want[i]) / Math.Max(1, Math.Abs(want[i]))).Max();
        output.WriteLine($"{name}: max |onnx − pytorch| = {max:E3}");
        Assert.True(max <= 1e-5, $"{max}");
    }

    [Fact]
    public void LayerNormBelowOpset17IsRefusedNamingTheLayer()
    {
        var e = Assert.Throws<NotSupportedException>(() => OnnxExport.Serialize(EveryKind<float>(1, true), 16));
        Assert.Contains("layers[4]", e.Message);
        Assert.Contains("opset 17", e.Message);
        OnnxExport.Serialize(Initializers.Mlp<float>([3, 4, 2], "relu", seed: 1), 13); // dense exports keep their opsets
    }
}

public sealed class LayerExportCliTests
{
    [Fact]
    public void ExportOfALayerNormModelBelowOpset17IsOneLineExit2AndWritesNothing()
    {
        using var tmp = new TempDir();
        string model = tmp.File("m.safetensors"), onnx = tmp.File("m.onnx");
        ModelFile.Save(model, ArchitectureSpec.Parse("4-5:ln:relu-2").Create<float>());
        var r = CliRunner.Run("export", "--model", model, "--onnx", onnx, "--opset", "16");
        Assert.Equal(2, r.ExitCode);
        string line = r.Stderr.TrimEnd('\n', '\r');
        Assert.DoesNotContain('\n', line);
        Assert.Contains("opset 17", line);
        Assert.False(File.Exists(onnx));
        Assert.Equal(0, CliRunner.Run("export", "--model", model, "--onnx", onnx).ExitCode);
        Assert.True(File.Exists(onnx));
    }

    [Fact]
    public void ImportWithActivationsNotesModulesItTakesAsPassThrough()
    {
        using var tmp = new TempDir();
        string model = tmp.File("m.safetensors");
        var r = CliRunner.Run("import", "--from", CliRunner.DataPath("torch-models", "layers-ln-noaffine-bn-noaffine-f32.safetensors"),
            "--activations", "relu,sigmoid", "--out", model);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("note: modules 1 to 2 hold no tensors", r.Stdout);
    }
}
