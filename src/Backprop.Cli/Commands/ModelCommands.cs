using System.CommandLine;
using System.Numerics;
using Backprop.Data;
using Backprop.IO;
using Backprop.Nn;
using Backprop.Training;
using Spectre.Console;

namespace Backprop.Cli.Commands;

/// <summary>evaluate and predict: use a saved model on a data set.</summary>
public static class ModelCommands
{
    public static Command Evaluate(Catalog catalog)
    {
        var model = new Option<string>("--model") { Description = "A model file (safetensors)", Required = true };
        var data = new Option<string>("--data") { Description = "An MNIST directory (its t10k test set) or a CSV file", Required = true };
        var label = new Option<string?>("--label") { Description = "CSV label column(s) (default: those the model recorded)" };
        var json = new Option<bool>("--json") { Description = "One JSON object on the last line" };
        var cmd = new Command("evaluate", "Accuracy, loss and confusion matrix of a model on a data set") { model, data, label, json };
        cmd.SetAction(r =>
        {
            string modelPath = r.GetValue(model)!;
            var file = SafeTensorsFile.Read(modelPath);
            return ModelFile.IsFloat64(file)
                ? Evaluate(ModelFile.FromFile<double>(file, catalog), modelPath, r.GetValue(data)!, r.GetValue(label), r.GetValue(json))
                : Evaluate(ModelFile.FromFile<float>(file, catalog), modelPath, r.GetValue(data)!, r.GetValue(label), r.GetValue(json));
        });
        return cmd;
    }

    public static Command Predict(Catalog catalog)
    {
        var model = new Option<string>("--model") { Description = "A model file (safetensors)", Required = true };
        var data = new Option<string>("--data") { Description = "An MNIST directory (predicts its t10k test images) or a CSV file", Required = true };
        var label = new Option<string?>("--label") { Description = "CSV label column(s) (default: those the model recorded; a file with none of them and one column per input is all features)" };
        var limit = new Option<int?>("--limit") { Description = "Only the first N rows" };
        var json = new Option<bool>("--json") { Description = "One JSON object on the last line (default)" };
        var cmd = new Command("predict", "Raw outputs and predicted classes for every row, in file order") { model, data, label, limit, json };
        cmd.SetAction(r =>
        {
            int? n = r.GetValue(limit);
            if (n is <= 0) throw new UsageException($"--limit {n}: must be at least 1");
            string modelPath = r.GetValue(model)!;
            var file = SafeTensorsFile.Read(modelPath);
            return ModelFile.IsFloat64(file)
                ? Predict(ModelFile.FromFile<double>(file, catalog), modelPath, r.GetValue(data)!, r.GetValue(label), n)
                : Predict(ModelFile.FromFile<float>(file, catalog), modelPath, r.GetValue(data)!, r.GetValue(label), n);
        });
        return cmd;
    }

    /// <summary>predict with a model in its own precision: a float64 model's outputs are float64's, written to the last bit.</summary>
    private static int Predict<T>(SavedModel<T> m, string modelPath, string dataPath, string? label, int? limit) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var (facts, d) = Load(m, modelPath, dataPath, label, predicting: true);
        if (limit is int k && k < d.Count) d = d.Subset(Enumerable.Range(0, k).ToArray());
        var outputs = Trainer<T>.Predict(m.Network, d);   // the compiled forward pass: no tape, weights packed once
        Cli.WriteJsonLine(w =>
        {
            w.WriteStartObject();
            w.WriteString("task", facts.Task.Name);
            facts.Task.WritePredictions<T>(w, outputs.Span, d.Count, m.LabelNames, facts.TargetScaling);
            w.WriteEndObject();
        });
        return 0;
    }

    /// <summary>evaluate with a model in its own precision: a float64 model's outputs, loss and metrics are float64's.</summary>
    private static int Evaluate<T>(SavedModel<T> m, string modelPath, string dataPath, string? label, bool json) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var (facts, d) = Load(m, modelPath, dataPath, label);
        var task = facts.Task;
        var outputs = new Tensor<T>(d.Count, m.Network.Outputs);
        var result = Trainer<T>.Measure(m.Network, d, facts.Objective, outputs: outputs);   // one pass gives all
        var metrics = result.Metrics.Results();
        var perOutput = result.Metrics.PerOutput();
        int c = m.Network.Outputs;
        int[,]? confusion = null;
        if (task.Targets == TargetKind.Classes)
        {
            confusion = new int[c, c];
            for (int i = 0; i < d.Count; i++) confusion[d.Labels[i], TrainingStep<T>.ArgMax(outputs.Data.Slice(i * c, c))]++;
        }
        if (json)
        {
            Cli.WriteJsonLine(w =>
            {
                w.WriteStartObject();
                w.WriteString("task", task.Name);
                // NaN and ±∞ (outputs that overflowed) are null: JSON has no number for them
                foreach (var mt in metrics) WriteNumberOrNull(w, mt.Name, mt.Value);
                WriteNumberOrNull(w, "loss", result.Loss);
                w.WriteNumber("samples", d.Count);
                w.WritePropertyName("labels"); w.WriteStartArray(); foreach (var l in m.LabelNames) w.WriteStringValue(l); w.WriteEndArray();
                foreach (var (name, values) in perOutput)
                {
                    w.WritePropertyName(name);
                    w.WriteStartArray(); foreach (var v in values) if (double.IsFinite(v)) w.WriteNumberValue(v); else w.WriteNullValue(); w.WriteEndArray();
                }
                if (confusion is not null)
                {
                    w.WritePropertyName("confusion");
                    w.WriteStartArray();
                    for (int i = 0; i < c; i++) { w.WriteStartArray(); for (int j = 0; j < c; j++) w.WriteNumberValue(confusion[i, j]); w.WriteEndArray(); }
                    w.WriteEndArray();
                }
                w.WriteEndObject();
            });
            return 0;
        }
        Console.WriteLine($"{string.Join(", ", metrics.Select(task.Describe))} ({d.Count} samples), loss {result.Loss:F4}");
        foreach (var (name, values) in perOutput)
            Console.WriteLine($"{name}: {string.Join(", ", m.LabelNames.Select((l, i) => $"{l} {(double.IsFinite(values[i]) ? values[i].ToString("F4", System.Globalization.CultureInfo.InvariantCulture) : "-")}"))}");
        if (confusion is null) return 0;
        var table = new Table().Title("confusion matrix (rows: true label, columns: predicted)");
        table.AddColumn("");
        foreach (var l in m.LabelNames) table.AddColumn(Markup.Escape(l));
        for (int i = 0; i < c; i++)
        {
            var row = new List<string> { Markup.Escape(m.LabelNames[i]) };
            for (int j = 0; j < c; j++) row.Add(i == j ? $"[green]{confusion[i, j]}[/]" : confusion[i, j] == 0 ? "[grey]0[/]" : confusion[i, j].ToString());
            table.AddRow(row.ToArray());
        }
        Cli.Ansi().Write(table);
        return 0;
    }

    /// <summary>The model's task facts and every row of the data, its target columns found by the names the model recorded (or --label).</summary>
    /// <param name="predicting">Predicting: the target columns are dropped unread (their labels may be empty or unknown), and a
    /// CSV file with none of them and as many columns as the model has inputs is all features.</param>
    private static (TaskMetadata Facts, LabeledData Data) Load<T>(SavedModel<T> m, string modelPath, string dataPath, string? label, bool predicting = false)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var facts = TaskMetadata.Read(m.Metadata, modelPath);
        var targets = facts.Targets(m.LabelNames) with { FeatureNames = m.FeatureNames };
        if (label is not null) targets = targets with { Columns = label.Split(',', StringSplitOptions.TrimEntries) };
        if (predicting) targets = targets with { SkipTargets = true };
        if (predicting && label is null && File.Exists(dataPath))
        {
            var header = CsvDataset.ReadHeader(dataPath);
            var named = targets.Columns ?? ["label"];
            if (header.Length == m.Network.Inputs && !named.Any(c => header.Contains(c, StringComparer.OrdinalIgnoreCase)))
                targets = targets with { FeaturesOnly = true };
        }
        var d = DataLoading.ForModel(dataPath, targets, m.Standardizer, facts.TargetScaling);
        CheckWidth(m.Network.Inputs, d, dataPath);
        return (facts, d);
    }

    private static void WriteNumberOrNull(System.Text.Json.Utf8JsonWriter w, string name, double value)
    {
        if (double.IsFinite(value)) w.WriteNumber(name, value);
        else w.WriteNull(name);
    }

    private static void CheckWidth(int inputs, LabeledData d, string path)
    {
        if (d.FeatureCount != inputs)
            throw new UsageException($"{path} has {d.FeatureCount} features per sample but the model takes {inputs}");
    }
}
