
namespace Backprop.Data;

/// <summary>Row indices of a train / validation / test split.</summary>
public sealed record SplitIndices(int[] Train, int[] Validation, int[] Test);

/// <summary>A data set split three ways.</summary>
public sealed record DataSplitResult(LabeledData Train, LabeledData Validation, LabeledData Test);

/// <summary>
/// Seeded train/validation/test splits. The rows are shuffled with <c>new System.Random(seed)</c> (Fisher–Yates),
/// then the first round(n·testFraction) go to test, the next round(n·validationFraction) to validation, the rest to train.
/// The stratified variant does this within each class so every split keeps the class proportions.
/// </summary>
public static class DataSplit
{
    /// <summary>A permutation of 0..n−1 from <c>new Random(seed)</c>.</summary>
    public static int[] Permutation(int n, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        var p = new int[n];
        for (int i = 0; i < n; i++) p[i] = i;
        Shuffle(p, new Random(seed));
        return p;
    }

    /// <summary>Fisher–Yates shuffle of <paramref name="values"/> with <paramref name="rng"/>.</summary>
    public static void Shuffle(Span<int> values, Random rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        for (int i = values.Length - 1; i > 0; i--)
        {
            int j = rng.Next(i + 1);
            (values[i], values[j]) = (values[j], values[i]);
        }
    }

    /// <summary>
    /// The row indices of a seeded split of <paramref name="n"/> rows, without class stratification: test takes
    /// round(n·testFraction) rows of the permutation, validation the next round(n·validationFraction), train the rest.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="n"/> is negative, a fraction is outside [0, 1), or the two leave no training rows.</exception>
    public static SplitIndices Indices(int n, double validationFraction, double testFraction, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        CheckFractions(validationFraction, testFraction);
        var p = Permutation(n, seed);
        int nTest = Take(n, testFraction);
        int nVal = Math.Min(Take(n, validationFraction), n - nTest);
        return new SplitIndices(p[(nTest + nVal)..], p[nTest..(nTest + nVal)], p[..nTest]);
    }

    /// <summary>Like <see cref="Indices"/>, but each class is split separately so all splits keep its share.</summary>
    public static SplitIndices StratifiedIndices(ReadOnlySpan<int> labels, double validationFraction, double testFraction, int seed)
    {
        CheckFractions(validationFraction, testFraction);
        var byClass = new SortedDictionary<int, List<int>>();
        for (int i = 0; i < labels.Length; i++)
        {
            if (!byClass.TryGetValue(labels[i], out var list)) byClass[labels[i]] = list = new List<int>();
            list.Add(i);
        }
        var rng = new Random(seed);
        var train = new List<int>();
        var val = new List<int>();
        var test = new List<int>();
        foreach (var (_, rows) in byClass)
        {
            var idx = rows.ToArray();
            Shuffle(idx, rng);
            int nTest = Take(idx.Length, testFraction);
            int nVal = Math.Min(Take(idx.Length, validationFraction), idx.Length - nTest);
            test.AddRange(idx[..nTest]);
            val.AddRange(idx[nTest..(nTest + nVal)]);
            train.AddRange(idx[(nTest + nVal)..]);
        }
        var tr = train.ToArray(); Shuffle(tr, rng);
        var va = val.ToArray(); Shuffle(va, rng);
        var te = test.ToArray(); Shuffle(te, rng);
        return new SplitIndices(tr, va, te);
    }

    /// <summary>Splits a data set into copied train, validation and test sets.</summary>
    public static DataSplitResult Split(LabeledData data, double validationFraction, double testFraction, int seed, bool stratified = false)
    {
        ArgumentNullException.ThrowIfNull(data);
        var s = stratified
            ? StratifiedIndices(data.Labels, validationFraction, testFraction, seed)
            : Indices(data.Count, validationFraction, testFraction, seed);
        return new DataSplitResult(data.Subset(s.Train), data.Subset(s.Validation), data.Subset(s.Test));
    }

    /// <summary>Splits a data set two ways (train, held out) by <paramref name="holdoutFraction"/>.</summary>
    public static (LabeledData Train, LabeledData Holdout) Split(LabeledData data, double holdoutFraction, int seed, bool stratified = false)
    {
        var r = Split(data, 0, holdoutFraction, seed, stratified);
        return (r.Train, r.Test);
    }

    private static int Take(int n, double fraction) => (int)Math.Min(n, Math.Round(n * fraction, MidpointRounding.AwayFromZero));

    private static void CheckFractions(double validationFraction, double testFraction)
    {
        if (!(validationFraction >= 0 && validationFraction < 1))
            throw new ArgumentOutOfRangeException(nameof(validationFraction), validationFraction, "the validation fraction must be in [0, 1)");
        if (!(testFraction >= 0 && testFraction < 1))
            throw new ArgumentOutOfRangeException(nameof(testFraction), testFraction, "the test fraction must be in [0, 1)");
        if (validationFraction + testFraction >= 1)
            throw new ArgumentOutOfRangeException(nameof(testFraction), $"validation ({validationFraction}) and test ({testFraction}) fractions leave no training rows");
    }
}
