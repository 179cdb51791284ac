using System.Numerics;
using Backprop.Data;
using Backprop.Kernels;
using Backprop.Nn;
using Backprop.Training;

namespace Backprop.Tests.Data;

/// <summary>
/// Images kept as bytes (feature = byte / 255f, how MNIST loads) against the same rows as floats: every reader of a data
/// set (the batch loader, evaluation, prediction, the checkpoint's fingerprint, subsets) gives the float data's bits.
/// </summary>
public class UnitBytesDataTests
{
    private const int Rows = 37, Width = 29;

    /// <summary>The same 37 rows twice: as unit bytes (every byte value occurs) and as the floats they stand for.</summary>
    private static (LabeledData Bytes, LabeledData Floats) Pair()
    {
        var rng = new Random(5);
        var bytes = new byte[Rows * Width];
        for (int i = 0; i < bytes.Length; i++) bytes[i] = (byte)(i < 256 ? i : rng.Next(256));
        var labels = Enumerable.Range(0, Rows).Select(i => i % 10).ToArray();
        var floats = bytes.Select(b => b / 255f).ToArray();
        return (new LabeledData(bytes, labels, Width), new LabeledData(floats, [.. labels], Width));
    }

    [Fact]
    public void FeaturesAreTheBytesOver255AndThenTheData()
    {
        var (bytes, floats) = Pair();
        Assert.False(bytes.UnitBytes.IsEmpty);
        Assert.True(floats.UnitBytes.IsEmpty);
        var subset = bytes.Subset([3, 0, 36]);
        Assert.False(subset.UnitBytes.IsEmpty);   // a subset of bytes stays bytes
        Assert.Equal(floats.Subset([3, 0, 36]).Features, subset.Features);
        Assert.Equal(floats.Features, bytes.Features);
        Assert.True(bytes.UnitBytes.IsEmpty);   // once asked for, the floats are the data (a caller may write to them)
        Assert.Same(bytes.Features, bytes.Features);
    }

    [Fact]
    public void TheCheckpointFingerprintIsTheFloatsOne()
    {
        var (bytes, floats) = Pair();
        Assert.Equal(Checkpoint.DataFingerprint(floats), Checkpoint.DataFingerprint(bytes));
        Assert.False(bytes.UnitBytes.IsEmpty);   // without converting the whole set
        var other = new LabeledData(bytes.UnitBytes.ToArray().Select((b, i) => i == 100 ? (byte)(b ^ 1) : b).ToArray(), [.. bytes.Labels], Width);
        Assert.NotEqual(Checkpoint.DataFingerprint(floats), Checkpoint.DataFingerprint(other));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void TheLoaderGathersTheFloatsBatches(int threads)
    {
        var (bytes, floats) = Pair();
        using var context = new ComputeContext(threads, KernelTuning.Default with { GatherMinValuesPerThread = 1 });
        var a = new BatchLoader(bytes, 8, seed: 3);
        var b = new BatchLoader(floats, 8, seed: 3);
        a.StartEpoch(1);
        b.StartEpoch(1);
        var fa = new float[8 * Width];
        var fb = new float[8 * Width];
        var da = new double[8 * Width];
        var db = new double[8 * Width];
        while (a.Advance())
        {
            Assert.True(b.Advance());
            a.GatherX<float>(fa, context);
            b.GatherX<float>(fb, context);
            a.GatherX<double>(da, context);
            b.GatherX<double>(db, context);
            Assert.Equal(fb, fa);
            Assert.Equal(db, da);
            Assert.Equal(b.CurrentY.ToArray(), a.CurrentY.ToArray());
        }
        Assert.False(bytes.UnitBytes.IsEmpty);
    }

    [Fact]
    public void EvaluationAndPredictionGiveTheFloatsBits()
    {
        Check<float>();
        Check<double>();
    }

    private static void Check<T>() where T : unmanaged, IFloatingPointIeee754<T>
    {
        var (bytes, floats) = Pair();
        var net = Initializers.Mlp<T>([Width, 16, 10], "relu", 7, InitKind.HeUniform);
        var objective = TrainingObjective.Classification;
        // batches of 8: several passes, the last one short
        var e1 = Trainer<T>.Measure(net, bytes, objective, batchSize: 8);
        var e2 = Trainer<T>.Measure(net, floats, objective, batchSize: 8);
        Assert.Equal(e2.Loss, e1.Loss);
        Assert.Equal(e2.Metrics.Headline, e1.Metrics.Headline);
        var p1 = Trainer<T>.Predict(net, bytes, batchSize: 8);
        var p2 = Trainer<T>.Predict(net, floats, batchSize: 8);
        Assert.Equal(p2.Data.ToArray(), p1.Data.ToArray());
        Assert.False(bytes.UnitBytes.IsEmpty);
    }
}
