using Backprop.Data;
using Backprop.Nn;
using Backprop.Tests.Cli;
using Backprop.Training;

namespace Backprop.Tests.Training;

public class TrainerDeterminismTests
{
    private static readonly Lazy<CsvDataset> Iris = new(() => CsvDataset.Load(CliRunner.DataPath("tabular", "iris.csv")));

    /// <summary>The CLI's preparation of a CSV: stratified 65/15/20 split by seed, standardised on the train part.</summary>
    private static (LabeledData train, LabeledData val) Prepare(int seed)
    {
        var split = DataSplit.Split(Iris.Value.Data, 0.15, 0.2, seed, stratified: true);
        var std = Standardizer.Fit(split.Train);
        return (std.Apply(split.Train), std.Apply(split.Validation));
    }

    private static (Sequential<T> net, List<(double loss, double acc, double? gnorm)> epochs) Train<T>(int seed, string optimizer = "adam",
        int epochs = 1, double clip = 0) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        var (train, _) = Prepare(seed);
        var net = Initializers.Mlp<T>([4, 16, 3], "relu", seed);
        var opts = new TrainOptions { Seed = seed, Epochs = epochs, BatchSize = 16, LearningRate = 0.01, Optimizer = optimizer, ClipNorm = clip };
        var trainer = new Trainer<T>(net, opts);
        var loader = new BatchLoader(train, opts.BatchSize, seed);
        var schedule = trainer.Schedule(loader.BatchesPerEpoch);
        var results = new List<(double, double, double?)>();
        for (int e = 1; e <= epochs; e++) results.Add(trainer.TrainEpoch(loader, e, schedule));
        return (net, results);
    }

    [Theory]
    [InlineData("adam")]
    [InlineData("sgd")]
    [InlineData("rmsprop")]
    public void Same_seed_gives_bit_identical_weights_after_an_epoch(string optimizer)
    {
        var (a, ra) = Train<double>(seed: 3, optimizer);
        var (b, rb) = Train<double>(seed: 3, optimizer);
        TrainingAssert.BitIdentical(a, b);
        Assert.Equal(ra, rb);

        var (f1, _) = Train<float>(seed: 3, optimizer);
        var (f2, _) = Train<float>(seed: 3, optimizer);
        TrainingAssert.BitIdentical(f1, f2);
    }

    [Fact]
    public void A_different_seed_gives_different_weights()
    {
        var (a, _) = Train<double>(seed: 3);
        var (b, _) = Train<double>(seed: 4);
        Assert.False(TrainingAssert.SameBits(a, b));
    }

    [Fact]
    public void Training_reduces_the_loss_and_fits_iris()
    {
        var (net, epochs) = Train<double>(seed: 0, epochs: 30);
        Assert.True(epochs[^1].loss < epochs[0].loss / 3, $"loss {epochs[0].loss} → {epochs[^1].loss}");
        Assert.True(epochs[^1].acc > 0.9, $"train accuracy {epochs[^1].acc}");
        var (_, val) = Prepare(0);
        var before = net.Parameters().Select(p => p.Value.Clone()).ToArray();
        var (_, valAcc) = Trainer<double>.Evaluate(net, val);
        Assert.True(valAcc >= 0.9, $"validation accuracy {valAcc}");
        // evaluating does not touch the parameters
        var after = net.Parameters().ToArray();
        for (int i = 0; i < before.Length; i++) Assert.Equal(before[i].Data, after[i].Value.Data);
    }

    [Fact]
    public void Clipping_reports_the_mean_gradient_norm()
    {
        var (_, epochs) = Train<double>(seed: 0, epochs: 2, clip: 0.5);
        Assert.All(epochs, e => Assert.True(e.gnorm is > 0 && double.IsFinite(e.gnorm.Value)));
        var (_, plain) = Train<double>(seed: 0, epochs: 1);
        Assert.Null(plain[0].gnorm);
    }

    [Fact]
    public void Cli_runs_with_the_same_seed_and_threads_save_identical_models()
    {
        using var tmp = new TempDir();
        string[] Args(int seed, string output) =>
            ["train", "--data", CliRunner.DataPath("tabular", "iris.csv"), "--epochs", "3", "--batch", "16", "--lr", "0.01",
             "--seed", seed.ToString(), "--threads", "2", "--quiet", "--json", "--out", output];
        foreach (var (seed, name) in new[] { (11, "a"), (11, "b"), (12, "c") })
            Assert.Equal(0, CliRunner.Run(Args(seed, tmp.File(name + ".safetensors"))).ExitCode);
        var a = ModelFile.Load<float>(tmp.File("a.safetensors"));
        var b = ModelFile.Load<float>(tmp.File("b.safetensors"));
        var c = ModelFile.Load<float>(tmp.File("c.safetensors"));
        TrainingAssert.BitIdentical(a.Network, b.Network);
        Assert.Equal(File.ReadAllBytes(tmp.File("a.safetensors")), File.ReadAllBytes(tmp.File("b.safetensors")));
        Assert.False(TrainingAssert.SameBits(a.Network, c.Network));
    }
}
