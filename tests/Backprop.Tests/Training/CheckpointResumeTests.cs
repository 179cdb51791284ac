using Backprop.Data;
using Backprop.IO;
using Backprop.Tests.Cli;
using Backprop.Training;

namespace Backprop.Tests.Training;

public class CheckpointResumeTests
{
    private static string Iris => CliRunner.DataPath("tabular", "iris.csv");

    private static CliRunner.Result Train(string optimizer, params string[] extra)
    {
        var r = CliRunner.Run(["train", "--data", Iris, "--seed", "5", "--batch", "16", "--lr", "0.01", "--optimizer", optimizer,
            "--quiet", "--json", .. extra]);
        Assert.True(r.ExitCode == 0, $"train {string.Join(' ', extra)}: {r.Stderr}");
        return r;
    }

    /// <summary>Every tensor (weights and optimizer state) of two safetensors files, bit for bit.</summary>
    private static void SameTensors(string a, string b)
    {
        var fa = SafeTensorsFile.Read(a);
        var fb = SafeTensorsFile.Read(b);
        Assert.Equal(fa.Names.Order(), fb.Names.Order());
        foreach (var name in fa.Names)
        {
            var ta = fa.GetTensor<double>(name);
            var tb = fb.GetTensor<double>(name);
            Assert.True(ta.SameShape(tb), name);
            for (int i = 0; i < ta.Length; i++)
                Assert.True(BitConverter.DoubleToInt64Bits(ta.Data[i]) == BitConverter.DoubleToInt64Bits(tb.Data[i]), $"{name}[{i}]: {ta.Data[i]:R} vs {tb.Data[i]:R}");
        }
    }

    [Theory]
    [InlineData("adam")]
    [InlineData("adamw")]
    [InlineData("sgd")]
    [InlineData("rmsprop")]
    public void Resuming_a_checkpoint_continues_exactly_like_an_uninterrupted_run(string optimizer)
    {
        using var tmp = new TempDir();
        // The runs below stop early by asking for fewer epochs; a cosine schedule spans --epochs, so these runs use a
        // constant rate to keep the step sizes of the interrupted and uninterrupted runs equal.
        // A: three epochs straight
        var a = Train(optimizer, "--schedule", "constant", "--epochs", "3", "--checkpoint", tmp.File("a.ck"), "--out", tmp.File("a.safetensors"));
        // B: two epochs, then resume to three
        Train(optimizer, "--schedule", "constant", "--epochs", "2", "--checkpoint", tmp.File("b.ck"), "--out", tmp.File("b2.safetensors"));
        Assert.Equal(2, Checkpoint.Load<float>(tmp.File("b.ck")).Epoch);
        var b = Train(optimizer, "--schedule", "constant", "--epochs", "3", "--resume", tmp.File("b.ck"), "--checkpoint", tmp.File("b3.ck"), "--out", tmp.File("b.safetensors"));
        // C: one epoch, then resume to three
        Train(optimizer, "--schedule", "constant", "--epochs", "1", "--checkpoint", tmp.File("c.ck"), "--out", tmp.File("c1.safetensors"));
        Train(optimizer, "--schedule", "constant", "--epochs", "3", "--resume", tmp.File("c.ck"), "--checkpoint", tmp.File("c3.ck"), "--out", tmp.File("c.safetensors"));

        var ma = ModelFile.Load<float>(tmp.File("a.safetensors"));
        TrainingAssert.BitIdentical(ma.Network, ModelFile.Load<float>(tmp.File("b.safetensors")).Network);
        TrainingAssert.BitIdentical(ma.Network, ModelFile.Load<float>(tmp.File("c.safetensors")).Network);
        // the optimizer state matches too, so further epochs would as well
        SameTensors(tmp.File("a.ck"), tmp.File("b3.ck"));
        SameTensors(tmp.File("a.ck"), tmp.File("c3.ck"));
        Assert.Equal(a.Json.GetProperty("test_accuracy").GetDouble(), b.Json.GetProperty("test_accuracy").GetDouble());
        Assert.Equal(3, b.Json.GetProperty("epochs").GetInt32());
        // the uninterrupted run did change the weights after epoch 2
        Assert.False(TrainingAssert.SameBits(ma.Network, ModelFile.Load<float>(tmp.File("b2.safetensors")).Network));
    }

    [Fact]
    public void A_checkpoint_records_progress_optimizer_state_and_loads_as_a_model()
    {
        using var tmp = new TempDir();
        string ck = tmp.File("ck.safetensors");
        Train("adam", "--epochs", "2", "--checkpoint", ck, "--out", tmp.File("m.safetensors"));
        var c = Checkpoint.Load<float>(ck);
        Assert.Equal(2, c.Epoch);
        Assert.Equal("adam", c.Optimizer);
        Assert.Equal(2, c.History.Count);
        Assert.Equal([1, 2], c.History.Select(h => h.Epoch).ToArray());
        // iris: 3 classes of 50 rows, each split 10 test, 8 validation (7.5 rounded away from zero), 32 train:
        // 96 training rows → 6 batches of 16 per epoch
        Assert.Equal(96, DataLoading.Prepare(Iris, null, seed: 5).Train.Count);
        Assert.Equal(2 * 6, c.Step);
        var names = SafeTensorsFile.Read(ck).Names;
        Assert.Contains("optimizer.m.0", names);
        Assert.Contains("optimizer.v.3", names);
        Assert.Contains("layers.1.bias", names);
        // the final model and the last checkpoint hold the same network
        TrainingAssert.BitIdentical(ModelFile.Load<float>(tmp.File("m.safetensors")).Network, c.Model.Network);
        Assert.Equal(0, CliRunner.Run("evaluate", "--model", ck, "--data", Iris, "--json").ExitCode);
    }

    [Fact]
    public void A_sgd_checkpoint_cannot_be_resumed_with_adam()
    {
        using var tmp = new TempDir();
        string ck = tmp.File("sgd.ck");
        Train("sgd", "--epochs", "1", "--checkpoint", ck, "--out", tmp.File("m.safetensors"));
        var r = CliRunner.Run("train", "--data", Iris, "--optimizer", "adam", "--resume", ck, "--epochs", "2", "--out", tmp.File("x.safetensors"), "--quiet");
        TrainingAssert.UsageError(r, "sgd");
        Assert.False(File.Exists(tmp.File("x.safetensors")));
    }

    [Fact]
    public void Resume_rejects_a_plain_model_other_layers_and_a_missing_file()
    {
        using var tmp = new TempDir();
        string ck = tmp.File("ck.safetensors");
        Train("adam", "--epochs", "1", "--checkpoint", ck, "--out", tmp.File("m.safetensors"));
        TrainingAssert.UsageError(CliRunner.Run("train", "--data", Iris, "--resume", tmp.File("m.safetensors"), "--out", tmp.File("x"), "--quiet"), "checkpoint");
        TrainingAssert.UsageError(CliRunner.Run("train", "--data", Iris, "--resume", ck, "--layers", "4,32,3", "--out", tmp.File("x"), "--quiet"), "layers");
        TrainingAssert.UsageError(CliRunner.Run("train", "--data", Iris, "--resume", tmp.File("nope.ck"), "--out", tmp.File("x"), "--quiet"));
        Assert.False(File.Exists(tmp.File("x")));
    }
    [Fact]
    public void Resume_refuses_other_data_of_the_same_shape()
    {
        using var tmp = new TempDir();
        string ck = tmp.File("ck.safetensors");
        Train("adam", "--epochs", "1", "--checkpoint", ck, "--out", tmp.File("m.safetensors"));
        Assert.Matches("^[0-9a-f]{16}$", Checkpoint.Load<float>(ck).Data);
        // The same file with one measurement changed: same rows, columns and labels.
        var lines = File.ReadAllLines(Iris);
        var cells = lines[7].Split(',');
        cells[0] = (double.Parse(cells[0], System.Globalization.CultureInfo.InvariantCulture) + 0.1).ToString(System.Globalization.CultureInfo.InvariantCulture);
        lines[7] = string.Join(',', cells);
        string other = tmp.File("iris-edited.csv");
        File.WriteAllLines(other, lines);
        var r = CliRunner.Run("train", "--data", other, "--seed", "5", "--batch", "16", "--optimizer", "adam", "--epochs", "1",
            "--resume", ck, "--out", tmp.File("x.safetensors"), "--quiet");
        TrainingAssert.UsageError(r, "other data");
        Assert.False(File.Exists(tmp.File("x.safetensors")));
    }

    [Fact]
    public void Resume_under_a_cosine_schedule_needs_the_same_epochs()
    {
        using var tmp = new TempDir();
        string ck = tmp.File("ck.safetensors");
        Train("adam", "--epochs", "2", "--checkpoint", ck, "--out", tmp.File("m.safetensors"));   // cosine is the default
        var r = CliRunner.Run("train", "--data", Iris, "--seed", "5", "--batch", "16", "--optimizer", "adam", "--epochs", "4",
            "--resume", ck, "--out", tmp.File("x.safetensors"), "--quiet");
        TrainingAssert.UsageError(r, "--epochs 2");
        // with the same --epochs it resumes (and has nothing left to do)
        Train("adam", "--epochs", "2", "--resume", ck, "--out", tmp.File("y.safetensors"));
    }
}
