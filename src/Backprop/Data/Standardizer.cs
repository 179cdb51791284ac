using System.Numerics;
using System.Globalization;
using System.Text.Json;
using Backprop.IO;

namespace Backprop.Data;

/// <summary>
/// Per-feature standardisation x' = (x − mean) / std. Fit it on the training split only, then apply the same
/// statistics to validation, test and predict-time data. The population standard deviation is used, and a feature
/// with std 0 (constant) gets std 1. <see cref="Mean"/> and <see cref="Std"/> can be saved as model metadata
/// (<see cref="WriteMetadata"/>) and restored (<see cref="ReadMetadata"/>).
/// </summary>
public sealed class Standardizer
{
    /// <summary>The metadata key prefix of a model's feature standardisation ("standardizer.mean", "standardizer.std").</summary>
    public const string DefaultMetadataPrefix = "standardizer";

    /// <summary>Restores a standardizer from saved statistics.</summary>
    public Standardizer(float[] mean, float[] std)
    {
        ArgumentNullException.ThrowIfNull(mean);
        ArgumentNullException.ThrowIfNull(std);
        if (mean.Length != std.Length)
            throw new ArgumentException($"mean has {mean.Length} features but std has {std.Length}");
        for (int j = 0; j < std.Length; j++)
        {
            if (!float.IsFinite(mean[j])) throw new ArgumentException($"mean of feature {j} is {mean[j]}, not finite");
            if (!float.IsFinite(std[j]) || std[j] <= 0) throw new ArgumentException($"std of feature {j} is {std[j]}, not a positive finite number");
        }
        Mean = mean;
        Std = std;
    }

    /// <summary>The per-feature mean subtracted, one value per feature.</summary>
    public float[] Mean { get; }
    /// <summary>The per-feature population standard deviation divided by, one positive value per feature (1 for a constant feature).</summary>
    public float[] Std { get; }
    /// <summary>The number of features the statistics are for.</summary>
    public int FeatureCount => Mean.Length;

    /// <summary>Computes per-feature mean and std of row-major <paramref name="features"/> with <paramref name="featureCount"/> columns.</summary>
    public static Standardizer Fit(ReadOnlySpan<float> features, int featureCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(featureCount);
        if (features.Length % featureCount != 0)
            throw new ArgumentException($"{features.Length} values do not divide into rows of {featureCount} features");
        int n = features.Length / featureCount;
        if (n == 0) throw new ArgumentException("cannot fit a standardizer on zero rows");
        var sum = new double[featureCount];
        for (int i = 0; i < n; i++)
        {
            var row = features.Slice(i * featureCount, featureCount);
            for (int j = 0; j < featureCount; j++) sum[j] += row[j];
        }
        var mean = new double[featureCount];
        for (int j = 0; j < featureCount; j++) mean[j] = sum[j] / n;
        // Second pass on deviations: numerically stable.
        var ss = new double[featureCount];
        for (int i = 0; i < n; i++)
        {
            var row = features.Slice(i * featureCount, featureCount);
            for (int j = 0; j < featureCount; j++)
            {
                double dv = row[j] - mean[j];
                ss[j] += dv * dv;
            }
        }
        var m = new float[featureCount];
        var s = new float[featureCount];
        for (int j = 0; j < featureCount; j++)
        {
            m[j] = (float)mean[j];
            double sd = Math.Sqrt(ss[j] / n);
            // Constant features (and those whose spread is lost in rounding) are left unscaled.
            s[j] = sd > 1e-12 * Math.Max(1.0, Math.Abs(mean[j])) && double.IsFinite(sd) ? (float)sd : 1f;
            if (s[j] == 0f || !float.IsFinite(s[j])) s[j] = 1f;
        }
        return new Standardizer(m, s);
    }

    /// <summary>Fits on a (training) data set's features.</summary>
    public static Standardizer Fit(LabeledData train)
    {
        ArgumentNullException.ThrowIfNull(train);
        return Fit(train.Features, train.FeatureCount);
    }

    /// <summary>Standardises row-major <paramref name="features"/> in place.</summary>
    public void Apply(Span<float> features)
    {
        int d = FeatureCount;
        if (features.Length % d != 0)
            throw new ArgumentException($"{features.Length} values do not divide into rows of {d} features");
        // the reciprocals on the stack (or rented when wide): a model's predict standardises each call's rows here and
        // allocates nothing once warm
        float[]? rented = d > 256 ? System.Buffers.ArrayPool<float>.Shared.Rent(d) : null;
        Span<float> inv = rented is null ? stackalloc float[d] : rented.AsSpan(0, d);
        Reciprocals(inv);
        for (int i = 0; i < features.Length; i += d)
        {
            var row = features.Slice(i, d);
            for (int j = 0; j < d; j++) row[j] = Standardise(row[j], Mean[j], inv[j]);
        }
        if (rented is not null) System.Buffers.ArrayPool<float>.Shared.Return(rented);
    }

    /// <summary>
    /// The index of the first value of row-major <paramref name="features"/> that <see cref="Apply(Span{float})"/> would
    /// make infinite or NaN (a finite value so far from the mean, e.g. 3e38, that x − mean or its scaling overflows
    /// float32), or −1 when every standardised value is finite. Nothing is changed.
    /// </summary>
    public int IndexOfNonFinite(ReadOnlySpan<float> features)
    {
        int d = FeatureCount;
        if (features.Length % d != 0)
            throw new ArgumentException($"{features.Length} values do not divide into rows of {d} features");
        var inv = new float[d];
        Reciprocals(inv);
        for (int i = 0; i < features.Length; i += d)
            for (int j = 0; j < d; j++)
                if (!float.IsFinite(Standardise(features[i + j], Mean[j], inv[j]))) return i + j;
        return -1;
    }

    /// <summary>1/std of every feature: <see cref="Apply(Span{float})"/> multiplies by it.</summary>
    private void Reciprocals(Span<float> inv)
    {
        for (int j = 0; j < inv.Length; j++) inv[j] = 1f / Std[j];
    }

    /// <summary>One standardised value, the same in <see cref="Apply(Span{float})"/> and <see cref="IndexOfNonFinite"/>.</summary>
    private static float Standardise(float x, float mean, float inverseStd) => (x - mean) * inverseStd;

    /// <summary>Standardises row-major double <paramref name="features"/> in place.</summary>
    public void Apply(Span<double> features)
    {
        int d = FeatureCount;
        if (features.Length % d != 0)
            throw new ArgumentException($"{features.Length} values do not divide into rows of {d} features");
        for (int i = 0; i < features.Length; i += d)
        {
            var row = features.Slice(i, d);
            for (int j = 0; j < d; j++) row[j] = (row[j] - Mean[j]) / Std[j];
        }
    }

    /// <summary>Standardises a data set's features in place (and returns it).</summary>
    public LabeledData Apply(LabeledData data)
    {
        ArgumentNullException.ThrowIfNull(data);
        CheckFeatureCount(data.FeatureCount);
        Apply(data.Features.AsSpan());
        return data;
    }

    /// <summary>A standardised copy of a data set (the original is left as it is).</summary>
    public LabeledData Transform(LabeledData data)
    {
        ArgumentNullException.ThrowIfNull(data);
        CheckFeatureCount(data.FeatureCount);
        var x = (float[])data.Features.Clone();
        Apply(x.AsSpan());
        return new LabeledData(x, (int[])data.Labels.Clone(), data.FeatureCount, (float[]?)data.Targets?.Clone(), data.TargetCount);
    }

    /// <summary>Undoes <see cref="Apply(Span{float})"/> in place.</summary>
    public void Invert(Span<float> features) => InvertIn(features);

    /// <summary>Undoes <see cref="Apply(Span{double})"/> in place.</summary>
    public void Invert(Span<double> features) => InvertIn(features);

    /// <summary>x·std + mean in <typeparamref name="T"/> (the statistics are floats, exact in either precision).</summary>
    private void InvertIn<T>(Span<T> features) where T : unmanaged, IFloatingPointIeee754<T>
    {
        int d = FeatureCount;
        if (features.Length % d != 0)
            throw new ArgumentException($"{features.Length} values do not divide into rows of {d} features");
        for (int i = 0; i < features.Length; i += d)
        {
            var row = features.Slice(i, d);
            for (int j = 0; j < d; j++) row[j] = row[j] * T.CreateTruncating(Std[j]) + T.CreateTruncating(Mean[j]);
        }
    }

    private void CheckFeatureCount(int d)
    {
        if (d != FeatureCount)
            throw new ArgumentException($"the standardizer was fitted on {FeatureCount} features but the data has {d}");
    }

    /// <summary>Stores the statistics as "<paramref name="prefix"/>.mean" and ".std", JSON arrays of round-trip floats.</summary>
    public void WriteMetadata(IDictionary<string, string> metadata, string prefix = DefaultMetadataPrefix)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        metadata[prefix + ".mean"] = DataMetadata.FloatsToJson(Mean);
        metadata[prefix + ".std"] = DataMetadata.FloatsToJson(Std);
    }

    /// <summary>
    /// Restores a standardizer written by <see cref="WriteMetadata"/>; null when the metadata has none.
    /// Malformed entries throw <see cref="DataFormatException"/> naming <paramref name="source"/>.
    /// </summary>
    public static Standardizer? ReadMetadata(IReadOnlyDictionary<string, string> metadata, string source, string prefix = DefaultMetadataPrefix)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        bool hasMean = metadata.TryGetValue(prefix + ".mean", out var meanJson);
        bool hasStd = metadata.TryGetValue(prefix + ".std", out var stdJson);
        if (!hasMean && !hasStd) return null;
        if (!hasMean || !hasStd)
            throw new DataFormatException(source, $"metadata has '{prefix}.{(hasMean ? "mean" : "std")}' but not '{prefix}.{(hasMean ? "std" : "mean")}'");
        var mean = DataMetadata.FloatsFromJson(meanJson!, source, prefix + ".mean");
        var std = DataMetadata.FloatsFromJson(stdJson!, source, prefix + ".std");
        try
        {
            return new Standardizer(mean, std);
        }
        catch (ArgumentException e)
        {
            throw new DataFormatException(source, $"metadata '{prefix}': {e.Message}", e);
        }
    }
}

/// <summary>Encoding of data-preparation facts (label names, float arrays) as safetensors metadata strings.</summary>
public static class DataMetadata
{
    /// <summary>The metadata key of a model's class names (or target column names).</summary>
    public const string LabelNamesKey = "label_names";

    /// <summary>The values as a JSON array of round-trip ("R") invariant-culture numbers: reading it back gives the same floats.</summary>
    public static string FloatsToJson(ReadOnlySpan<float> values)
    {
        var sb = new System.Text.StringBuilder(values.Length * 12 + 2);
        sb.Append('[');
        for (int i = 0; i < values.Length; i++)
        {
            if (i > 0) sb.Append(',');
            sb.Append(values[i].ToString("R", CultureInfo.InvariantCulture));
        }
        sb.Append(']');
        return sb.ToString();
    }

    /// <summary>Reads a JSON array of finite numbers written by <see cref="FloatsToJson"/>.</summary>
    /// <param name="json">The metadata value.</param>
    /// <param name="source">The file the metadata came from, named in errors.</param>
    /// <param name="key">The metadata key, named in errors.</param>
    /// <exception cref="DataFormatException">The text is not JSON, not an array, or holds an element that is not a finite number.</exception>
    public static float[] FloatsFromJson(string json, string source, string key)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind != JsonValueKind.Array)
                throw new DataFormatException(source, $"metadata '{key}' is not a JSON array of numbers");
            var result = new float[doc.RootElement.GetArrayLength()];
            int i = 0;
            foreach (var e in doc.RootElement.EnumerateArray())
            {
                if (e.ValueKind != JsonValueKind.Number || !e.TryGetDouble(out double v) || !double.IsFinite(v))
                    throw new DataFormatException(source, $"metadata '{key}' element {i} is not a finite number");
                result[i++] = (float)v;
            }
            return result;
        }
        catch (JsonException e)
        {
            throw new DataFormatException(source, $"metadata '{key}' is not valid JSON ({e.Message})", e);
        }
    }

    /// <summary>Stores class index → name as the JSON array under <see cref="LabelNamesKey"/>.</summary>
    public static void WriteLabelNames(IDictionary<string, string> metadata, IReadOnlyList<string> labelNames, string key = LabelNamesKey)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        ArgumentNullException.ThrowIfNull(labelNames);
        metadata[key] = StringsToJson(labelNames);
    }

    /// <summary>A JSON array of strings, as label names and label columns are stored in model files and ONNX metadata.</summary>
    public static string StringsToJson(IReadOnlyList<string> values) =>
        JsonSerializer.Serialize(values.ToArray(), DataJsonContext.Default.StringArray);

    /// <summary>Reads the class names written by <see cref="WriteLabelNames"/>; null when absent.</summary>
    public static string[]? ReadLabelNames(IReadOnlyDictionary<string, string> metadata, string source, string key = LabelNamesKey)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        if (!metadata.TryGetValue(key, out var json)) return null;
        try
        {
            using var doc = JsonDocument.Parse(json);
            if (doc.RootElement.ValueKind != JsonValueKind.Array)
                throw new DataFormatException(source, $"metadata '{key}' is not a JSON array of strings");
            var names = new List<string>();
            foreach (var e in doc.RootElement.EnumerateArray())
            {
                if (e.ValueKind != JsonValueKind.String)
                    throw new DataFormatException(source, $"metadata '{key}' element {names.Count} is not a string");
                names.Add(e.GetString()!);
            }
            if (names.Count == 0) throw new DataFormatException(source, $"metadata '{key}' names no classes");
            if (names.Distinct(StringComparer.Ordinal).Count() != names.Count)
                throw new DataFormatException(source, $"metadata '{key}' names a class twice");
            return names.ToArray();
        }
        catch (JsonException e)
        {
            throw new DataFormatException(source, $"metadata '{key}' is not valid JSON ({e.Message})", e);
        }
    }
}
