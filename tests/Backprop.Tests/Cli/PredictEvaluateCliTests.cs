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

    private const string IrisHeader = "sepal_length_(cm),sepal_width_(cm),petal_length_(cm),petal_width_(cm),label";

    [Theory]
    [InlineData("predict")]
    [InlineData("evaluate")]
    public void A_finite_feature_that_standardises_past_float32_is_refused_by_file_row_and_column(string command)
    {
        string model = TrainIris("std");
        string csv = _tmp.File("huge.csv");
        File.WriteAllText(csv, $"{IrisHeader}\n5.1,3.5,1.4,0.2,setosa\n3e38,3e38,-3e38,3e38,setosa\n");
        var r = CliRunner.Run(command, "--model", model, "--data", csv, "--json");
        TrainingAssert.UsageError(r, "huge.csv");
        Assert.Contains("row 3, column 'sepal_", r.Stderr);
    }

    [Fact]
    public void Outputs_and_a_loss_that_overflow_are_written_as_null()
    {
        // weights of 1e38 on iris' raw features (no standardizer): every logit overflows to +inf, the loss is NaN
        var net = Initializers.Mlp<float>([4, 3], "relu", 0);
        foreach (var p in net.Layers[0].Parameters) p.Value.Value.Fill(1e38f);
        string model = _tmp.File("overflow.safetensors");
        ModelFile.Save(model, net, ["setosa", "versicolor", "virginica"]);

        var p1 = CliRunner.Run("predict", "--model", model, "--data", Iris);
        Assert.True(p1.ExitCode == 0, p1.Stderr);
        var first = p1.Json.GetProperty("outputs")[0];
        Assert.All(first.EnumerateArray(), v => Assert.Equal(System.Text.Json.JsonValueKind.Null, v.ValueKind));

        var e = CliRunner.Run("evaluate", "--model", model, "--data", Iris, "--json");
        Assert.True(e.ExitCode == 0, e.Stderr);
        Assert.Equal(System.Text.Json.JsonValueKind.Null, e.Json.GetProperty("loss").ValueKind);
    }

    /// <summary>30 rows of two features and targets of <paramref name="task"/>: class names, values, or two 0/1 labels.</summary>
    private static string[] TaskRows(string task) => Enumerable.Range(0, 30).Select(i =>
        $"{i % 7}.5,{i * 3 % 5}.25," + task switch
        {
            "classification" => $"c{i % 3}",
            "regression" => $"{0.5 * i + 0.25}".Replace(',', '.'),
            _ => $"{i % 2},{i / 2 % 2}",
        }).ToArray();

    [Theory]
    [InlineData("classification", "", "?")]
    [InlineData("regression", "", "n/a")]
    [InlineData("multilabel", "2", "")]
    public void Predict_does_not_read_the_label_columns(string task, string bad0, string bad1)
    {
        string header = task == "multilabel" ? "a,b,y1,y2" : "a,b,y";
        var rows = TaskRows(task);
        string good = _tmp.File(task + ".csv");
        File.WriteAllLines(good, [header, .. rows]);
        string model = _tmp.File(task + ".safetensors");
        string[] how = task switch
        {
            "classification" => ["--label", "y"],
            "regression" => ["--task", "regression", "--label", "y"],
            _ => ["--labels", "y1,y2"],
        };
        var t = CliRunner.Run(["train", "--data", good, .. how, "--epochs", "1", "--out", model, "--quiet"]);
        Assert.True(t.ExitCode == 0, t.Stderr);

        // the same rows, the first label empty or not 0/1, the second unknown or empty
        var badRows = (string[])rows.Clone();
        badRows[0] = string.Join(",", rows[0].Split(',')[..2]) + "," + (task == "multilabel" ? $"{bad0},1" : bad0);
        badRows[1] = string.Join(",", rows[1].Split(',')[..2]) + "," + (task == "multilabel" ? $"0,{bad1}" : bad1);
        string bad = _tmp.File(task + "-bad.csv");
        File.WriteAllLines(bad, [header, .. badRows]);

        var expected = CliRunner.Run("predict", "--model", model, "--data", good);
        Assert.True(expected.ExitCode == 0, expected.Stderr);
        var p = CliRunner.Run("predict", "--model", model, "--data", bad);
        Assert.True(p.ExitCode == 0, p.Stderr);
        Assert.Equal(expected.LastLine, p.LastLine);
        // evaluate still reads them, and says which row and column is wrong
        TrainingAssert.UsageError(CliRunner.Run("evaluate", "--model", model, "--data", bad), ", column 'y");
    }

    [Theory]
    [InlineData("predict", "a,b,label\n1,2,setosa\n3,4,virginica\n", "2 feature columns ('a', 'b')")]
    [InlineData("evaluate", "a,b,label\n1,2,setosa\n3,4,virginica\n", "2 feature columns ('a', 'b')")]
    [InlineData("predict", "a,b,c,d,e,label\n1,2,3,4,5,setosa\n", "5 feature columns")]
    [InlineData("evaluate", "a,b,c,d,e,label\n1,2,3,4,5,setosa\n", "5 feature columns")]
    public void Data_of_another_width_is_refused_naming_the_file_and_both_counts(string command, string csv, string found)
    {
        // a model that records no feature names takes columns by position, so only the width can be checked
        string model = WithoutFeatureNames(TrainIris("width"));
        string path = _tmp.File("other-width.csv");
        File.WriteAllText(path, csv);
        var r = CliRunner.Run(command, "--model", model, "--data", path);
        TrainingAssert.UsageError(r, "other-width.csv");
        Assert.Contains(found, r.Stderr);
        Assert.Contains("the model takes 4", r.Stderr);
    }

    /// <summary>A copy of a model file as written before feature names were recorded: every entry but <see cref="ModelFile.FeatureNamesKey"/>.</summary>
    private string WithoutFeatureNames(string model)
    {
        var m = ModelFile.Load<float>(model);
        Assert.NotNull(m.FeatureNames);
        string old = _tmp.File(Path.GetFileNameWithoutExtension(model) + "-unnamed.safetensors");
        ModelFile.Save(old, m.Network, m.LabelNames, m.Standardizer,
            extraMetadata: m.Metadata.Where(kv => kv.Key != ModelFile.FeatureNamesKey).ToDictionary(kv => kv.Key, kv => kv.Value));
        Assert.Null(ModelFile.Load<float>(old).FeatureNames);
        return old;
    }

    /// <summary>iris.csv with its columns in the order <paramref name="order"/> (indices into the original's), the header renamed by <paramref name="rename"/>.</summary>
    private string IrisColumns(string name, int[] order, Func<string, string>? rename = null)
    {
        var lines = File.ReadAllLines(Iris).Where(l => l.Length > 0).Select(l => l.Split(',')).ToArray();
        string path = _tmp.File(name + ".csv");
        File.WriteAllLines(path, lines.Select((f, i) => string.Join(",", order.Select(j => i == 0 && rename is not null ? rename(f[j]) : f[j]))));
        return path;
    }

    [Theory]
    [InlineData("predict")]
    [InlineData("evaluate")]
    public void Columns_in_another_order_are_matched_by_the_names_the_model_records(string command)
    {
        string model = TrainIris("named");
        Assert.Equal(File.ReadLines(Iris).First().Split(',')[..4], ModelFile.Load<float>(model).FeatureNames);
        string reordered = IrisColumns("reordered", [3, 4, 1, 0, 2]);
        var expected = CliRunner.Run(command, "--model", model, "--data", Iris, "--json");
        Assert.True(expected.ExitCode == 0, expected.Stderr);
        var r = CliRunner.Run(command, "--model", model, "--data", reordered, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(expected.LastLine, r.LastLine);
    }

    [Theory]
    [InlineData("predict")]
    [InlineData("evaluate")]
    public void A_file_missing_a_feature_column_is_refused_naming_it(string command)
    {
        string model = TrainIris("missing");
        // petal_width_(cm) under another name: the right width, but not the model's columns
        string path = IrisColumns("missing", [0, 1, 2, 3, 4], h => h == "petal_width_(cm)" ? "extra" : h);
        var r = CliRunner.Run(command, "--model", model, "--data", path);
        TrainingAssert.UsageError(r, "missing.csv");
        Assert.Contains("no feature column 'petal_width_(cm)'", r.Stderr);
        Assert.Contains("'sepal_length_(cm)', 'sepal_width_(cm)', 'petal_length_(cm)', 'petal_width_(cm)'", r.Stderr);
    }

    [Fact]
    public void A_model_without_feature_names_takes_columns_by_position_as_before()
    {
        string model = WithoutFeatureNames(TrainIris("positional"));
        var original = CliRunner.Run("predict", "--model", model, "--data", Iris, "--json");
        Assert.True(original.ExitCode == 0, original.Stderr);
        // other names, same positions: the same outputs
        string renamed = IrisColumns("renamed", [0, 1, 2, 3, 4], h => h == "label" ? h : "x" + h);
        var r = CliRunner.Run("predict", "--model", model, "--data", renamed, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(original.Json.GetProperty("outputs").ToString(), r.Json.GetProperty("outputs").ToString());
        // the same names in another order: read by position, so other outputs
        var swapped = CliRunner.Run("predict", "--model", model, "--data", IrisColumns("swapped", [3, 2, 1, 0, 4]), "--json");
        Assert.True(swapped.ExitCode == 0, swapped.Stderr);
        Assert.NotEqual(original.Json.GetProperty("outputs").ToString(), swapped.Json.GetProperty("outputs").ToString());
    }
}
