using Backprop.IO;

namespace Backprop.Data;

/// <summary>A data set ready for training: train/validation/test splits, label names and normalisation.</summary>
/// <param name="LabelColumn">The CSV column the labels came from, resolved (the one asked for, else "label", else the last); null for MNIST.</param>
public sealed record PreparedData(string Kind, LabeledData Train, LabeledData Validation, LabeledData Test, string[] LabelNames, Standardizer? Standardizer,
    string? LabelColumn = null)
{
    public int Features => Train.FeatureCount;
    public int Classes => LabelNames.Length;
}

public static class DataLoading
{
    /// <summary>MNIST from a directory of IDX files (validation carved from train), or a CSV file (stratified held-out splits).</summary>
    public static PreparedData Prepare(string path, string? labelColumn, int seed, double validationFraction = 1.0 / 12, double testFraction = 0.2)
    {
        if (Directory.Exists(path))
        {
            var mnist = MnistDataset.Load(path);
            var (train, val) = DataSplit.Split(mnist.Train, validationFraction, seed);
            return new PreparedData("mnist", train, val, mnist.Test, MnistDataset.LabelNames, null);
        }
        if (!File.Exists(path)) throw new DataFormatException($"{path}: no such file or directory");
        var csv = CsvDataset.Load(path, labelColumn);
        var split = DataSplit.Split(csv.Data, 0.15, testFraction, seed, stratified: true);
        var std = Standardizer.Fit(split.Train);
        return new PreparedData("csv", std.Apply(split.Train), std.Apply(split.Validation), std.Apply(split.Test), csv.LabelNames, std, csv.LabelColumn);
    }

    /// <summary>Data to evaluate or predict with a saved model: the MNIST test set, or every row of a CSV normalised as in training.</summary>
    public static LabeledData ForModel(string path, string? labelColumn, string[] labelNames, Standardizer? std, bool requireLabels = true)
    {
        if (Directory.Exists(path)) return MnistDataset.Load(path).Test;
        if (!File.Exists(path)) throw new DataFormatException($"{path}: no such file or directory");
        var csv = CsvDataset.Load(path, labelColumn, labelNames);
        return std is null ? csv.Data : std.Apply(csv.Data);
    }
}
