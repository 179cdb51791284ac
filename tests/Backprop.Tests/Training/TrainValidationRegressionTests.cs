using Backprop.Tests.Cli;

namespace Backprop.Tests.Training;

/// <summary>
/// Regression tests for two faults found in review: an empty test split reported as 0% accuracy, and
/// negative hyperparameters accepted silently.
/// </summary>
public sealed class TrainValidationRegressionTests : IDisposable
{
    private readonly TempDir _tmp = new();
    public void Dispose() => _tmp.Dispose();

    private const string EmptyTestSplit =
        "train reports test_accuracy 0 and test_loss 0 when the held-out test split is empty (Trainer.Evaluate divides by Math.Max(1, Count)); " +
        "it should refuse the data set or report no test result";

    [Fact]
    public void A_csv_too_small_for_a_test_split_is_not_reported_as_zero_accuracy()
    {
        File.WriteAllText(_tmp.File("two.csv"), "a,b,label\n1,2,x\n3,4,y\n");
        var r = CliRunner.Run("train", "--data", _tmp.File("two.csv"), "--out", _tmp.File("m.safetensors"), "--quiet", "--json");
        if (r.ExitCode == 0)
            Assert.NotEqual(System.Text.Json.JsonValueKind.Number, r.Json.GetProperty("test_accuracy").ValueKind);
        else
            TrainingAssert.UsageError(r);
    }

    private const string Unvalidated =
        "train accepts negative --momentum, --weight-decay and --warmup (torch.optim raises ValueError for negative momentum and weight decay)";

    [Theory]
    [InlineData("--optimizer sgd --momentum -0.5")]
    [InlineData("--weight-decay -0.1")]
    [InlineData("--warmup -5")]
    public void Negative_hyperparameters_are_rejected(string options) =>
        TrainingAssert.UsageError(CliRunner.Run(["train", "--data", CliRunner.DataPath("tabular", "iris.csv"), "--epochs", "1",
            "--out", _tmp.File("m.safetensors"), "--quiet", .. options.Split(' ')]));
}
