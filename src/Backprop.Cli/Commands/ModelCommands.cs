using System.CommandLine;
using System.Numerics;
using Backprop.Data;
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
        var label = new Option<string?>("--label") { Description = "CSV label column" };
        var json = new Option<bool>("--json") { Description = "One JSON object on the last line" };
        var cmd = new Command("evaluate", "Accuracy, loss and confusion matrix of a model on a data set") { model, data, label, json };
        cmd.SetAction(r =>
        {
            var m = ModelFile.Load<float>(r.GetValue(model)!, catalog);
            var d = DataLoading.ForModel(r.GetValue(data)!, r.GetValue(label), m.LabelNames, m.Standardizer);
            CheckWidth(m.Network.Inputs, d, r.GetValue(data)!);
            var outputs = new Tensor<float>(d.Count, m.Network.Outputs);
            var (loss, acc) = Trainer<float>.Evaluate(m.Network, d, outputs: outputs);   // one pass gives both
            int c = m.Network.Outputs;
            var confusion = new int[c, c];
            for (int i = 0; i < d.Count; i++)
                confusion[d.Labels[i], ClassifierStep<float>.ArgMax(outputs.Data.Slice(i * c, c))]++;
            if (r.GetValue(json))
            {
                Cli.WriteJsonLine(w =>
                {
                    w.WriteStartObject();
                    w.WriteNumber("accuracy", acc);
                    w.WriteNumber("loss", loss);
                    w.WriteNumber("samples", d.Count);
                    w.WritePropertyName("labels"); w.WriteStartArray(); foreach (var l in m.LabelNames) w.WriteStringValue(l); w.WriteEndArray();
                    w.WritePropertyName("confusion");
                    w.WriteStartArray();
                    for (int i = 0; i < c; i++) { w.WriteStartArray(); for (int j = 0; j < c; j++) w.WriteNumberValue(confusion[i, j]); w.WriteEndArray(); }
                    w.WriteEndArray();
                    w.WriteEndObject();
                });
                return 0;
            }
            Console.WriteLine($"accuracy {acc * 100:F2}% ({d.Count} samples), loss {loss:F4}");
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
        });
        return cmd;
    }

    public static Command Predict(Catalog catalog)
    {
        var model = new Option<string>("--model") { Description = "A model file (safetensors)", Required = true };
        var data = new Option<string>("--data") { Description = "An MNIST directory (predicts its t10k test images) or a CSV file", Required = true };
        var label = new Option<string?>("--label") { Description = "CSV label column (ignored for prediction)" };
        var limit = new Option<int?>("--limit") { Description = "Only the first N rows" };
        var json = new Option<bool>("--json") { Description = "One JSON object on the last line (default)" };
        var cmd = new Command("predict", "Raw outputs and predicted classes for every row, in file order") { model, data, label, limit, json };
        cmd.SetAction(r =>
        {
            int? n = r.GetValue(limit);
            if (n is <= 0) throw new UsageException($"--limit {n}: must be at least 1");
            var m = ModelFile.Load<float>(r.GetValue(model)!, catalog);
            var d = DataLoading.ForModel(r.GetValue(data)!, r.GetValue(label), m.LabelNames, m.Standardizer);
            CheckWidth(m.Network.Inputs, d, r.GetValue(data)!);
            if (n is int k && k < d.Count) d = d.Subset(Enumerable.Range(0, k).ToArray());
            var outputs = Trainer<float>.Predict(m.Network, d);
            int c = m.Network.Outputs;
            Cli.WriteJsonLine(w =>
            {
                w.WriteStartObject();
                w.WritePropertyName("outputs"); JsonTensor.WriteMatrix(w, outputs);
                w.WritePropertyName("predictions");
                w.WriteStartArray();
                for (int i = 0; i < d.Count; i++)
                {
                    int p = ClassifierStep<float>.ArgMax(outputs.Data.Slice(i * c, c));
                    if (int.TryParse(m.LabelNames[p], out int num)) w.WriteNumberValue(num); else w.WriteStringValue(m.LabelNames[p]);
                }
                w.WriteEndArray();
                w.WriteEndObject();
            });
            return 0;
        });
        return cmd;
    }

    private static void CheckWidth(int inputs, LabeledData d, string path)
    {
        if (d.FeatureCount != inputs)
            throw new UsageException($"{path} has {d.FeatureCount} features per sample but the model takes {inputs}");
    }
}
