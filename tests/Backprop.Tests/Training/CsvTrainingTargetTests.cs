using Backprop.Tests.Cli;

namespace Backprop.Tests.Training;

/// <summary>
/// End-to-end training through the CLI on the tabular data sets. The test split is 20 % of the rows, held out
/// and stratified by class; the targets are on its accuracy. Hyperparameters: Adam, one hidden ReLU layer.
/// </summary>
public class CsvTrainingTargetTests
{
    [Theory]
    // file, extra arguments, target test accuracy
    [InlineData("iris.csv", "--epochs 50 --lr 0.01 --batch 16", 0.95)]
    [InlineData("wine.csv", "--epochs 30 --lr 0.01 --batch 16", 0.95)]
    [InlineData("breast_cancer.csv", "--epochs 30 --lr 0.003 --batch 32", 0.95)]
    [InlineData("digits.csv.gz", "--epochs 30 --lr 0.003 --batch 32 --layers 64,128,10", 0.96)]
    public void Reaches_the_target_test_accuracy(string file, string extra, double target)
    {
        using var tmp = new TempDir();
        string model = tmp.File("model.safetensors");
        var r = CliRunner.Run(["train", "--data", CliRunner.DataPath("tabular", file), "--seed", "0", "--json", "--quiet",
            "--out", model, .. extra.Split(' ')]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal("", r.Stderr);
        // --quiet --json: the JSON object is the only output
        Assert.Single(r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        var json = r.Json;
        double acc = json.GetProperty("test_accuracy").GetDouble();
        Assert.True(acc >= target, $"{file}: test accuracy {acc:F4} < {target}");
        Assert.True(json.GetProperty("test_loss").GetDouble() is > 0 and < 0.5);
        Assert.Equal(int.Parse(extra.Split(' ')[1]), json.GetProperty("epochs").GetInt32());
        Assert.True(File.Exists(model));
    }
}
