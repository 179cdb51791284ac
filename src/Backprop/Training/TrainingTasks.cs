using System.Collections.Immutable;
using System.Globalization;
using System.Numerics;
using System.Text.Json;
using Backprop.Data;
using Backprop.Ops;

namespace Backprop.Training;

/// <summary>One metric's value, by the name that tables, history.json and JSON output use ("accuracy", "rmse", "f1_macro").</summary>
public readonly record struct Metric(string Name, double Value);

/// <summary>
/// What a network is trained to do, as <c>--task</c> names it: the targets it reads, the losses it takes, its metrics
/// and how its predictions read. A task carries its own facts; callers ask it rather than switch over tasks.
/// </summary>
public abstract class TrainingTask
{
    /// <summary>The task's name as jobs, model files and <c>--task</c> write it: classification, regression or multilabel.</summary>
    public abstract string Name { get; }
    /// <summary>What the CSV target columns hold for this task.</summary>
    public abstract TargetKind Targets { get; }
    /// <summary>The loss when a job names none: cross_entropy, mse or bce_with_logits.</summary>
    public abstract LossKind DefaultLoss { get; }
    /// <summary>The losses this task trains with.</summary>
    public abstract ImmutableArray<LossKind> Losses { get; }
    /// <summary>The metrics of every epoch, in table order; the first is the headline (what "accuracy" stood for).</summary>
    public abstract ImmutableArray<string> MetricNames { get; }
    /// <summary>The headline metric's name.</summary>
    public string Headline => MetricNames[0];
    /// <summary>Each metric's short name for a table column ("acc", "rmse"), in <see cref="MetricNames"/>' order.</summary>
    public abstract ImmutableArray<string> MetricColumns { get; }
    /// <summary>Whether a metric is a share of rows (an accuracy), shown as a percentage.</summary>
    public static bool IsShare(string metric) => metric.EndsWith("accuracy", StringComparison.Ordinal);
    /// <summary>What a value of the headline metric means in words, for run summaries: "accuracy 96.67%", "R² 0.91".</summary>
    public virtual string Describe(Metric metric) => IsShare(metric.Name)
        ? $"{metric.Name.Replace('_', ' ')} {(metric.Value * 100).ToString("F2", CultureInfo.InvariantCulture)}%"
        : $"{metric.Name.Replace('_', ' ')} {metric.Value.ToString("F4", CultureInfo.InvariantCulture)}";
    /// <summary>Whether the loss settings may name a class weight per class (weighted cross-entropy).</summary>
    public virtual bool TakesClassWeights => false;
    /// <summary>Whether the loss settings may name a positive-term weight per label (bce_with_logits' pos_weight).</summary>
    public virtual bool TakesPosWeight => false;

    /// <summary>A fresh accumulator of this task's metrics over <paramref name="outputs"/> network outputs.</summary>
    /// <param name="outputs">The network's outputs: the classes, targets or labels.</param>
    /// <param name="targetScaling">The standardisation of regression targets: metrics are in the original units.</param>
    public abstract TaskMetrics CreateMetrics(int outputs, Standardizer? targetScaling = null);

    /// <summary>
    /// Writes the predictions of <paramref name="outputs"/> (rows × outputs, raw network outputs) as JSON properties, each
    /// number in the model's own precision (a float64 model's outputs to the last bit).
    /// </summary>
    public abstract void WritePredictions<T>(Utf8JsonWriter w, ReadOnlySpan<T> outputs, int rows, IReadOnlyList<string> labelNames, Standardizer? targetScaling)
        where T : unmanaged, IFloatingPointIeee754<T>;

    /// <summary>The task's <see cref="Name"/>.</summary>
    public override string ToString() => Name;

    /// <summary>One class per row from a label column: softmax cross-entropy; accuracy and balanced accuracy.</summary>
    public static TrainingTask Classification { get; } = new ClassificationTask();
    /// <summary>Real-valued targets, one or more columns: MSE (or L1, Huber); R², RMSE and MAE in the targets' original units.</summary>
    public static TrainingTask Regression { get; } = new RegressionTask();
    /// <summary>Any number of 0/1 labels per row: sigmoid binary cross-entropy; subset accuracy and macro F1.</summary>
    public static TrainingTask MultiLabel { get; } = new MultiLabelTask();
    /// <summary>Every task, in the order messages list them.</summary>
    public static ImmutableArray<TrainingTask> All { get; } = [Classification, Regression, MultiLabel];
    /// <summary>The task names, comma-separated, for messages: "classification, regression, multilabel".</summary>
    public static string NamesText => string.Join(", ", All.Select(t => t.Name));

    /// <summary>The task named <paramref name="name"/> (ordinal), or null.</summary>
    public static TrainingTask? Find(string name) => All.FirstOrDefault(t => t.Name == name);
    /// <summary>The task that trains on targets of <paramref name="kind"/>.</summary>
    public static TrainingTask For(TargetKind kind) => All.First(t => t.Targets == kind);

    private static string Number(double v) => v.ToString("0.####", CultureInfo.InvariantCulture);

    private sealed class ClassificationTask : TrainingTask
    {
        public override string Name => "classification";
        public override TargetKind Targets => TargetKind.Classes;
        public override LossKind DefaultLoss => LossKind.CrossEntropy;
        public override ImmutableArray<LossKind> Losses { get; } = [LossKind.CrossEntropy];
        public override ImmutableArray<string> MetricNames { get; } = ["accuracy", "balanced_accuracy"];
        public override ImmutableArray<string> MetricColumns { get; } = ["acc", "bacc"];
        public override bool TakesClassWeights => true;
        public override TaskMetrics CreateMetrics(int outputs, Standardizer? targetScaling = null) => new ClassificationMetrics(outputs);

        public override void WritePredictions<T>(Utf8JsonWriter w, ReadOnlySpan<T> outputs, int rows, IReadOnlyList<string> labelNames, Standardizer? targetScaling)
        {
            int c = labelNames.Count;
            WriteRows(w, "outputs", outputs, rows, c);
            w.WritePropertyName("predictions");
            w.WriteStartArray();
            for (int i = 0; i < rows; i++)
            {
                string name = labelNames[TrainingStep<T>.ArgMax(outputs.Slice(i * c, c))];
                if (int.TryParse(name, NumberStyles.Integer, CultureInfo.InvariantCulture, out int num)) w.WriteNumberValue(num); else w.WriteStringValue(name);
            }
            w.WriteEndArray();
        }
    }

    private sealed class RegressionTask : TrainingTask
    {
        public override string Name => "regression";
        public override TargetKind Targets => TargetKind.Values;
        public override LossKind DefaultLoss => LossKind.Mse;
        public override ImmutableArray<LossKind> Losses { get; } = [LossKind.Mse, LossKind.L1, LossKind.Huber];
        public override ImmutableArray<string> MetricNames { get; } = ["r2", "rmse", "mae"];
        public override ImmutableArray<string> MetricColumns { get; } = ["r2", "rmse", "mae"];
        public override string Describe(Metric m) => m.Name == "r2" ? $"R² {m.Value:F4}" : $"{m.Name.ToUpperInvariant()} {Number(m.Value)}";
        public override TaskMetrics CreateMetrics(int outputs, Standardizer? targetScaling = null) => new RegressionMetrics(outputs, targetScaling);

        public override void WritePredictions<T>(Utf8JsonWriter w, ReadOnlySpan<T> outputs, int rows, IReadOnlyList<string> labelNames, Standardizer? targetScaling)
        {
            int t = labelNames.Count;
            var values = outputs[..(rows * t)].ToArray();
            if (targetScaling is not null)
            {
                if (typeof(T) == typeof(float)) targetScaling.Invert(System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(values.AsSpan()));
                else targetScaling.Invert(System.Runtime.InteropServices.MemoryMarshal.Cast<T, double>(values.AsSpan()));
            }
            w.WritePropertyName("columns");
            w.WriteStartArray(); foreach (var n in labelNames) w.WriteStringValue(n); w.WriteEndArray();
            w.WritePropertyName("predictions");
            w.WriteStartArray();
            for (int i = 0; i < rows; i++)
            {
                if (t == 1) { WriteValue(w, values[i]); continue; }
                w.WriteStartArray();
                for (int j = 0; j < t; j++) WriteValue(w, values[i * t + j]);
                w.WriteEndArray();
            }
            w.WriteEndArray();
        }
    }

    private sealed class MultiLabelTask : TrainingTask
    {
        public override string Name => "multilabel";
        public override TargetKind Targets => TargetKind.Binary;
        public override LossKind DefaultLoss => LossKind.BceWithLogits;
        public override ImmutableArray<LossKind> Losses { get; } = [LossKind.BceWithLogits];
        public override ImmutableArray<string> MetricNames { get; } = ["subset_accuracy", "f1_macro"];
        public override ImmutableArray<string> MetricColumns { get; } = ["subset", "f1"];
        public override bool TakesPosWeight => true;
        public override TaskMetrics CreateMetrics(int outputs, Standardizer? targetScaling = null) => new MultiLabelMetrics(outputs);

        public override void WritePredictions<T>(Utf8JsonWriter w, ReadOnlySpan<T> outputs, int rows, IReadOnlyList<string> labelNames, Standardizer? targetScaling)
        {
            int c = labelNames.Count;
            var p = new T[rows * c];
            for (int k = 0; k < p.Length; k++) p[k] = T.One / (T.One + T.Exp(-outputs[k]));
            WriteRows<T>(w, "probabilities", p, rows, c);
            w.WritePropertyName("labels");
            w.WriteStartArray(); foreach (var n in labelNames) w.WriteStringValue(n); w.WriteEndArray();
            w.WritePropertyName("predictions");
            w.WriteStartArray();
            for (int i = 0; i < rows; i++)
            {
                w.WriteStartArray();
                for (int j = 0; j < c; j++) if (outputs[i * c + j] >= T.Zero) w.WriteStringValue(labelNames[j]);
                w.WriteEndArray();
            }
            w.WriteEndArray();
        }
    }

    /// <summary>
    /// A value in its own precision: a float as the shortest text that reads back as that float, a double likewise; null
    /// for NaN and ±∞, which JSON cannot hold (as evaluate writes its per-output figures).
    /// </summary>
    private static void WriteValue<T>(Utf8JsonWriter w, T v) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (!T.IsFinite(v)) w.WriteNullValue();
        else if (typeof(T) == typeof(float)) w.WriteNumberValue(float.CreateTruncating(v));
        else w.WriteNumberValue(double.CreateTruncating(v));
    }

    private static void WriteRows<T>(Utf8JsonWriter w, string name, ReadOnlySpan<T> values, int rows, int cols) where T : unmanaged, IFloatingPointIeee754<T>
    {
        w.WritePropertyName(name);
        w.WriteStartArray();
        for (int i = 0; i < rows; i++)
        {
            w.WriteStartArray();
            for (int j = 0; j < cols; j++) WriteValue(w, values[i * cols + j]);
            w.WriteEndArray();
        }
        w.WriteEndArray();
    }
}

/// <summary>
/// A task's metrics accumulated batch by batch (nothing allocated per batch): <see cref="Add{T}"/> sees each batch's raw
/// outputs and targets, <see cref="Results"/> gives the metrics over everything added since <see cref="Reset"/>.
/// </summary>
public abstract class TaskMetrics
{
    /// <summary>Rows added since the last reset.</summary>
    public long Count { get; protected set; }
    /// <summary>Forgets everything added, for the next epoch or data set.</summary>
    public abstract void Reset();
    /// <summary>One batch of <paramref name="n"/> rows: outputs (n × outputs), and the class labels or the target values (n × outputs) the task reads.</summary>
    public abstract void Add<T>(ReadOnlySpan<T> outputs, ReadOnlySpan<T> values, ReadOnlySpan<int> classes, int n) where T : unmanaged, IFloatingPointIeee754<T>;
    /// <summary>The task's metrics, headline first.</summary>
    public abstract IReadOnlyList<Metric> Results();
    /// <summary>The headline metric alone.</summary>
    public abstract double Headline { get; }
    /// <summary>Per-class or per-output figures for a report: "per_class_recall", "f1_per_label", "r2_per_target", … (the names evaluate --json uses).</summary>
    public abstract IReadOnlyList<(string Name, double[] Values)> PerOutput();

    /// <summary>
    /// The accumulated sums (the row count first), which add up across shards of the data: data-parallel training sums
    /// every member's with <paramref name="sum"/> (an all-reduce) and reads the metrics of the whole data from the result.
    /// </summary>
    public void Reduce(Action<Span<double>> sum)
    {
        _state ??= new double[1 + StateLength];
        _state[0] = Count;
        Export(_state.AsSpan(1));
        sum(_state);
        Count = (long)_state[0];
        Import(_state.AsSpan(1));
    }

    private double[]? _state;
    /// <summary>The number of sums <see cref="Export"/> writes and <see cref="Import"/> reads (the row count not included).</summary>
    protected abstract int StateLength { get; }
    /// <summary>Writes the accumulated sums into <paramref name="state"/> (<see cref="StateLength"/> values).</summary>
    protected abstract void Export(Span<double> state);
    /// <summary>Replaces the accumulated sums with <paramref name="state"/>, as <see cref="Export"/> laid them out.</summary>
    protected abstract void Import(ReadOnlySpan<double> state);

    /// <summary>Writes integer counts into <paramref name="state"/> from position <paramref name="at"/>, advancing it
    /// (a double holds counts exactly up to 2^53).</summary>
    protected static void Put(ReadOnlySpan<long> values, Span<double> state, ref int at)
    {
        for (int i = 0; i < values.Length; i++) state[at++] = values[i];
    }

    /// <summary>Reads integer counts written by <see cref="Put"/> from position <paramref name="at"/>, advancing it.</summary>
    protected static void Take(ReadOnlySpan<double> state, Span<long> values, ref int at)
    {
        for (int i = 0; i < values.Length; i++) values[i] = (long)state[at++];
    }
}

internal sealed class ClassificationMetrics(int classes) : TaskMetrics
{
    private readonly long[] _confusion = new long[classes * classes];
    private long _correct;

    public override void Reset() { Array.Clear(_confusion); _correct = 0; Count = 0; }

    public override void Add<T>(ReadOnlySpan<T> outputs, ReadOnlySpan<T> values, ReadOnlySpan<int> labels, int n)
    {
        for (int i = 0; i < n; i++)
        {
            int p = TrainingStep<T>.ArgMax(outputs.Slice(i * classes, classes)), y = labels[i];
            if (p == y) _correct++;
            if ((uint)y < (uint)classes) _confusion[y * classes + p]++;
        }
        Count += n;
    }

    public override double Headline => (double)_correct / Math.Max(1, Count);

    /// <summary>Rows: true class, columns: predicted.</summary>
    public long this[int truth, int predicted] => _confusion[truth * classes + predicted];

    private double[] Recall()
    {
        var r = new double[classes];
        for (int k = 0; k < classes; k++)
        {
            long support = 0;
            for (int j = 0; j < classes; j++) support += _confusion[k * classes + j];
            r[k] = support == 0 ? double.NaN : (double)_confusion[k * classes + k] / support;
        }
        return r;
    }

    public override IReadOnlyList<Metric> Results()
    {
        var present = Recall().Where(double.IsFinite).ToArray();
        return [new("accuracy", Headline), new("balanced_accuracy", present.Length == 0 ? 0 : present.Average())];
    }

    public override IReadOnlyList<(string Name, double[] Values)> PerOutput() => [("per_class_recall", Recall())];

    protected override int StateLength => _confusion.Length + 1;
    protected override void Export(Span<double> state) { int at = 0; Put(_confusion, state, ref at); state[at] = _correct; }
    protected override void Import(ReadOnlySpan<double> state) { int at = 0; Take(state, _confusion, ref at); _correct = (long)state[at]; }
}

internal sealed class RegressionMetrics(int targets, Standardizer? scaling) : TaskMetrics
{
    private readonly double[] _sse = new double[targets], _sae = new double[targets], _sum = new double[targets], _sumSq = new double[targets];

    public override void Reset() { Array.Clear(_sse); Array.Clear(_sae); Array.Clear(_sum); Array.Clear(_sumSq); Count = 0; }

    public override void Add<T>(ReadOnlySpan<T> outputs, ReadOnlySpan<T> values, ReadOnlySpan<int> classes, int n)
    {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < targets; j++)
            {
                double scale = scaling?.Std[j] ?? 1, shift = scaling?.Mean[j] ?? 0;
                double p = double.CreateTruncating(outputs[i * targets + j]) * scale + shift;
                double y = double.CreateTruncating(values[i * targets + j]) * scale + shift;
                double e = p - y;
                _sse[j] += e * e;
                _sae[j] += Math.Abs(e);
                _sum[j] += y;
                _sumSq[j] += y * y;
            }
        Count += n;
    }

    private double[] R2()
    {
        var r = new double[targets];
        for (int j = 0; j < targets; j++)
        {
            double ssTot = _sumSq[j] - _sum[j] * _sum[j] / Math.Max(1, Count);
            // as scikit-learn: a constant target scores 1 when predicted exactly, else 0
            r[j] = ssTot > 1e-12 * Math.Max(1, _sumSq[j]) ? 1 - _sse[j] / ssTot : _sse[j] == 0 ? 1 : 0;
        }
        return r;
    }

    public override double Headline => R2().Average();

    public override IReadOnlyList<Metric> Results()
    {
        double n = Math.Max(1, Count) * targets;
        return [new("r2", Headline), new("rmse", Math.Sqrt(_sse.Sum() / n)), new("mae", _sae.Sum() / n)];
    }

    protected override int StateLength => 4 * targets;
    protected override void Export(Span<double> state)
    {
        _sse.CopyTo(state); _sae.CopyTo(state[targets..]); _sum.CopyTo(state[(2 * targets)..]); _sumSq.CopyTo(state[(3 * targets)..]);
    }
    protected override void Import(ReadOnlySpan<double> state)
    {
        state[..targets].CopyTo(_sse); state.Slice(targets, targets).CopyTo(_sae); state.Slice(2 * targets, targets).CopyTo(_sum); state.Slice(3 * targets, targets).CopyTo(_sumSq);
    }

    public override IReadOnlyList<(string Name, double[] Values)> PerOutput() =>
        [("r2_per_target", R2()), ("rmse_per_target", _sse.Select(s => Math.Sqrt(s / Math.Max(1, Count))).ToArray()), ("mae_per_target", _sae.Select(s => s / Math.Max(1, Count)).ToArray())];
}

internal sealed class MultiLabelMetrics(int labels) : TaskMetrics
{
    private readonly long[] _tp = new long[labels], _fp = new long[labels], _fn = new long[labels];
    private long _exact;

    public override void Reset() { Array.Clear(_tp); Array.Clear(_fp); Array.Clear(_fn); _exact = 0; Count = 0; }

    public override void Add<T>(ReadOnlySpan<T> outputs, ReadOnlySpan<T> values, ReadOnlySpan<int> classes, int n)
    {
        for (int i = 0; i < n; i++)
        {
            bool all = true;
            for (int j = 0; j < labels; j++)
            {
                bool predicted = outputs[i * labels + j] >= T.Zero;   // σ(z) ≥ 0.5
                bool actual = values[i * labels + j] > T.CreateTruncating(0.5);
                if (predicted && actual) _tp[j]++;
                else if (predicted) _fp[j]++;
                else if (actual) _fn[j]++;
                all &= predicted == actual;
            }
            if (all) _exact++;
        }
        Count += n;
    }

    private double[] F1()
    {
        var f = new double[labels];
        for (int j = 0; j < labels; j++)
        {
            long d = 2 * _tp[j] + _fp[j] + _fn[j];
            f[j] = d == 0 ? 0 : 2.0 * _tp[j] / d;   // scikit-learn's zero_division: 0
        }
        return f;
    }

    public override double Headline => (double)_exact / Math.Max(1, Count);
    public override IReadOnlyList<Metric> Results() => [new("subset_accuracy", Headline), new("f1_macro", F1().Average())];
    public override IReadOnlyList<(string Name, double[] Values)> PerOutput() => [("f1_per_label", F1())];

    protected override int StateLength => 3 * labels + 1;
    protected override void Export(Span<double> state) { int at = 0; Put(_tp, state, ref at); Put(_fp, state, ref at); Put(_fn, state, ref at); state[at] = _exact; }
    protected override void Import(ReadOnlySpan<double> state) { int at = 0; Take(state, _tp, ref at); Take(state, _fp, ref at); Take(state, _fn, ref at); _exact = (long)state[at]; }
}
