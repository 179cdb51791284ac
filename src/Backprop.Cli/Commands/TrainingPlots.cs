using Backprop.Health;
using Backprop.IO;
using Backprop.Training;

namespace Backprop.Cli.Commands;

/// <summary>PNG plots of a training run, drawn from the same series as the run's history.json.</summary>
public static class TrainingPlots
{
    public const int Width = 800, Height = 500;

    /// <summary>history.json: the task, its metric names, every epoch's row and, when recorded, each epoch's gradient health.</summary>
    public sealed record History(string Task, IReadOnlyList<string> Metrics, IReadOnlyList<EpochResult> Epochs, IReadOnlyList<LayerHealth[]> Diagnostics);

    /// <summary>loss.png, one plot per metric of the task (accuracy.png, r2.png, …: train and validation), and gradient-norms.png when measured.</summary>
    public static IReadOnlyList<string> Write(string dir, IReadOnlyList<EpochResult> history, IReadOnlyList<LayerHealth[]>? diagnostics,
        IReadOnlyList<string>? metrics = null)
    {
        Directory.CreateDirectory(dir);
        var written = new List<string>();
        double[] epochs = history.Select(h => (double)h.Epoch).ToArray();

        var loss = new ScottPlot.Plot();
        Line(loss, epochs, history.Select(h => h.TrainLoss).ToArray(), "train");
        if (history.All(h => h.ValidationLoss is not null)) Line(loss, epochs, history.Select(h => h.ValidationLoss!.Value).ToArray(), "validation");
        Finish(loss, "Loss per epoch", "epoch", "loss");
        written.Add(Save(loss, Path.Combine(dir, "loss.png")));

        foreach (var metric in metrics ?? ["accuracy"])
        {
            bool percent = TrainingTask.IsShare(metric);
            var plot = new ScottPlot.Plot();
            foreach (var (prefix, label) in new[] { ("train_", "train"), ("val_", "validation") })
            {
                if (!history.All(h => h.Metrics?.ContainsKey(prefix + metric) == true)) continue;
                Line(plot, epochs, history.Select(h => h.Metrics![prefix + metric] * (percent ? 100 : 1)).ToArray(), label);
            }
            Finish(plot, $"{metric} per epoch", "epoch", percent ? $"{metric} (%)" : metric);
            written.Add(Save(plot, Path.Combine(dir, metric + ".png")));
        }

        if (diagnostics is { Count: > 0 })
        {
            var g = new ScottPlot.Plot();
            int layers = diagnostics[0].Length;
            for (int l = 0; l < layers; l++)
                Line(g, epochs[^diagnostics.Count..], diagnostics.Select(d => Math.Log10(Math.Max(d[l].WeightGradientNorm, 1e-300))).ToArray(), $"layer {l + 1}");
            Finish(g, "Gradient norm ‖∂L/∂W‖ per layer (log scale)", "epoch", "log₁₀ ‖∂L/∂W‖");
            written.Add(Save(g, Path.Combine(dir, "gradient-norms.png")));
        }
        return written;
    }

    private static void Line(ScottPlot.Plot plot, double[] xs, double[] ys, string label)
    {
        var s = plot.Add.Scatter(xs, ys);
        s.LegendText = label;
    }

    private static void Finish(ScottPlot.Plot plot, string title, string x, string y)
    {
        plot.Title(title);
        plot.XLabel(x);
        plot.YLabel(y);
        plot.ShowLegend();
    }

    private static string Save(ScottPlot.Plot plot, string path)
    {
        var bytes = plot.GetImageBytes(Width, Height, ScottPlot.ImageFormat.Png);
        AtomicFile.WriteAllBytes(path, bytes);
        return path;
    }
}
