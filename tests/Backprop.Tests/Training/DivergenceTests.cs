using Backprop.Cli.Commands;
using Backprop.Data;
using Backprop.Tests.Cli;
using Backprop.Training;

namespace Backprop.Tests.Training;

public sealed class DivergenceTests : IDisposable
{
    private readonly TempDir _tmp = new();
    public void Dispose() => _tmp.Dispose();

    [Fact]
    public void ANonFiniteLossNamesTheStepLayerAndOp()
    {
        var csv = CsvDataset.Load(CliRunner.DataPath("tabular", "iris.csv"));
        var net = Initializers.Mlp<float>([4, 8, 3], "relu", 0);
        var trainer = new Trainer<float>(net, new TrainOptions { BatchSize = 10, LearningRate = 0.01 });
        // A parameter blows up before the step: the first op that reads it produces a non-finite value.
        net.Layers[1].Weight.Value.Data[0] = float.PositiveInfinity;
        var loader = new BatchLoader(csv.Data, 10, 0);
        var ex = Assert.Throws<NonFiniteValueException>(() => trainer.TrainEpoch(loader, 1, trainer.Schedule(loader.BatchesPerEpoch)));
        Assert.Contains("step 1", ex.Message);
        Assert.Contains("a parameter already holds", ex.Message);

        net.Layers[1].Weight.Value.Data[0] = 0;
        var x = csv.Data.Features;
        var bad = new LabeledData((float[])x.Clone(), csv.Data.Labels, 4);
        bad.Features[5] = 1e30f;   // finite input, but z = x·Wᵀ overflows in the first linear op
        net.Layers[0].Weight.Value.Fill(1e10f);
        var ex2 = Assert.Throws<NonFiniteValueException>(() => trainer.TrainEpoch(new BatchLoader(bad, 150, 0, shuffle: false), 1, trainer.Schedule(1)));
        Assert.Contains("layers.0 linear", ex2.Message);
    }

    [Fact]
    public void DivergenceKeepsTheLastGoodCheckpointAndExitsWithOneLine()
    {
        string ck = _tmp.File("ck.safetensors");
        var ok = CliRunner.Run("train", "--data", CliRunner.DataPath("tabular", "iris.csv"), "--epochs", "2", "--batch", "16",
            "--checkpoint", ck, "--out", _tmp.File("m.safetensors"), "--quiet");
        Assert.Equal(0, ok.ExitCode);
        var before = File.ReadAllBytes(ck);
        var r = CliRunner.Run("train", "--data", CliRunner.DataPath("tabular", "iris.csv"), "--epochs", "4", "--batch", "16",
            "--resume", ck, "--checkpoint", ck, "--lr", "1e30", "--out", _tmp.File("m2.safetensors"), "--quiet");
        Assert.Equal(1, r.ExitCode);
        Assert.Single(r.Stderr.TrimEnd().Split('\n'));
        Assert.Contains("training diverged", r.Stderr);
        Assert.Contains("last good checkpoint", r.Stderr);
        Assert.Equal(before, File.ReadAllBytes(ck));
        Assert.Equal(2, Checkpoint.Load<float>(ck).Epoch);
    }
}
