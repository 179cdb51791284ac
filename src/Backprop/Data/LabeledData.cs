using Backprop.Core;

namespace Backprop.Data;

/// <summary>
/// A labelled data set held in memory: <see cref="Count"/> rows of <see cref="FeatureCount"/> float features
/// (row-major in <see cref="Features"/>) and, per row, either one class index in <see cref="Labels"/> (classification)
/// or <see cref="TargetCount"/> target values in <see cref="Targets"/> (regression, multi-label; <see cref="Labels"/>
/// then holds zeros).
/// </summary>
public sealed class LabeledData
{
    /// <summary>Rows with one class index each: <c>labels.Length</c> rows of <paramref name="featureCount"/> features, row-major. The arrays are not copied.</summary>
    /// <exception cref="ArgumentException">The feature array does not hold <c>labels.Length × featureCount</c> values.</exception>
    public LabeledData(float[] features, int[] labels, int featureCount) : this(features, labels, featureCount, null, 0) { }

    /// <summary>Rows with <paramref name="targetCount"/> target values each (row-major in <paramref name="targets"/>).</summary>
    public LabeledData(float[] features, float[] targets, int targetCount, int featureCount)
        : this(features, new int[targetCount > 0 ? targets.Length / targetCount : 0], featureCount, targets, targetCount) { }

    /// <summary>Class labels, or (with <paramref name="targets"/>) placeholder labels and target values.</summary>
    public LabeledData(float[] features, int[] labels, int featureCount, float[]? targets, int targetCount)
    {
        ArgumentNullException.ThrowIfNull(features);
        CheckShape(labels, featureCount, features.Length, "feature array");
        if (targets is not null)
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(targetCount);
            if ((long)labels.Length * targetCount != targets.Length)
                throw new ArgumentException($"{labels.Length} rows × {targetCount} targets needs {(long)labels.Length * targetCount} values but the target array holds {targets.Length}");
        }
        _features = features;
        Labels = labels;
        FeatureCount = featureCount;
        Targets = targets;
        TargetCount = targets is null ? 0 : targetCount;
    }

    /// <summary>
    /// Rows of class-labelled images stored as unit bytes: feature = byte / 255f (MNIST's pixels). A quarter of the
    /// memory of floats, and what the training loop reads: on this project's VM the first write to fresh memory costs
    /// more than decoding the images, so loading MNIST as floats (190 MB) took 0.19 s in one process and 0.57 s in each
    /// of two MPI ranks on two cores. <see cref="Features"/> converts the bytes once, on first use.
    /// </summary>
    internal LabeledData(byte[] unitBytes, int[] labels, int featureCount)
    {
        ArgumentNullException.ThrowIfNull(unitBytes);
        CheckShape(labels, featureCount, unitBytes.Length, "byte array");
        _unitBytes = unitBytes;
        Labels = labels;
        FeatureCount = featureCount;
    }

    /// <summary>Throws unless <paramref name="labels"/> rows of <paramref name="featureCount"/> features are the <paramref name="values"/> the array holds.</summary>
    private static void CheckShape(int[] labels, int featureCount, long values, string array)
    {
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(featureCount);
        if ((long)labels.Length * featureCount != values)
            throw new ArgumentException($"{labels.Length} labels × {featureCount} features needs {(long)labels.Length * featureCount} values but the {array} holds {values}");
    }

    private float[]? _features;
    private readonly byte[]? _unitBytes;

    /// <summary>
    /// The features as unit bytes (feature = byte / 255f) while they are stored so and <see cref="Features"/> has not
    /// been asked for (after that, the floats are the data: a caller may have written to them); otherwise empty.
    /// </summary>
    internal ReadOnlySpan<byte> UnitBytes => Volatile.Read(ref _features) is null ? _unitBytes : default;

    /// <summary>Rows first … first + count − 1 of the features, converted to <typeparamref name="T"/> into <paramref name="destination"/>.</summary>
    internal void CopyRows<T>(int first, int count, Span<T> destination) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        int d = FeatureCount;
        var bytes = UnitBytes;
        if (!bytes.IsEmpty) Backprop.Core.UnitBytes.Convert(bytes.Slice(first * d, count * d), destination);
        else Kernels.RowGather.Convert(Features.AsSpan(first * d, count * d), destination);
    }

    /// <summary>Row-major Count × TargetCount target values; null for class labels.</summary>
    public float[]? Targets { get; }
    /// <summary>Target values per row (0 for class labels).</summary>
    public int TargetCount { get; }

    /// <summary>Row-major Count × FeatureCount features (for images stored as bytes, converted once on first use).</summary>
    public float[] Features => Volatile.Read(ref _features) ?? Materialise();

    private float[] Materialise()
    {
        var floats = Backprop.Core.LargeArrays.Uninitialized<float>(_unitBytes!.Length);   // every value is written below
        Backprop.Core.UnitBytes.Convert<float>(_unitBytes, floats);
        return Interlocked.CompareExchange(ref _features, floats, null) ?? floats;
    }
    /// <summary>One class index per row.</summary>
    public int[] Labels { get; }
    /// <summary>Features per row.</summary>
    public int FeatureCount { get; }
    /// <summary>The number of rows.</summary>
    public int Count => Labels.Length;

    /// <summary>Row <paramref name="i"/>'s features.</summary>
    public Span<float> Row(int i) => Features.AsSpan(checked(i * FeatureCount), FeatureCount);

    /// <summary>The rows at <paramref name="indices"/>, in that order, copied into a new data set.</summary>
    public LabeledData Subset(ReadOnlySpan<int> indices)
    {
        int d = FeatureCount;
        if (!UnitBytes.IsEmpty && Targets is null)
        {
            var bytes = UnitBytes;
            var rows = new byte[(long)indices.Length * d];
            var labels = new int[indices.Length];
            for (int k = 0; k < indices.Length; k++)
            {
                int i = indices[k];
                if ((uint)i >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(indices), $"index {i} is outside 0..{Count - 1}");
                bytes.Slice(i * d, d).CopyTo(rows.AsSpan(k * d, d));
                labels[k] = Labels[i];
            }
            return new LabeledData(rows, labels, d);
        }
        var x = Backprop.Core.LargeArrays.Uninitialized<float>((long)indices.Length * d);   // every row is copied in below
        var y = new int[indices.Length];
        int t = TargetCount;
        var targets = Targets is null ? null : new float[(long)indices.Length * t];
        for (int k = 0; k < indices.Length; k++)
        {
            int i = indices[k];
            if ((uint)i >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(indices), $"index {i} is outside 0..{Count - 1}");
            Features.AsSpan(i * d, d).CopyTo(x.AsSpan(k * d, d));
            y[k] = Labels[i];
            if (targets is not null) Targets.AsSpan(i * t, t).CopyTo(targets.AsSpan(k * t, t));
        }
        return new LabeledData(x, y, d, targets, t);
    }

    /// <summary>The features as a Count × FeatureCount tensor sharing <see cref="Features"/>.</summary>
    public Tensor<float> FeaturesTensor() => new(Features, Count, FeatureCount);

    /// <summary>The features converted to double, Count × FeatureCount.</summary>
    public Tensor<double> FeaturesTensorDouble()
    {
        var d = new double[Features.Length];
        for (int i = 0; i < d.Length; i++) d[i] = Features[i];
        return new Tensor<double>(d, Count, FeatureCount);
    }

    /// <summary>Number of classes: one more than the largest label (0 when empty).</summary>
    public int ClassCountFromLabels()
    {
        int max = -1;
        foreach (var l in Labels) if (l > max) max = l;
        return max + 1;
    }
}
