using System.Globalization;
using System.Numerics;
using System.Text;
using Backprop.Data;
using Backprop.Health;
using Backprop.IO;
using Backprop.Training;

namespace Backprop.Reports;

/// <summary>
/// A training run as one self-contained web page, <c>report.html</c> in a directory: the configuration and the data's
/// shape, loss / metric / learning-rate curves, per-layer gradient norms over the epochs (log scale), the health
/// verdict, the test confusion matrix as a heat map and the final figures. It is rewritten atomically after every
/// epoch (<see cref="AtomicFile"/>), so a browser refresh during training shows the progress and a reader never sees
/// half a page.
/// </summary>
public sealed class TrainingReport
{
    /// <summary>The page's file name in the report directory.</summary>
    public const string FileName = "report.html";

    private readonly string _title;
    private readonly IReadOnlyList<(string Name, string Value)> _configuration;
    private readonly IReadOnlyList<(string Name, string Value)> _data;
    private readonly IReadOnlyList<string> _metrics;
    private readonly int _epochs;
    private readonly List<EpochResult> _history = [];
    private readonly List<(int Epoch, LayerHealth[] Layers)> _health = [];
    private string? _finalSection;

    /// <summary>The page's path: <see cref="FileName"/> in the directory given to <see cref="Start{T}"/>.</summary>
    public string Path { get; }

    private TrainingReport(string path, string title, IReadOnlyList<(string, string)> configuration, IReadOnlyList<(string, string)> data,
        IReadOnlyList<string> metrics, int epochs, IEnumerable<EpochResult> earlier)
    {
        Path = path;
        _title = title;
        _configuration = configuration;
        _data = data;
        _metrics = metrics;
        _epochs = epochs;
        _history.AddRange(earlier);
    }

    /// <summary>
    /// Creates <paramref name="directory"/> if needed and writes the page of a run that has not trained yet (an
    /// unwritable directory fails here, before any training). A resumed run's page starts with the checkpoint's epochs.
    /// </summary>
    public static TrainingReport Start<T>(string directory, TrainingRun<T> run, string networkText) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var job = run.Job;
        var data = run.Data;
        var config = new List<(string, string)> { ("network", networkText), ("task", $"{run.Task.Name} ({run.Trainer.Objective.Loss.Name} loss)") };
        foreach (var setting in Enum.GetValues<TrainingSetting>())
        {
            // the data, the network and the task have their own lines
            if (setting is TrainingSetting.Data or TrainingSetting.Layers or TrainingSetting.Activation or TrainingSetting.Architecture
                or TrainingSetting.Task or TrainingSetting.Loss) continue;
            string value;
            try { value = job.Format(setting); }
            catch (ArgumentOutOfRangeException) { continue; }
            config.Add((Words(setting.ToString()), value));
        }
        var dataRows = new List<(string, string)>
        {
            ("source", $"{job.Data} ({data.Kind})"),
            ("features", data.Features.ToString(CultureInfo.InvariantCulture)),
            ("rows", $"{data.Train.Count} train, {data.Validation.Count} validation, {data.Test.Count} test"),
            (data.Targets == TargetKind.Classes ? "classes" : "targets", data.Targets == TargetKind.Classes
                ? $"{data.Classes}: {string.Join(", ", data.LabelNames.Take(20))}{(data.Classes > 20 ? ", …" : "")}"
                : string.Join(", ", data.LabelColumns.DefaultIfEmpty("(one)"))),
        };
        Directory.CreateDirectory(directory);
        var report = new TrainingReport(System.IO.Path.Combine(directory, FileName), $"train {networkText} on {System.IO.Path.GetFileName(job.Data.TrimEnd('/'))}",
            config, dataRows, run.Task.MetricNames, job.Options.Epochs, run.History);
        report.Write();
        return report;
    }

    /// <summary>"LearningRate" → "learning rate".</summary>
    private static string Words(string name) =>
        string.Concat(name.Select((c, i) => char.IsUpper(c) && i > 0 ? " " + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()));

    /// <summary>Adds a finished epoch and rewrites the page.</summary>
    public void Epoch(EpochReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        _history.Add(report.Result);
        if (report.Diagnostics is { } d) _health.Add((report.Result.Epoch, d));
        Write();
    }

    /// <summary>Adds the test evaluation (and, for a classification, the test confusion matrix) and rewrites the page.</summary>
    public void Finish<T>(TrainingRun<T> run, TrainingResult result) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(run);
        ArgumentNullException.ThrowIfNull(result);
        var sb = new StringBuilder();
        var figures = result.TestMetrics.Select(m => ($"test {m.Name.Replace('_', ' ')}", TrainingTask.IsShare(m.Name)
                ? (m.Value * 100).ToString("F2", CultureInfo.InvariantCulture) + "%" : m.Value.ToString("G5", CultureInfo.InvariantCulture)))
            .Append(("test loss", result.TestLoss.ToString("F4", CultureInfo.InvariantCulture)))
            .Append(("epochs", result.History.Count.ToString(CultureInfo.InvariantCulture) + (result.StoppedEarly ? " (stopped early)" : "")))
            .Append(("training time", $"{result.TrainSeconds:F2} s ({result.SamplesPerSecond:N0} samples/s)"));
        if (result.BestEpoch is int best) figures = figures.Append(("weights kept", $"epoch {best}, the best validation loss"));
        sb.Append(Html.Section("final", "Final figures", Html.Figures(figures.Select(f => (f.Item1, Html.Escape(f.Item2))))));
        if (run.Task.Targets == TargetKind.Classes && run.Data.Test.Count > 0)
        {
            var counts = Confusion(run);
            sb.Append(Html.Section("confusion", "Test confusion matrix",
                $"<div class=\"panel scroll\">{Svg.HeatMap($"{run.Data.Test.Count} test rows", counts, run.Data.LabelNames, "confusion-matrix")}</div>" +
                "<p class=\"muted\">Rows: the true class; columns: the predicted class. Each cell holds its count, shaded by its share of the row (blue on the diagonal, orange off it).</p>"));
        }
        _finalSection = sb.ToString();
        Write();
    }

    private static long[,] Confusion<T>(TrainingRun<T> run) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var test = run.Data.Test;
        var logits = Trainer<T>.Predict(run.Network, test, context: run.Trainer.Context);
        int k = Math.Max(run.Data.Classes, logits.Cols);
        var counts = new long[k, k];
        for (int i = 0; i < test.Count; i++)
        {
            int predicted = TrainingStep<T>.ArgMax(logits.Data.Slice(i * logits.Cols, logits.Cols));
            int truth = test.Labels[i];
            if (truth >= 0 && truth < k) counts[truth, predicted]++;
        }
        return counts;
    }

    /// <summary>Writes the page as it stands (<see cref="Render"/>) to <see cref="Path"/>, atomically.</summary>
    public void Write() => AtomicFile.WriteAllText(Path, Render());

    /// <summary>The page as it stands.</summary>
    public string Render()
    {
        var sections = new List<string>();
        string status = _finalSection is not null ? $"finished: {_history.Count} epochs"
            : _history.Count == 0 ? "training has not finished an epoch yet" : $"in progress: epoch {_history[^1].Epoch} of {_epochs} (refresh to update)";
        var setup = new StringBuilder("<div class=\"grid\">");
        setup.Append($"<div class=\"panel\"><h3>Configuration</h3>{Html.Figures(_configuration.Select(c => (c.Name, Html.Escape(c.Value))))}</div>");
        setup.Append($"<div class=\"panel\"><h3>Data</h3>{Html.Figures(_data.Select(c => (c.Name, Html.Escape(c.Value))))}</div>");
        setup.Append("</div>");
        if (_history.Count > 0)
        {
            var verdict = _health.Count > 0 ? Diagnostics.Verdict(_health[^1].Layers) : null;
            var health = _health.Count > 0 ? GradientHealth.Judge(_health[^1].Layers) : null;
            sections.Add(Html.Section("curves", "Training curves", Curves()));
            sections.Add(Html.Section("health", "Gradient health",
                (verdict is null ? "<p class=\"muted\">No gradient health was recorded.</p>" : Html.Verdict($"epoch {_health[^1].Epoch}: {verdict}", health!.Healthy)) +
                (_health.Count > 0 ? $"<div class=\"grid\"><div class=\"panel\">{GradientNormChart()}</div><div class=\"panel\">{GradientPages.NormChart(health!)}</div></div>" : "")));
        }
        // the final figures first, then the curves and health; the confusion matrix is the final section's second half
        if (_finalSection is not null) sections.Insert(0, _finalSection);
        sections.Add(Html.Section("setup", "Run", setup.ToString()));
        if (_history.Count > 0) sections.Add(Html.Section("epochs", "Epochs", EpochTable()));
        return Html.Page(_title, status, sections);
    }

    private static IReadOnlyList<double> Values(IEnumerable<EpochResult> h, string key) =>
        h.Select(e => e.Metrics is { } m && m.TryGetValue(key, out var v) ? v : double.NaN).ToList();

    private string Curves()
    {
        var x = _history.Select(e => (double)e.Epoch).ToList();
        var sb = new StringBuilder("<div class=\"grid\">");
        var loss = new List<Series> { new("train loss", x, _history.Select(e => e.TrainLoss).ToList()) };
        if (_history.Any(e => e.ValidationLoss is not null)) loss.Add(new("validation loss", x, _history.Select(e => e.ValidationLoss ?? double.NaN).ToList()));
        sb.Append($"<div class=\"panel\">{Svg.LineChart("Loss", loss, "epoch", "loss", logY: false, "loss")}</div>");
        foreach (var m in _metrics)
        {
            bool share = TrainingTask.IsShare(m);
            double scale = share ? 100 : 1;
            var series = new List<Series>
            {
                new($"train {m.Replace('_', ' ')}", x, Values(_history, "train_" + m).Select(v => v * scale).ToList()),
                new($"validation {m.Replace('_', ' ')}", x, Values(_history, "val_" + m).Select(v => v * scale).ToList()),
            }.Where(s => s.Y.Any(double.IsFinite)).ToList();
            if (series.Count > 0)
                sb.Append($"<div class=\"panel\">{Svg.LineChart(char.ToUpperInvariant(m[0]) + m[1..].Replace('_', ' '), series, "epoch", share ? $"{m.Replace('_', ' ')} (%)" : m.Replace('_', ' '), logY: false, "metric-" + m, yMax: share ? 100 : null)}</div>");
        }
        sb.Append($"<div class=\"panel\">{Svg.LineChart("Learning rate", [new("learning rate at the epoch's end", x, _history.Select(e => e.LearningRate).ToList())], "epoch", "learning rate", logY: false, "learning-rate")}</div>");
        return sb.Append("</div>").ToString();
    }

    private string GradientNormChart()
    {
        var x = _health.Select(h => (double)h.Epoch).ToList();
        int layers = _health.Max(h => h.Layers.Length);
        var series = Enumerable.Range(0, layers)
            .Select(l => new Series($"layer {l + 1}", x, _health.Select(h => l < h.Layers.Length ? h.Layers[l].WeightGradientNorm : double.NaN).ToList()))
            .Where(s => s.Y.Any(v => v > 0)).ToList();
        return Svg.LineChart("‖∂L/∂W‖ per layer over the epochs", series, "epoch", "‖∂L/∂W‖", logY: true, "gradient-norms-over-epochs");
    }

    private string EpochTable()
    {
        var header = new List<string> { "epoch", "train loss", "val loss" };
        header.AddRange(_metrics.Select(m => "val " + m.Replace('_', ' ')));
        header.AddRange(["learning rate", "seconds", "samples/s"]);
        string Cell(double v, string key) => double.IsNaN(v) ? "–" : TrainingTask.IsShare(key) ? (v * 100).ToString("F2", CultureInfo.InvariantCulture) + "%" : v.ToString("G4", CultureInfo.InvariantCulture);
        var rows = _history.Select(e =>
        {
            var r = new List<string> { e.Epoch.ToString(CultureInfo.InvariantCulture), e.TrainLoss.ToString("F4", CultureInfo.InvariantCulture), e.ValidationLoss is double vl ? vl.ToString("F4", CultureInfo.InvariantCulture) : "–" };
            r.AddRange(_metrics.Select(m => Cell(e.Metrics is { } d && d.TryGetValue("val_" + m, out var v) ? v : double.NaN, m)));
            r.AddRange([e.LearningRate.ToString("G3", CultureInfo.InvariantCulture), e.Seconds.ToString("F2", CultureInfo.InvariantCulture), e.SamplesPerSecond.ToString("N0", CultureInfo.InvariantCulture)]);
            return (IReadOnlyList<string>)r;
        });
        return Html.Table(header, rows);
    }
}
