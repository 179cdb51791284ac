using Backprop.Data;
using Backprop.IO;

namespace Backprop.Tests.Data;

public class PreparationTests
{
    [Fact]
    public void StandardizerUsesTrainStatisticsOnly()
    {
        var wine = CsvDataset.Load(TestData.Tabular("wine.csv"));
        var split = DataSplit.Split(wine.Data, 0.15, 0.15, seed: 7);
        var s = Standardizer.Fit(split.Train);
        Assert.Equal(13, s.FeatureCount);

        // The statistics are those of the training rows alone.
        int d = wine.FeatureCount;
        for (int j = 0; j < d; j++)
        {
            double mean = 0;
            for (int i = 0; i < split.Train.Count; i++) mean += split.Train.Features[i * d + j];
            mean /= split.Train.Count;
            Assert.Equal(mean, s.Mean[j], 1e-3 * Math.Max(1, Math.Abs(mean)));
        }

        var train = s.Transform(split.Train);
        var test = s.Transform(split.Test);
        for (int j = 0; j < d; j++)
        {
            var col = Enumerable.Range(0, train.Count).Select(i => (double)train.Features[i * d + j]).ToArray();
            double m = col.Average();
            double sd = Math.Sqrt(col.Select(v => (v - m) * (v - m)).Average());
            Assert.Equal(0, m, 1e-4);
            Assert.Equal(1, sd, 1e-4);
        }
        // The test split is transformed with the same numbers: its mean is not exactly 0.
        double testMean0 = Enumerable.Range(0, test.Count).Average(i => (double)test.Features[i * d]);
        Assert.NotEqual(0, testMean0, 1e-6);
        Assert.Equal((test.Features[0] * s.Std[0]) + s.Mean[0], split.Test.Features[0], 1e-3);
        // Transform leaves the original alone.
        Assert.NotEqual(train.Features[0], split.Train.Features[0]);
    }

    [Fact]
    public void ConstantFeaturesGetStdOneAndMetadataRoundTrips()
    {
        float[] x = [1, 5, 2, 5, 3, 5];
        var s = Standardizer.Fit(x, 2);
        Assert.Equal(new[] { 2f, 5f }, s.Mean);
        Assert.Equal(1f, s.Std[1]);
        Assert.Equal(MathF.Sqrt(2f / 3f), s.Std[0], 1e-6f);
        var copy = (float[])x.Clone();
        s.Apply(copy.AsSpan());
        Assert.Equal(0f, copy[1]);
        s.Invert(copy);
        Assert.Equal(x, copy);

        var md = new Dictionary<string, string>();
        s.WriteMetadata(md);
        var r = Standardizer.ReadMetadata(md, "m")!;
        Assert.Equal(s.Mean, r.Mean);
        Assert.Equal(s.Std, r.Std);
        Assert.Null(Standardizer.ReadMetadata(new Dictionary<string, string>(), "m"));
        md["standardizer.std"] = "[1, 0]";
        Assert.Throws<DataFormatException>(() => Standardizer.ReadMetadata(md, "m"));
        md["standardizer.std"] = "[1]";
        Assert.Throws<DataFormatException>(() => Standardizer.ReadMetadata(md, "m"));
        md.Remove("standardizer.std");
        Assert.Throws<DataFormatException>(() => Standardizer.ReadMetadata(md, "m"));

        double[] xd = [1, 5, 2, 5, 3, 5];
        s.Apply(xd.AsSpan());
        Assert.Equal(0, xd[1]);
    }

    [Fact]
    public void SplitIsSeededAndPartitions()
    {
        var a = DataSplit.Indices(100, 0.2, 0.1, seed: 3);
        var b = DataSplit.Indices(100, 0.2, 0.1, seed: 3);
        var c = DataSplit.Indices(100, 0.2, 0.1, seed: 4);
        Assert.Equal(a.Train, b.Train);
        Assert.NotEqual(a.Train, c.Train);
        Assert.Equal((70, 20, 10), (a.Train.Length, a.Validation.Length, a.Test.Length));
        Assert.Equal(Enumerable.Range(0, 100), a.Train.Concat(a.Validation).Concat(a.Test).Order());
        Assert.Throws<ArgumentOutOfRangeException>(() => DataSplit.Indices(10, 0.5, 0.5, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => DataSplit.Indices(10, -0.1, 0, 1));
    }

    [Fact]
    public void StratifiedSplitKeepsClassShares()
    {
        var bc = CsvDataset.Load(TestData.Tabular("breast_cancer.csv")); // 357 / 212
        var s = DataSplit.StratifiedIndices(bc.Labels, 0.1, 0.2, seed: 1);
        Assert.Equal(Enumerable.Range(0, bc.Count), s.Train.Concat(s.Validation).Concat(s.Test).Order());
        int Ones(int[] idx) => idx.Count(i => bc.Labels[i] == 1);
        Assert.Equal(42, Ones(s.Test));         // round(212 · 0.2)
        Assert.Equal(71, s.Test.Length - Ones(s.Test)); // round(357 · 0.2)
        Assert.Equal(21, Ones(s.Validation));
        var split = DataSplit.Split(bc.Data, 0.1, 0.2, 1, stratified: true);
        Assert.Equal(s.Test.Length, split.Test.Count);
        Assert.Equal(bc.Data.Row(s.Test[0]).ToArray(), split.Test.Row(0).ToArray());
        Assert.Equal(bc.Labels[s.Test[0]], split.Test.Labels[0]);
    }

    [Fact]
    public void LoaderVisitsEveryRowOncePerEpoch()
    {
        int n = 103, d = 3;
        var x = new float[n * d];
        for (int i = 0; i < x.Length; i++) x[i] = i;
        var y = Enumerable.Range(0, n).ToArray();
        var loader = new BatchLoader(x, y, d, batchSize: 10, seed: 5);
        Assert.Equal(11, loader.BatchesPerEpoch);
        var orders = new List<int[]>();
        for (int epoch = 0; epoch < 3; epoch++)
        {
            var seen = new List<int>();
            var sizes = new List<int>();
            foreach (var _ in loader.Batches(epoch))
            {
                sizes.Add(loader.CurrentBatchSize);
                for (int k = 0; k < loader.CurrentBatchSize; k++)
                {
                    int row = loader.BatchY[k];
                    Assert.Equal(row, loader.CurrentIndices[k]);
                    for (int j = 0; j < d; j++) Assert.Equal(row * d + j, loader.BatchX[k * d + j]);
                    seen.Add(row);
                }
            }
            Assert.Equal(Enumerable.Repeat(10, 10).Append(3), sizes);
            Assert.Equal(Enumerable.Range(0, n), seen.Order());
            orders.Add(seen.ToArray());
        }
        Assert.NotEqual(orders[0], orders[1]);
        Assert.NotEqual(orders[1], orders[2]);

        // Same seed, same epoch: same order, whatever ran before.
        var again = new BatchLoader(x, y, d, 10, seed: 5);
        Assert.Equal(orders[2], again.Batches(2).SelectMany(_ => again.CurrentY.ToArray()).ToArray());
        Assert.Equal(orders[0], again.Batches(0).SelectMany(_ => again.CurrentY.ToArray()).ToArray());
        var other = new BatchLoader(x, y, d, 10, seed: 6);
        Assert.NotEqual(orders[0], other.Batches(0).SelectMany(_ => other.CurrentY.ToArray()).ToArray());
        // Without shuffling the order is 0..n−1.
        var plain = new BatchLoader(x, y, d, 10, seed: 6, shuffle: false);
        Assert.Equal(Enumerable.Range(0, n), plain.Batches(4).SelectMany(_ => plain.CurrentY.ToArray()));
    }

    [Fact]
    public void LoaderReusesItsBuffersAndConverts()
    {
        var data = new LabeledData([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [0, 1, 0, 1, 0], 2);
        var loader = new BatchLoader(data, batchSize: 2, seed: 1);
        var bx = loader.BatchX;
        var by = loader.BatchY;
        var dbl = new double[4];
        var t = new Tensor<double>(2, 2);
        // Warm up, then measure: no allocation per batch.
        for (int e = 0; e < 2; e++) { loader.StartEpoch(e); while (loader.MoveNext()) loader.CopyBatchX(dbl); }
        long before = GC.GetAllocatedBytesForCurrentThread();
        loader.StartEpoch(2);
        int batches = 0;
        while (loader.MoveNext())
        {
            loader.CopyBatchX(dbl.AsSpan());
            loader.CopyBatchX(t);
            batches++;
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(3, batches);
        Assert.True(allocated < 1024, $"allocated {allocated} bytes in an epoch"); // just the epoch's Random
        Assert.Same(bx, loader.BatchX);
        Assert.Same(by, loader.BatchY);
        Assert.Equal(0, loader.CurrentBatchSize);

        loader.StartEpoch(0);
        loader.MoveNext();
        loader.CopyBatchX(dbl.AsSpan());
        Assert.Equal(loader.CurrentX.ToArray().Select(v => (double)v), dbl);
        var f = new float[4];
        loader.CopyBatchX<float>(f);
        Assert.Equal(loader.CurrentX.ToArray(), f);
        Assert.Throws<ArgumentException>(() => loader.CopyBatchX(new double[1]));
        Assert.Throws<ArgumentException>(() => new BatchLoader(new float[5], new int[2], 2, 1, 0));
    }

    [Fact]
    public void PrepareSplitsACsvStratifiedAndStandardisesWithTrainStatistics()
    {
        var data = DataLoading.Prepare(TestData.Tabular("iris.csv"), null, seed: 5);
        Assert.Equal("csv", data.Kind);
        Assert.Equal(4, data.Features);
        Assert.Equal(3, data.Classes);
        // 150 rows, 3 classes of 50: each class gives 10 test rows (20 %), 8 validation (15 % of 50, rounded) and 32 train
        Assert.Equal((96, 24, 30), (data.Train.Count, data.Validation.Count, data.Test.Count));
        for (int c = 0; c < 3; c++) Assert.Equal(32, data.Train.Labels.Count(l => l == c));
        // standardised with the training rows' statistics: the training features have mean 0 and std 1
        Assert.NotNull(data.Standardizer);
        for (int j = 0; j < data.Features; j++)
        {
            double mean = 0, sq = 0;
            for (int i = 0; i < data.Train.Count; i++) mean += data.Train.Row(i)[j];
            mean /= data.Train.Count;
            for (int i = 0; i < data.Train.Count; i++) sq += Math.Pow(data.Train.Row(i)[j] - mean, 2);
            Assert.True(Math.Abs(mean) < 1e-5, $"feature {j}: mean {mean}");
            Assert.True(Math.Abs(Math.Sqrt(sq / data.Train.Count) - 1) < 1e-3, $"feature {j}: std {Math.Sqrt(sq / data.Train.Count)}");
        }
        // the seed fixes the split
        var again = DataLoading.Prepare(TestData.Tabular("iris.csv"), null, seed: 5);
        Assert.Equal(data.Train.Features, again.Train.Features);
        Assert.NotEqual(data.Train.Features, DataLoading.Prepare(TestData.Tabular("iris.csv"), null, seed: 6).Train.Features);
    }

    [Fact]
    public void PrepareHoldsOutValidationFromMnistTrainAndTestsOnT10k()
    {
        var data = DataLoading.Prepare(TestData.MnistDir, null, seed: 0);
        Assert.Equal("mnist", data.Kind);
        Assert.Equal((784, 10), (data.Features, data.Classes));
        Assert.Equal(TestData.Mnist.Train.Count, data.Train.Count + data.Validation.Count);
        Assert.Equal(TestData.Mnist.Train.Count / 12, data.Validation.Count, 1.0);
        Assert.Equal(TestData.Mnist.Test.Count, data.Test.Count);
        Assert.Null(data.Standardizer);
    }

    [Fact]
    public void PrepareNamesAPathThatIsNeitherADirectoryNorAFile()
    {
        var e = Assert.Throws<DataFormatException>(() => DataLoading.Prepare("/no/such/data", null, seed: 0));
        Assert.Contains("/no/such/data", e.Message);
    }
}
