using Backprop.Data;
using Backprop.Tests.Training;
using Backprop.Training;

namespace Backprop.Tests.Cli;

/// <summary>predict and evaluate on saved models: the model's own precision, and rows the commands must refuse or read.</summary>
public sealed class PredictEvaluateCliTests : IDisposable
{
    private readonly TempDir _tmp = new();
    public void Dispose() => _tmp.Dispose();

    private static string Iris => CliRunner.DataPath("tabular", "iris.csv");

    private string TrainIris(string name, params string[] options)
    {
        string model = _tmp.File(name + ".safetensors");
        var r = CliRunner.Run(["train", "--data", Iris, "--epochs", "1", "--out", model, "--quiet", .. options]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return model;
    }

    [Fact]
    public void A_float64_model_predicts_and_evaluates_in_float64()
    {
        string model = TrainIris("f64", "--dtype", "float64");
        var m = ModelFile.Load<double>(model);
        var facts = TaskMetadata.Read(m.Metadata, model);
        var data = DataLoading.ForModel(Iris, facts.Targets(m.LabelNames), m.Standardizer, facts.TargetScaling);
        var expected = Trainer<double>.Predict(m.Network, data).Span.ToArray();
        // the comparison can tell the precisions apart: some output is not a float32 value
        Assert.Contains(expected, v => (double)(float)v != v);

        var p = CliRunner.Run("predict", "--model", model, "--data", Iris);
        Assert.True(p.ExitCode == 0, p.Stderr);
        var rows = p.Json.GetProperty("outputs");
        int c = m.Network.Outputs;
        Assert.Equal(data.Count, rows.GetArrayLength());
        int i = 0;
        foreach (var row in rows.EnumerateArray())
        {
            int j = 0;
            foreach (var v in row.EnumerateArray()) Assert.Equal(expected[i * c + j++], v.GetDouble());
            Assert.Equal(c, j);
            i++;
        }

        var e = CliRunner.Run("evaluate", "--model", model, "--data", Iris, "--json");
        Assert.True(e.ExitCode == 0, e.Stderr);
        Assert.Equal(Trainer<double>.Measure(m.Network, data, facts.Objective).Loss, e.Json.GetProperty("loss").GetDouble());
    }
}
