using Backprop.Data;
using Backprop.Nn;
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
        net.Layers[1].Parameter("weight")!.Value.Data[0] = float.PositiveInfinity;
        var loader = new BatchLoader(csv.Data, 10, 0);
        var ex = Assert.Throws<NonFiniteValueException>(() => trainer.TrainEpoch(loader, 1, trainer.Schedule(loader.BatchesPerEpoch)));
        Assert.Contains("step 1", ex.Message);
        Assert.Contains("a parameter already holds", ex.Message);

        net.Layers[1].Parameter("weight")!.Value.Data[0] = 0;
        var x = csv.Data.Features;
        var bad = new LabeledData((float[])x.Clone(), csv.Data.Labels, 4);
        bad.Features[5] = 1e30f;   // finite input, but z = x·Wᵀ overflows in the first linear op
        net.Layers[0].Parameter("weight")!.Value.Fill(1e10f);
        var ex2 = Assert.Throws<NonFiniteValueException>(() => trainer.TrainEpoch(new BatchLoader(bad, 150, 0, shuffle: false), 1, trainer.Schedule(1)));
        Assert.Contains("layers.0 linear", ex2.Message);
    }

    [Fact]
    public void DivergenceKeepsTheLastGoodCheckpointAndExitsWithOneLine()
    {
        string ck = _tmp.File("ck.safetensors");
        // a constant rate, so that the resumed run may ask for more epochs (a cosine one spans --epochs)
        var ok = CliRunner.Run("train", "--data", CliRunner.DataPath("tabular", "iris.csv"), "--epochs", "2", "--batch", "16", "--schedule", "constant",
            "--checkpoint", ck, "--out", _tmp.File("m.safetensors"), "--quiet");
        Assert.Equal(0, ok.ExitCode);
        var before = File.ReadAllBytes(ck);
        var r = CliRunner.Run("train", "--data", CliRunner.DataPath("tabular", "iris.csv"), "--epochs", "4", "--batch", "16", "--schedule", "constant",
            "--resume", ck, "--checkpoint", ck, "--lr", "1e30", "--out", _tmp.File("m2.safetensors"), "--quiet");
        Assert.Equal(1, r.ExitCode);
        Assert.Single(r.Stderr.TrimEnd().Split('\n'));
        Assert.Contains("training diverged", r.Stderr);
        Assert.Contains("last good checkpoint", r.Stderr);
        Assert.Equal(before, File.ReadAllBytes(ck));
        Assert.Equal(2, Checkpoint.Load<float>(ck).Epoch);
    }

    [Fact]
    public void ACheckpointFileThisRunHasNotWrittenIsNotCalledTheLastGoodOne()
    {
        // the file at --checkpoint is another run's (or anything): a run that diverges before its first epoch ends has
        // no good checkpoint to point at
        string ck = _tmp.File("keep.ck");
        File.WriteAllText(ck, "not this run's");
        File.SetLastWriteTimeUtc(ck, DateTime.UtcNow.AddHours(-1));
        var r = CliRunner.Run("train", "--data", CliRunner.DataPath("tabular", "iris.csv"), "--epochs", "2", "--batch", "16", "--lr", "1e30",
            "--checkpoint", ck, "--out", _tmp.File("m.safetensors"), "--quiet");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("training diverged", r.Stderr);
        Assert.DoesNotContain("last good checkpoint", r.Stderr);
        Assert.Equal("not this run's", File.ReadAllText(ck));
    }

    [Fact]
    public void A_resumed_run_without_checkpoint_option_names_the_checkpoint_it_resumed_as_the_last_good_one()
    {
        string ck = _tmp.File("ck.safetensors");
        Assert.Equal(0, CliRunner.Run("train", "--data", CliRunner.DataPath("tabular", "iris.csv"), "--epochs", "2", "--batch", "16", "--schedule", "constant",
            "--checkpoint", ck, "--out", _tmp.File("m.safetensors"), "--quiet").ExitCode);
        var before = File.ReadAllBytes(ck);
        var r = CliRunner.Run("train", "--resume", ck, "--epochs", "4", "--lr", "1e30", "--out", _tmp.File("m2.safetensors"), "--quiet");
        Assert.Equal(1, r.ExitCode);
        Assert.Single(r.Stderr.TrimEnd().Split('\n'));
        Assert.Contains($"the last good checkpoint is {ck}", r.Stderr);
        Assert.Equal(before, File.ReadAllBytes(ck));
    }
}

public sealed class BackwardNonFiniteTests
{
    [Fact]
    public void TheOptimizerFlagsTheParameterWhoseGradientIsNotFinite()
    {
        foreach (var name in new[] { "sgd", "adam", "rmsprop" })
            foreach (var (parameter, index, value) in new[] { (2, 17, float.NaN), (3, 4, float.PositiveInfinity), (0, 1199, float.NegativeInfinity) })
            {
                // a fresh network each time: a non-finite update poisons the weights
                var net = Initializers.Mlp<float>([40, 30, 5], "relu", 0);
                var ps = net.Parameters().ToArray();
                var step = new TrainingStep<float>(net, 4);
                step.Load(new float[4 * 40], [0, 1, 2, 3]);
                step.ForwardBackward();
                var opt = Optimizer<float>.Create(name, ps, 0.01);
                opt.Step();
                Assert.Equal(-1, opt.FirstNonFiniteGradient);
                step.ForwardBackward();
                ps[parameter].Grad.Data[index] = value;   // vectorised body (17), scalar tail of a 5-vector (4), last element (1199)
                opt.Step();
                Assert.Equal(parameter, opt.FirstNonFiniteGradient);
            }
    }

    [Fact]
    public void ANonFiniteGradientIsTracedToTheBackwardRuleThatProducedIt()
    {
        var net = Initializers.Mlp<float>([6, 5, 3], "tanh", 0);
        var step = new TrainingStep<float>(net, 2);
        step.Load(new float[12], [0, 2]);
        step.ForwardBackward();
        // as if dx = dz·W of the second layer had overflowed
        step.Trace.H[0].Grad.Data[3] = float.PositiveInfinity;
        var ex = NonFiniteValueException.LocateBackward(step, 1, 0, 7);
        Assert.Contains("step 7", ex.Message);
        Assert.Contains("layers.1 linear (dx = dz·W)", ex.Message);
    }

    [Fact]
    public void ReluBackwardGivesZeroNotNaNForAnInfiniteGradientOfADeadUnit()
    {
        var dz = new float[20];
        var z = Enumerable.Repeat(-1f, 20).ToArray();
        var dy = Enumerable.Repeat(float.PositiveInfinity, 20).ToArray();
        Backprop.Kernels.ActivationKernels.ReluBackward<float>(z, dy, dz, 0f);
        Assert.All(dz, v => Assert.Equal(0f, v));
    }
}

public sealed class ResumeConsistencyTests : IDisposable
{
    private readonly TempDir _tmp = new();
    public void Dispose() => _tmp.Dispose();

    [Theory]
    [InlineData("--seed", "2", "--seed 0")]
    [InlineData("--batch", "7", "--batch 16")]
    public void ResumingWithAnotherSeedOrBatchIsRefused(string option, string value, string expected)
    {
        string ck = _tmp.File("ck.safetensors");
        Assert.Equal(0, CliRunner.Run("train", "--data", CliRunner.DataPath("tabular", "iris.csv"), "--epochs", "1", "--batch", "16",
            "--checkpoint", ck, "--out", _tmp.File("m.safetensors"), "--quiet").ExitCode);
        var args = new List<string> { "train", "--data", CliRunner.DataPath("tabular", "iris.csv"), "--epochs", "2", "--batch", "16",
            "--resume", ck, "--out", _tmp.File("m2.safetensors"), "--quiet" };
        int i = args.IndexOf(option);
        if (i >= 0) args[i + 1] = value; else args.AddRange([option, value]);
        var r = CliRunner.Run(args.ToArray());
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(expected, r.Stderr);
    }
}
