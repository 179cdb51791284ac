using Backprop.IO;

namespace Backprop.Data;

/// <summary>A data set ready for training: train/validation/test splits, label names and normalisation.</summary>
/// <param name="Kind">Where the data came from: "mnist" (a directory of IDX files) or "csv".</param>
/// <param name="Train">The training split (standardised for CSV).</param>
/// <param name="Validation">The validation split, for early stopping and model choice.</param>
/// <param name="Test">The held-out test split, scored once at the end.</param>
/// <param name="Standardizer">The feature standardisation fitted on the training split, to save with the model; null for MNIST (pixels are already in [0, 1]).</param>
/// <param name="LabelColumn">The CSV column(s) the labels came from, resolved (the ones asked for, else "label", else the last), joined with commas; null for MNIST.</param>
/// <param name="LabelNames">Class names (classification), or the target column names (regression, multi-label): one per network output.</param>
public sealed record PreparedData(string Kind, LabeledData Train, LabeledData Validation, LabeledData Test, string[] LabelNames, Standardizer? Standardizer,
    string? LabelColumn = null)
{
    /// <summary>Features per row: the network's inputs.</summary>
    public int Features => Train.FeatureCount;
    /// <summary>Network outputs: classes, target columns or labels.</summary>
    public int Classes => LabelNames.Length;
    /// <summary>What the targets are: class labels, values or 0/1 labels.</summary>
    public TargetKind Targets { get; init; } = TargetKind.Classes;
    /// <summary>True when a column of non-integer numbers was taken for regression targets without being told.</summary>
    public bool TargetsInferred { get; init; }
    /// <summary>The standardisation of regression targets (fitted on the training split); null otherwise.</summary>
    public Standardizer? TargetScaling { get; init; }
    /// <summary>The target columns, resolved; empty for MNIST.</summary>
    public string[] LabelColumns { get; init; } = [];
    /// <summary>The CSV feature columns, in input order, to record with a model; null for MNIST.</summary>
    public string[]? FeatureNames { get; init; }
}

/// <summary>Turns a path into a <see cref="PreparedData"/>: reads, splits and standardises, the same way for training and for the CLI.</summary>
public static class DataLoading
{
    /// <summary>MNIST from a directory of IDX files (validation carved from train), or a CSV file (stratified held-out splits).</summary>
    public static PreparedData Prepare(string path, string? labelColumn, int seed, double validationFraction = 1.0 / 12, double testFraction = 0.2)
    {
        if (Directory.Exists(path))
        {
            var (train, val, test) = MnistDataset.LoadSplit(path, validationFraction, seed);
            return new PreparedData("mnist", train, val, test, MnistDataset.LabelNames, null);
        }
        if (!File.Exists(path)) throw new DataFormatException($"{path}: no such file or directory");
        var csv = CsvDataset.Load(path, labelColumn);
        var split = DataSplit.Split(csv.Data, 0.15, testFraction, seed, stratified: true);
        var std = Standardizer.Fit(split.Train);
        return new PreparedData("csv", std.Apply(split.Train), std.Apply(split.Validation), std.Apply(split.Test), csv.LabelNames, std, csv.LabelColumn)
        {
            FeatureNames = csv.FeatureNames,
        };
    }

    /// <summary>
    /// A CSV file prepared for training on the targets <paramref name="targets"/> describes (an MNIST directory as
    /// <see cref="Prepare"/>): class labels split stratified, values and multi-label at random; the features, and
    /// regression targets, standardised with training statistics. A class column with one class is refused.
    /// </summary>
    public static PreparedData PrepareFor(string path, CsvTargets targets, int seed, double validationFraction = 0.15, double testFraction = 0.2)
    {
        ArgumentNullException.ThrowIfNull(targets);
        if (Directory.Exists(path)) return Prepare(path, null, seed);
        if (!File.Exists(path)) throw new DataFormatException($"{path}: no such file or directory");
        var csv = CsvDataset.LoadFor(path, targets);
        if (csv.Kind == TargetKind.Classes && csv.ClassCount < 2)
            throw new DataFormatException(path, $"the label column {DataFormatException.Quote(csv.LabelColumn)} has only one class ({DataFormatException.Quote(csv.LabelNames[0])}): there is nothing to learn");
        var split = DataSplit.Split(csv.Data, validationFraction, testFraction, seed, stratified: csv.Kind == TargetKind.Classes);
        var std = Standardizer.Fit(split.Train);
        Standardizer? targetScaling = null;
        if (csv.Kind == TargetKind.Values)
        {
            targetScaling = Standardizer.Fit(split.Train.Targets, split.Train.TargetCount);
            foreach (var part in new[] { split.Train, split.Validation, split.Test }) targetScaling.Apply(part.Targets.AsSpan());
        }
        return new PreparedData("csv", std.Apply(split.Train), std.Apply(split.Validation), std.Apply(split.Test), csv.LabelNames, std, csv.LabelColumn)
        {
            Targets = csv.Kind, TargetsInferred = csv.KindInferred, TargetScaling = targetScaling, LabelColumns = csv.LabelColumns,
            FeatureNames = csv.FeatureNames,
        };
    }

    /// <summary>
    /// Every row of a CSV file (or the MNIST test set) for a saved model: its target columns found by name, normalised as
    /// in training (the features, and regression targets by <paramref name="targetScaling"/>).
    /// </summary>
    public static LabeledData ForModel(string path, CsvTargets targets, Standardizer? std, Standardizer? targetScaling)
    {
        ArgumentNullException.ThrowIfNull(targets);
        if (Directory.Exists(path)) return MnistDataset.LoadTestSet(path);
        if (!File.Exists(path)) throw new DataFormatException($"{path}: no such file or directory");
        var csv = CsvDataset.LoadFor(path, targets);
        if (targetScaling is not null && csv.Data.Targets is { } t)
        {
            if (csv.Data.TargetCount != targetScaling.FeatureCount)
                throw new DataFormatException(path, $"{csv.Data.TargetCount} target columns but the model was trained on {targetScaling.FeatureCount}");
            targetScaling.Apply(t.AsSpan());
        }
        return std is null ? csv.Data : Standardise(csv, std);
    }

    /// <summary>Data to evaluate or predict with a saved model: the MNIST test set, or every row of a CSV normalised as in training.</summary>
    public static LabeledData ForModel(string path, string? labelColumn, string[] labelNames, Standardizer? std, bool requireLabels = true)
    {
        if (Directory.Exists(path)) return MnistDataset.LoadTestSet(path);
        if (!File.Exists(path)) throw new DataFormatException($"{path}: no such file or directory");
        var csv = CsvDataset.Load(path, labelColumn, labelNames);
        return std is null ? csv.Data : Standardise(csv, std);
    }

    /// <summary>
    /// A file's rows standardised with a model's statistics. A file of another width is refused first, naming it and both
    /// counts (the standardizer's own check names neither the file nor the columns). A row is refused, by its file, row and column, when a finite
    /// feature standardises to ±∞ or NaN (3e38 with a std below 1 overflows float32): the network would turn it into a
    /// made-up output (∞ − ∞ = NaN, relu(NaN) = 0) or one no JSON can hold.
    /// </summary>
    private static LabeledData Standardise(CsvDataset csv, Standardizer std)
    {
        if (csv.FeatureCount != std.FeatureCount)
        {
            string columns = DataFormatException.QuoteList(csv.FeatureNames, 12);
            throw new DataFormatException(csv.Source, $"{csv.FeatureCount} feature column{(csv.FeatureCount == 1 ? "" : "s")} ({columns}) but the model takes {std.FeatureCount} features");
        }
        int k = std.IndexOfNonFinite(csv.Features);
        if (k >= 0)
        {
            int d = csv.FeatureCount, j = k % d;
            string value = csv.Features[k].ToString("R", System.Globalization.CultureInfo.InvariantCulture);
            throw new DataFormatException(csv.Source, $"row {csv.Rows[k / d]}, column {DataFormatException.Quote(csv.FeatureNames[j])}: {value} is too far from the model's training data " +
                $"(mean {std.Mean[j].ToString("G4", System.Globalization.CultureInfo.InvariantCulture)}, std {std.Std[j].ToString("G4", System.Globalization.CultureInfo.InvariantCulture)}) to standardise in float32");
        }
        return std.Apply(csv.Data);
    }
}
