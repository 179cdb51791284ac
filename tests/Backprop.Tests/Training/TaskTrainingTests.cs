using System.Text.Json;
using Backprop.Data;
using Backprop.Tests.Cli;
using Backprop.Training;

namespace Backprop.Tests.Training;

/// <summary>
/// Regression, multi-label and weighted classification through the CLI (tiny step budgets: these check the plumbing,
/// benchmarks/sklearn_compare.py the quality), the task metrics against their definitions, and the bad input of issue 13.
/// </summary>
public sealed class TaskTrainingTests : IDisposable
{
    private readonly TempDir _tmp = new();
    public void Dispose() => _tmp.Dispose();

    private static string Tab(string file) => CliRunner.DataPath("tabular", file);

    private string Csv(string name, string text)
    {
        string path = _tmp.File(name);
        File.WriteAllText(path, text);
        return path;
    }

    private static double[] Targets(string file, string column)
    {
        var lines = File.ReadAllLines(file);
        int c = Array.IndexOf(lines[0].Split(','), column);
        return lines.Skip(1).Where(l => l.Length > 0).Select(l => double.Parse(l.Split(',')[c], System.Globalization.CultureInfo.InvariantCulture)).ToArray();
    }

    [Fact]
    public void A_regression_reports_rmse_mae_and_r2_and_evaluate_and_predict_find_the_target_by_name()
    {
        string model = _tmp.File("r.safetensors");
        var r = CliRunner.Run("train", "--data", Tab("friedman1.csv"), "--task", "regression", "--label", "target", "--epochs", "4", "--json", "--quiet", "--out", model);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var j = r.Json;
        Assert.Equal("regression", j.GetProperty("task").GetString());
        Assert.True(j.GetProperty("test_r2").GetDouble() > 0.5, r.Stdout);
        Assert.True(j.GetProperty("test_rmse").GetDouble() >= j.GetProperty("test_mae").GetDouble());

        // no --label: the model knows its target column; every row of the file is scored
        var e = CliRunner.Run("evaluate", "--model", model, "--data", Tab("friedman1.csv"), "--json");
        Assert.True(e.ExitCode == 0, e.Stderr);
        Assert.Equal(2000, e.Json.GetProperty("samples").GetInt32());
        double rmse = e.Json.GetProperty("rmse").GetDouble(), r2 = e.Json.GetProperty("r2").GetDouble();
        Assert.True(e.Json.GetProperty("mae").GetDouble() <= rmse);

        // predictions come back in the target's units: R² and RMSE recomputed from them agree with evaluate's
        var p = CliRunner.Run("predict", "--model", model, "--data", Tab("friedman1.csv"));
        Assert.True(p.ExitCode == 0, p.Stderr);
        var predicted = p.Json.GetProperty("predictions").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        var y = Targets(Tab("friedman1.csv"), "target");
        double mean = y.Average(), sse = y.Zip(predicted, (a, b) => (a - b) * (a - b)).Sum(), sst = y.Sum(a => (a - mean) * (a - mean));
        Assert.Equal(Math.Sqrt(sse / y.Length), rmse, 1e-3);
        Assert.Equal(1 - sse / sst, r2, 1e-4);

        // a new file of features alone (no target column) predicts the same
        var lines = File.ReadAllLines(Tab("friedman1.csv")).Take(4).Select(l => string.Join(",", l.Split(',')[..^1]));
        string featuresOnly = Csv("features.csv", string.Join("\n", lines));
        var f = CliRunner.Run("predict", "--model", model, "--data", featuresOnly);
        Assert.True(f.ExitCode == 0, f.Stderr);
        var again = f.Json.GetProperty("predictions").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        Assert.Equal(3, again.Length);
        for (int i = 0; i < 3; i++) Assert.Equal(predicted[i], again[i], 1e-4);   // another batch size sums in another order
    }

    [Fact]
    public void A_column_of_non_integer_numbers_trains_a_regression_and_says_so_first()
    {
        var r = CliRunner.Run("train", "--data", Tab("friedman1.csv"), "--epochs", "1", "--out", _tmp.File("m.safetensors"));
        Assert.True(r.ExitCode == 0, r.Stderr);
        var first = r.Stdout.Split('\n')[0];
        Assert.Contains("non-integer numbers: a regression", first);
        Assert.Contains("val r2", r.Stdout);
    }

    [Fact]
    public void Several_target_columns_train_one_output_each()
    {
        string path = Csv("two.csv", "a,b,y1,y2\n" + string.Join("\n", Enumerable.Range(0, 60).Select(i => $"{i % 7},{i % 5},{i % 7 + 0.5},{(i % 5) * 2.5}")));
        string model = _tmp.File("two.safetensors");
        var r = CliRunner.Run("train", "--data", path, "--task", "regression", "--label", "y1,y2", "--epochs", "3", "--json", "--quiet", "--out", model);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var p = CliRunner.Run("predict", "--model", model, "--data", path, "--limit", "2");
        Assert.Equal(["y1", "y2"], p.Json.GetProperty("columns").EnumerateArray().Select(x => x.GetString()));
        Assert.All(p.Json.GetProperty("predictions").EnumerateArray(), row => Assert.Equal(2, row.GetArrayLength()));
    }

    [Fact]
    public void Multi_label_reports_subset_accuracy_and_macro_f1_and_predict_prints_probabilities_and_label_sets()
    {
        string model = _tmp.File("ml.safetensors"), plots = _tmp.File("plots");
        var r = CliRunner.Run("train", "--data", Tab("digits-multilabel.csv"), "--labels", "even,gt4,prime", "--epochs", "2", "--json",
            "--pos-weight", "2", "--plots", plots, "--out", model);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.True(r.Json.GetProperty("test_subset_accuracy").GetDouble() > 0.5);
        Assert.True(r.Json.GetProperty("test_f1_macro").GetDouble() > 0.5);
        using var history = JsonDocument.Parse(File.ReadAllText(Path.Combine(plots, "history.json")));
        var epoch = history.RootElement.GetProperty("epochs")[0].GetProperty("metrics");
        foreach (var key in new[] { "train_subset_accuracy", "train_f1_macro", "val_subset_accuracy", "val_f1_macro" })
            Assert.True(epoch.TryGetProperty(key, out _), key);
        Assert.True(File.Exists(Path.Combine(plots, "f1_macro.png")));

        var e = CliRunner.Run("evaluate", "--model", model, "--data", Tab("digits-multilabel.csv"), "--json");
        Assert.True(e.ExitCode == 0, e.Stderr);
        Assert.Equal(3, e.Json.GetProperty("f1_per_label").GetArrayLength());
        Assert.True(e.Json.TryGetProperty("subset_accuracy", out _));

        var p = CliRunner.Run("predict", "--model", model, "--data", Tab("digits-multilabel.csv"), "--limit", "5");
        var probs = p.Json.GetProperty("probabilities").EnumerateArray().ToArray();
        var sets = p.Json.GetProperty("predictions").EnumerateArray().ToArray();
        string[] names = ["even", "gt4", "prime"];
        for (int i = 0; i < 5; i++)
        {
            var pi = probs[i].EnumerateArray().Select(x => x.GetDouble()).ToArray();
            Assert.All(pi, v => Assert.InRange(v, 0, 1));
            Assert.Equal(names.Where((_, k) => pi[k] >= 0.5), sets[i].EnumerateArray().Select(x => x.GetString()));
        }
    }

    [Fact]
    public void Class_weights_train_and_evaluate_adds_balanced_accuracy_and_per_class_recall()
    {
        string model = _tmp.File("w.safetensors");
        var r = CliRunner.Run("train", "--data", Tab("breast_cancer.csv"), "--class-weights", "balanced", "--epochs", "3", "--json", "--quiet", "--out", model);
        Assert.True(r.ExitCode == 0, r.Stderr);
        var e = CliRunner.Run("evaluate", "--model", model, "--data", Tab("breast_cancer.csv"), "--json");
        var recall = e.Json.GetProperty("per_class_recall").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        Assert.Equal(2, recall.Length);
        Assert.Equal(recall.Average(), e.Json.GetProperty("balanced_accuracy").GetDouble(), 12);
        Assert.True(CliRunner.Run("train", "--data", Tab("iris.csv"), "--class-weights", "1,2,0.5", "--epochs", "1", "--quiet", "--out", _tmp.File("x.st")).ExitCode == 0);
    }

    [Fact]
    public void With_no_flags_a_csv_run_says_its_defaults_in_its_first_line()
    {
        var r = CliRunner.Run("train", "--data", Tab("iris.csv"), "--out", _tmp.File("d.safetensors"), "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var first = r.Stdout.Split('\n')[0];
        Assert.StartsWith("defaults for ", first);
        foreach (var part in new[] { "batch ", "lr ", "epochs", "early stopping" }) Assert.Contains(part, first);
        // given settings are not replaced
        var g = CliRunner.Run("train", "--data", Tab("iris.csv"), "--epochs", "3", "--batch", "8", "--out", _tmp.File("e.safetensors"), "--json");
        Assert.DoesNotContain("batch 16", g.Stdout.Split('\n')[0]);
        Assert.Equal(3, g.Json.GetProperty("epochs").GetInt32());
    }

    public static TheoryData<string, string[], string> BadInput => new()
    {
        { "label,x\na,1\na,2\na,3\na,4\na,5\na,6\n", [], "has only one class" },
        { "x,p,q\n1,0,1\n2,1,2\n3,0,0\n", ["--labels", "p,q"], "'2' is not 0 or 1" },
        { "x,y\n1,0.5\n2,NaN\n3,1.5\n", ["--task", "regression"], "'NaN' is not a finite number" },
        { "x,y\n1,0.5\n2,\n3,1.5\n", ["--task", "regression"], "the target is empty" },
        { "x,y\n1,0.5\n2,nan\n3,1.5\n", [], "'nan' is not a finite number" },
        { "x,label\n1,0\n2,1\n3,0\n4,1\n5,0\n6,1\n", ["--class-weights", "1,2,3"], "gives 3 weights but the data has 2 classes" },
        { "x,label\n1,0\n2,1\n3,0\n4,1\n5,0\n6,1\n", ["--class-weights", "1,-2"], "negative" },
        { "x,p,q\n1,0,1\n2,1,0\n3,0,0\n", ["--labels", "p,nope"], "no label column named 'nope'" },
    };

    [Theory]
    [MemberData(nameof(BadInput))]
    public void Bad_input_is_one_line_and_exit_2_and_leaves_the_model_file_alone(string csv, string[] flags, string message)
    {
        string path = Csv("bad.csv", csv), model = _tmp.File("keep.safetensors");
        File.WriteAllText(model, "an existing model");
        var r = CliRunner.Run(["train", "--data", path, "--epochs", "1", "--out", model, .. flags]);
        Assert.Equal(2, r.ExitCode);
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.Contains(message, lines[0]);
        Assert.Equal("an existing model", File.ReadAllText(model));
    }
}

/// <summary>A step on target values (regression, multi-label) keeps the zero-allocation steady state of the classifier's.</summary>
public sealed class ValueStepAllocationTests
{
    [Theory]
    [InlineData("mse", 1)]
    [InlineData("huber", 2)]
    [InlineData("bce_with_logits", 1)]
    public void A_step_on_target_values_allocates_nothing(string loss, int threads)
    {
        using var context = new Backprop.Kernels.ComputeContext(threads);
        var rng = new Random(2);
        int n = 8 * 5000, d = 6, t = 3;   // one epoch outlasts the measurement: starting one allocates its Random
        var x = Enumerable.Range(0, n * d).Select(_ => (float)rng.NextDouble()).ToArray();
        var y = Enumerable.Range(0, n * t).Select(_ => (float)rng.Next(2)).ToArray();
        var data = new LabeledData(x, y, t, d);
        var kind = Backprop.Ops.LossKind.BceWithLogits.Name == loss ? TrainingTask.MultiLabel : TrainingTask.Regression;
        var lossKind = kind.Losses.First(l => l.Name == loss);
        var net = Initializers.Mlp<float>([d, 16, t], "relu", 0);
        var step = new TrainingStep<float>(net, 8, new TrainingObjective(kind, lossKind, new Backprop.Ops.LossSettings { PosWeight = [2, 2, 2] }), context);
        var opt = Optimizer<float>.Create("adam", net.Parameters().ToArray(), 0.01, context: context);
        var metrics = kind.CreateMetrics(t);
        var loader = new BatchLoader(data, 8, 0);
        int epoch = 0;
        void Round()
        {
            if (!loader.Advance()) { loader.StartEpoch(++epoch); loader.Advance(); }
            step.Load(loader);
            step.ForwardBackward();
            opt.Step();
            step.Measure(metrics, loader.CurrentY, loader.CurrentBatchSize);
        }
        loader.StartEpoch(0);
        for (int i = 0; i < 30; i++) Round();
        Assert.Equal(0, Backprop.Tests.Performance.SteadyState.AllocatedBytes(Round, context, 50));
        Assert.True(float.IsFinite(step.Loss.Value[0]));
    }
}

/// <summary>The task metrics against their definitions, computed here independently.</summary>
public sealed class TaskMetricsTests
{
    [Fact]
    public void Regression_metrics_are_in_original_units_and_r2_is_about_the_data_own_mean()
    {
        var rng = new Random(1);
        float[] y = Enumerable.Range(0, 50).Select(_ => (float)(rng.NextDouble() * 10)).ToArray();
        float[] p = y.Select(v => v + (float)(rng.NextDouble() - 0.5)).ToArray();
        var scaling = new Standardizer([3f], [2f]);
        float[] ys = y.Select(v => (v - 3f) / 2f).ToArray(), ps = p.Select(v => (v - 3f) / 2f).ToArray();
        var m = TrainingTask.Regression.CreateMetrics(1, scaling);
        m.Add<float>(ps.AsSpan(0, 20), ys.AsSpan(0, 20), default, 20);
        m.Add<float>(ps.AsSpan(20), ys.AsSpan(20), default, 30);
        var r = m.Results().ToDictionary(x => x.Name, x => x.Value);
        double mean = y.Average(v => (double)v);
        double sse = y.Zip(p, (a, b) => (double)(a - b) * (a - b)).Sum(), sst = y.Sum(a => (a - mean) * (a - mean));
        Assert.Equal(Math.Sqrt(sse / 50), r["rmse"], 4);
        Assert.Equal(y.Zip(p, (a, b) => Math.Abs((double)a - b)).Average(), r["mae"], 4);
        Assert.Equal(1 - sse / sst, r["r2"], 4);
    }

    [Fact]
    public void Balanced_accuracy_is_the_mean_recall_and_f1_macro_the_mean_of_per_label_f1()
    {
        // 3 classes; truth 0,0,0,1,2 predicted 0,1,0,1,1: recall 2/3, 1, 0
        float[] logits = [1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0];
        var c = TrainingTask.Classification.CreateMetrics(3);
        c.Add<float>(logits, default, [0, 0, 0, 1, 2], 5);
        var r = c.Results().ToDictionary(x => x.Name, x => x.Value);
        Assert.Equal(3.0 / 5, r["accuracy"], 12);
        Assert.Equal((2.0 / 3 + 1 + 0) / 3, r["balanced_accuracy"], 12);

        // 2 labels over 3 rows: label 0 tp 1 fp 1 fn 0; label 1 tp 1 fp 0 fn 1; one exact row
        float[] z = [2, 2, 1, -1, -1, -3];
        float[] t = [1, 1, 0, 1, 0, 0];
        var ml = TrainingTask.MultiLabel.CreateMetrics(2);
        ml.Add<float>(z, t, default, 3);
        var f = ml.Results().ToDictionary(x => x.Name, x => x.Value);
        Assert.Equal(2.0 / 3, f["subset_accuracy"], 12);   // rows 1 and 3 match exactly
        Assert.Equal((2.0 / 3 + 2.0 / 3) / 2, f["f1_macro"], 12);
    }

    [Fact]
    public void Balanced_class_weights_are_rows_over_classes_times_the_class_count()
    {
        int[] labels = [0, 0, 0, 1, 2, 2];
        var w = TrainingRun<float>.Balanced(labels, 3);
        Assert.Equal([6.0 / (3 * 3), 6.0 / (3 * 1), 6.0 / (3 * 2)], w);
    }
}
