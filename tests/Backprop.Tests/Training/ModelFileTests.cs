using System.Text.Json;
using Backprop.Data;
using Backprop.IO;
using Backprop.Nn;
using Backprop.Tests.Cli;
using Backprop.Training;

namespace Backprop.Tests.Training;

/// <summary>An iris model trained once through the CLI for the predict / evaluate tests.</summary>
public sealed class IrisModelFixture : IDisposable
{
    private readonly TempDir _dir = new();

    public IrisModelFixture()
    {
        Path = _dir.File("iris.safetensors");
        var r = CliRunner.Run("train", "--data", CliRunner.DataPath("tabular", "iris.csv"), "--epochs", "50", "--lr", "0.01",
            "--batch", "16", "--quiet", "--json", "--out", Path);
        if (r.ExitCode != 0) throw new InvalidOperationException("training the iris model failed: " + r.Stderr);
    }

    public string Path { get; }

    public void Dispose() => _dir.Dispose();
}

public class ModelFileTests(IrisModelFixture iris) : IClassFixture<IrisModelFixture>
{
    private static Sequential<T> Net<T>() where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        var net = Initializers.Mlp<T>([5, 8, 6, 3], "tanh", seed: 42);
        // non-zero biases, so a bias lost on the way would show
        var rng = new Random(1);
        foreach (var l in net.Layers)
            for (int i = 0; i < l.Parameter("bias")!.Value.Length; i++) l.Parameter("bias")!.Value.Span[i] = T.CreateChecked(rng.NextDouble() - 0.5);
        return net;
    }

    private static readonly string[] Labels = ["cat", "dog", "ünïcode, \"quoted\""];
    private static readonly Standardizer Std = new([1.5f, -2f, 0.1f, 1e-7f, 3.25f], [0.5f, 2f, 1f / 3f, 1e-3f, 7f]);

    [Fact]
    public void Save_then_load_round_trips_float64_exactly()
    {
        using var tmp = new TempDir();
        var net = Net<double>();
        string path = tmp.File("m.safetensors");
        ModelFile.Save(path, net, Labels, Std);
        var m = ModelFile.Load<double>(path);
        TrainingAssert.BitIdentical(net, m.Network);
        Assert.Equal(net.Layers.Select(l => l.Activation.Name), m.Network.Layers.Select(l => l.Activation.Name));
        Assert.Equal(Labels, m.LabelNames);
        Assert.NotNull(m.Standardizer);
        Assert.Equal(Std.Mean, m.Standardizer!.Mean);
        Assert.Equal(Std.Std, m.Standardizer.Std);
        Assert.Equal("float64", m.Metadata["dtype"]);
        Assert.Equal(ModelFile.FormatValue, m.Metadata[ModelFile.FormatKey]);
    }

    [Fact]
    public void Feature_names_round_trip_in_order_and_a_file_without_them_has_none()
    {
        using var tmp = new TempDir();
        var net = Net<float>();
        string[] features = ["z", "a", "ünïcode, \"quoted\"", "b(cm)", "a2"];
        string named = tmp.File("named.safetensors"), plain = tmp.File("plain.safetensors");
        ModelFile.Save(named, net, Labels, Std, featureNames: features);
        ModelFile.Save(plain, net, Labels, Std);
        Assert.Equal(features, ModelFile.Load<float>(named).FeatureNames);
        Assert.True(SafeTensorsFile.Read(named).Metadata.ContainsKey(ModelFile.FeatureNamesKey));
        Assert.Null(ModelFile.Load<float>(plain).FeatureNames);
        Assert.False(SafeTensorsFile.Read(plain).Metadata.ContainsKey(ModelFile.FeatureNamesKey));
        // as many names as inputs, on the way in and on the way out
        Assert.Throws<ArgumentException>(() => ModelFile.Save(tmp.File("short.safetensors"), net, featureNames: features[..4]));
        string bad = tmp.File("bad.safetensors");
        ModelFile.Save(bad, net, extraMetadata: new Dictionary<string, string> { [ModelFile.FeatureNamesKey] = DataMetadata.StringsToJson(features[..3]) });
        var e = Assert.Throws<DataFormatException>(() => ModelFile.Load<float>(bad));
        Assert.Contains(ModelFile.FeatureNamesKey, e.Message);
    }

    [Fact]
    public void Save_then_load_round_trips_float32_and_layers_without_bias()
    {
        using var tmp = new TempDir();
        var w0 = Tensor<float>.Random(new Random(3), -1, 1, 4, 3);
        var w1 = Tensor<float>.Random(new Random(4), -1, 1, 2, 4);
        var b1 = Tensor<float>.Random(new Random(5), -1, 1, 2);
        var net = new Sequential<float>([
            new DenseLayer<float>(w0, null, Activations.Create<float>("sigmoid")),
            new DenseLayer<float>(w1, b1, Activations.Create<float>("identity")),
        ]);
        string path = tmp.File("m.safetensors");
        ModelFile.Save(path, net);
        var m = ModelFile.Load<float>(path);
        TrainingAssert.BitIdentical(net, m.Network);
        Assert.Null(m.Network.Layers[0].Parameter("bias"));
        Assert.NotNull(m.Network.Layers[1].Parameter("bias"));
        Assert.Equal(["sigmoid", "identity"], m.Network.Layers.Select(l => l.Activation.Name).ToArray());
        Assert.Equal(["0", "1"], m.LabelNames); // no names saved: class indices
        Assert.Null(m.Standardizer);
        Assert.Equal(new[] { "layers.0.weight", "layers.1.bias", "layers.1.weight" }, SafeTensorsFile.Read(path).Names.Order().ToArray());
    }

    [Fact]
    public void Tensors_are_named_layers_i_weight_and_bias_and_metadata_holds_the_architecture()
    {
        using var tmp = new TempDir();
        string path = tmp.File("m.safetensors");
        ModelFile.Save(path, Net<float>(), Labels, Std);
        var file = SafeTensorsFile.Read(path);
        Assert.Equal(new[] { "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias", "layers.2.weight", "layers.2.bias" }.Order(),
            file.Names.Order());
        Assert.Equal([8, 5], file.GetInfo("layers.0.weight").ShapeArray);
        Assert.Equal([3], file.GetInfo("layers.2.bias").ShapeArray);
        Assert.Equal("F32", file.GetInfo("layers.1.weight").DType);

        using var arch = JsonDocument.Parse(file.Metadata[ModelFile.ArchitectureKey]);
        var root = arch.RootElement;
        Assert.Equal([5, 8, 6, 3], root.GetProperty("sizes").EnumerateArray().Select(e => e.GetInt32()).ToArray());
        Assert.Equal(["tanh", "tanh", "identity"], root.GetProperty("activations").EnumerateArray().Select(e => e.GetString()!).ToArray());
        Assert.Equal([true, true, true], root.GetProperty("bias").EnumerateArray().Select(e => e.GetBoolean()).ToArray());
        Assert.Equal(ModelFile.FormatValue, file.Metadata[ModelFile.FormatKey]);
        Assert.True(file.Metadata.ContainsKey("label_names"));
        Assert.True(file.Metadata.ContainsKey("standardizer.mean"));
    }

    [Fact]
    public void A_safetensors_file_that_is_not_a_backprop_model_is_rejected()
    {
        var e = Assert.Throws<DataFormatException>(() => ModelFile.Load<float>(CliRunner.DataPath("torch-models", "mlp-0.safetensors")));
        Assert.Contains("architecture", e.Message);
    }

    // ---- predict / evaluate on a model trained by the CLI ----

    private static string Iris => CliRunner.DataPath("tabular", "iris.csv");

    [Fact]
    public void Predict_gives_one_row_per_record_in_file_order_with_argmax_predictions()
    {
        string model = iris.Path;
        var r = CliRunner.Run("predict", "--model", model, "--data", Iris, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = r.Json;
        var outputs = json.GetProperty("outputs").EnumerateArray().Select(row => row.EnumerateArray().Select(v => v.GetDouble()).ToArray()).ToArray();
        var predictions = json.GetProperty("predictions").EnumerateArray().Select(p => p.GetString()!).ToArray();

        var m = ModelFile.Load<float>(model);
        var csv = CsvDataset.Load(Iris, null, m.LabelNames);
        Assert.Equal(csv.Count, outputs.Length);
        Assert.Equal(csv.Count, predictions.Length);
        Assert.All(outputs, o => Assert.Equal(3, o.Length));
        for (int i = 0; i < outputs.Length; i++)
        {
            int best = 0;
            for (int j = 1; j < 3; j++) if (outputs[i][j] > outputs[i][best]) best = j;
            Assert.Equal(m.LabelNames[best], predictions[i]);
        }

        // file order: row i's outputs are the network applied to the file's row i (standardised as in training)
        var x = m.Standardizer!.Apply(csv.Data).FeaturesTensor();
        var expected = m.Network.Predict(x);
        for (int i = 0; i < csv.Count; i++)
            for (int j = 0; j < 3; j++)
                Assert.True(Math.Abs(expected[i, j] - outputs[i][j]) <= 1e-5 * Math.Max(1, Math.Abs(outputs[i][j])), $"row {i}, output {j}");

        // the predictions agree with the true labels about as well as the model is accurate
        int correct = Enumerable.Range(0, csv.Count).Count(i => predictions[i] == m.LabelNames[csv.Labels[i]]);
        Assert.True(correct >= 0.9 * csv.Count, $"{correct}/{csv.Count} correct");

        // --limit keeps the first rows
        var limited = CliRunner.Run("predict", "--model", model, "--data", Iris, "--limit", "7").Json;
        Assert.Equal(predictions[..7], limited.GetProperty("predictions").EnumerateArray().Select(p => p.GetString()!).ToArray());
        Assert.Equal(outputs[0], limited.GetProperty("outputs")[0].EnumerateArray().Select(v => v.GetDouble()).ToArray());
    }

    [Fact]
    public void Evaluate_reports_accuracy_loss_and_a_consistent_confusion_matrix()
    {
        string model = iris.Path;
        var r = CliRunner.Run("evaluate", "--model", model, "--data", Iris, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var json = r.Json;
        double acc = json.GetProperty("accuracy").GetDouble();
        double loss = json.GetProperty("loss").GetDouble();
        int samples = json.GetProperty("samples").GetInt32();
        var confusion = json.GetProperty("confusion").EnumerateArray().Select(row => row.EnumerateArray().Select(v => v.GetInt32()).ToArray()).ToArray();
        Assert.Equal(150, samples);
        Assert.Equal(["setosa", "versicolor", "virginica"], json.GetProperty("labels").EnumerateArray().Select(e => e.GetString()!).ToArray());
        Assert.Equal(3, confusion.Length);
        Assert.All(confusion, row => Assert.Equal(3, row.Length));
        Assert.Equal(samples, confusion.Sum(row => row.Sum()));
        Assert.All(confusion, row => Assert.Equal(50, row.Sum())); // iris: 50 of each class (rows are true labels)
        int diagonal = Enumerable.Range(0, 3).Sum(i => confusion[i][i]);
        Assert.Equal(acc, (double)diagonal / samples, 12);
        Assert.True(acc > 0.9, $"accuracy {acc}");
        Assert.True(loss > 0 && loss < 0.5, $"loss {loss}");

        // the predicted column counts agree with predict
        var predictions = CliRunner.Run("predict", "--model", model, "--data", Iris).Json.GetProperty("predictions")
            .EnumerateArray().Select(p => p.GetString()!).ToArray();
        string[] names = ["setosa", "versicolor", "virginica"];
        for (int j = 0; j < 3; j++) Assert.Equal(predictions.Count(p => p == names[j]), confusion.Sum(row => row[j]));
    }

    [Fact]
    public void A_float64_model_evaluates_like_its_float32_twin()
    {
        using var tmp = new TempDir();
        string[] Args(string dtype, string output) =>
            ["train", "--data", Iris, "--epochs", "20", "--lr", "0.01", "--batch", "16", "--quiet", "--json", "--dtype", dtype, "--out", output];
        var r32 = CliRunner.Run(Args("float32", tmp.File("f32.safetensors")));
        var r64 = CliRunner.Run(Args("float64", tmp.File("f64.safetensors")));
        Assert.Equal(0, r32.ExitCode);
        Assert.Equal(0, r64.ExitCode);
        Assert.Equal("float64", SafeTensorsFile.Read(tmp.File("f64.safetensors")).Metadata["dtype"]);
        Assert.Equal("F64", SafeTensorsFile.Read(tmp.File("f64.safetensors")).GetInfo("layers.0.weight").DType);
        var e32 = CliRunner.Run("evaluate", "--model", tmp.File("f32.safetensors"), "--data", Iris, "--json").Json;
        var e64 = CliRunner.Run("evaluate", "--model", tmp.File("f64.safetensors"), "--data", Iris, "--json").Json;
        Assert.Equal(e32.GetProperty("accuracy").GetDouble(), e64.GetProperty("accuracy").GetDouble());
        double l32 = e32.GetProperty("loss").GetDouble(), l64 = e64.GetProperty("loss").GetDouble();
        Assert.True(Math.Abs(l32 - l64) < 1e-3, $"loss {l32} (float32) vs {l64} (float64)");
    }
}
