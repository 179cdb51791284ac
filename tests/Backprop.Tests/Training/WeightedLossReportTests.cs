using Backprop.Data;
using Backprop.Ops;
using Backprop.Training;

namespace Backprop.Tests.Training;

/// <summary>
/// A reported loss is the data's mean as the loss defines it. For a class-weighted cross-entropy that is Σ w·ℓ / Σ w
/// over all rows (PyTorch's weighted mean), whatever the batch size: batch means are combined by their divisors (the
/// summed weights), not by their rows.
/// </summary>
public class WeightedLossReportTests
{
    private static (Backprop.Nn.Sequential<double> Net, LabeledData Data) Setup()
    {
        var net = Initializers.Mlp<double>([3, 5, 3], "tanh", seed: 4);
        var rng = new Random(9);
        int n = 11;
        var x = new float[n * 3];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        int[] y = [0, 1, 2, 2, 2, 1, 0, 2, 2, 1, 2];
        return (net, new LabeledData(x, y, 3));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    public void TheWeightedMeanDoesNotDependOnTheBatchSize(int batch)
    {
        var (net, data) = Setup();
        double[] w = [1, 5, 0.25];
        var objective = new TrainingObjective(TrainingTask.Classification, LossKind.CrossEntropy, new LossSettings { ClassWeights = w });
        var whole = Trainer<double>.Measure(net, data, objective, batchSize: data.Count);
        var batched = Trainer<double>.Measure(net, data, objective, batchSize: batch);
        Assert.Equal(whole.Loss, batched.Loss, 1e-12);
        Assert.Equal(data.Labels.Sum(c => w[c]), batched.Divisor, 1e-12);

        // and it is not the rows' plain mean (the weights matter on this data)
        var plain = Trainer<double>.Measure(net, data, TrainingObjective.Classification, batchSize: data.Count);
        Assert.True(Math.Abs(plain.Loss - whole.Loss) > 1e-3, $"{plain.Loss} vs {whole.Loss}");
    }
}
