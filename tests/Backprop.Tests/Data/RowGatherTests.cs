using Backprop.Data;
using Backprop.Kernels;

namespace Backprop.Tests.Data;

/// <summary>The batch gather the training loop uses.</summary>
public class RowGatherTests
{
    /// <summary>Advance + GatherX (the training loop's path) serves the same batches as MoveNext, in float and double, serial and split across threads.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void GatherStraightIntoADestinationMatchesMoveNext(int threads)
    {
        int n = 257, d = 70;
        var rng = new Random(3);
        var x = Enumerable.Range(0, n * d).Select(_ => (float)rng.NextDouble()).ToArray();
        var y = Enumerable.Range(0, n).Select(i => i % 7).ToArray();
        var reference = new BatchLoader(x, y, d, batchSize: 64, seed: 11);
        var direct = new BatchLoader(x, y, d, batchSize: 64, seed: 11);
        var f = new float[64 * d];
        var g = new double[64 * d];
        // Split even these small batches when two threads are allowed.
        using var context = new ComputeContext(threads, KernelTuning.Default with { GatherMinValuesPerThread = 16 });
        for (int epoch = 0; epoch < 2; epoch++)
        {
            reference.StartEpoch(epoch);
            direct.StartEpoch(epoch);
            int batches = 0;
            while (reference.MoveNext())
            {
                Assert.True(direct.Advance());
                Assert.Equal(reference.CurrentBatchSize, direct.CurrentBatchSize);
                Assert.Equal(reference.CurrentY.ToArray(), direct.CurrentY.ToArray());
                Assert.Equal(reference.CurrentIndices.ToArray(), direct.CurrentIndices.ToArray());
                direct.GatherX<float>(f, context);
                direct.GatherX<double>(g, context);
                int len = reference.CurrentBatchSize * d;
                Assert.Equal(reference.CurrentX.ToArray(), f.AsSpan(0, len).ToArray());
                Assert.Equal(reference.CurrentX.ToArray().Select(v => (double)v), g.AsSpan(0, len).ToArray());
                batches++;
            }
            Assert.False(direct.Advance());
            Assert.Equal(5, batches);
        }
        Assert.Throws<ArgumentException>(() => RowGather.Gather<float>(context, x, d, [0, 1], new float[d]));
        RowGather.Gather<float>(context, x, d, [], new float[d]); // no rows: nothing to do
        // After Advance, BatchX still holds the previous batch: CurrentX refuses rather than serve it.
        var loader = new BatchLoader(x, y, d, batchSize: 64, seed: 11);
        loader.StartEpoch(0);
        Assert.True(loader.MoveNext());
        Assert.Equal(64 * d, loader.CurrentX.Length);
        Assert.True(loader.Advance());
        Assert.Throws<InvalidOperationException>(() => loader.CurrentX.Length);
        Assert.Throws<ArgumentOutOfRangeException>(() => RowGather.Gather<float>(context, x, d, [n], new float[d]));
    }
}
