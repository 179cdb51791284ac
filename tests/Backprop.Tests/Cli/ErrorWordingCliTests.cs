using Backprop.Tests.Training;

namespace Backprop.Tests.Cli;

/// <summary>Errors are worded in the command's flags, never in .NET's ("(Parameter 'threads')", "System.Nullable`1[System.Int32]").</summary>
public sealed class ErrorWordingCliTests : IDisposable
{
    private readonly TempDir _tmp = new();
    public void Dispose() => _tmp.Dispose();

    private static string Iris => CliRunner.DataPath("tabular", "iris.csv");

    private static void NoDotNetWording(CliRunner.Result r)
    {
        Assert.DoesNotContain("(Parameter", r.Stderr);
        Assert.DoesNotContain("Actual value", r.Stderr);
        Assert.DoesNotContain("System.", r.Stderr);
    }

    private string TrainIris(string name, params string[] options)
    {
        string model = _tmp.File(name + ".safetensors");
        var r = CliRunner.Run(["train", "--data", Iris, "--epochs", "1", "--out", model, "--quiet", .. options]);
        Assert.True(r.ExitCode == 0, r.Stderr);
        return model;
    }

    [Theory]
    [InlineData("bench infer --layers 4,3 --threads 100000")]
    [InlineData("bench train --layers 4,3 --steps 1 --threads 100000")]
    [InlineData("bench gemm --m 2 --n 2 --k 2 --threads 100000")]
    [InlineData("bench peak --threads 100000")]
    public void Too_many_threads_is_said_in_the_flag(string args)
    {
        var r = CliRunner.Run(args.Split(' '));
        TrainingAssert.UsageError(r, "--threads 100000: at most ");
        NoDotNetWording(r);
    }

    [Theory]
    [InlineData("train --epochs 1e3", "--epochs 1e3: not a whole number from -2147483648 to 2147483647")]
    [InlineData("train --epochs 99999999999", "--epochs 99999999999: not a whole number")]
    [InlineData("train --lr abc", "--lr abc: not a number")]
    [InlineData("train --lr 0,5", "--lr 0,5: not a number (decimals take a point: 0.5)")]   // was the learning rate 5
    [InlineData("train --clip 1,000", "--clip 1,000: not a number")]                           // was 1000
    [InlineData("bench gemm --m x", "--m x: not a whole number")]
    [InlineData("train --dtype float16", "--dtype float16: expected float32 or float64")]
    [InlineData("bench infer --model m --dtype float16", "--dtype float16: expected float32 or float64")]
    [InlineData("explain --format pdf", "--format pdf: expected text, markdown, latex or html")]
    [InlineData("train --schedule never", "--schedule never: expected ")]
    [InlineData("frobnicate", "there is no command frobnicate (backprop --help lists the commands)")]   // was "Required command was not provided."
    [InlineData("train extra", "train: unexpected argument extra (backprop train --help lists what it takes)")]   // was "Unrecognized command or argument 'extra'."
    [InlineData("grad", "grad needs its PROBLEM argument (backprop grad --help says what it is)")]   // was "Required argument 'PROBLEM' missing for command: 'grad'."
    [InlineData("predict", "predict needs --model (backprop predict --help lists its options)")]   // was "Option '--model' is required."
    [InlineData("bench frob", "there is no command bench frob (backprop bench --help lists the commands)")]
    public void A_value_of_the_wrong_kind_is_said_in_the_flag(string args, string expected)
    {
        var r = CliRunner.Run(args.Split(' '));
        TrainingAssert.UsageError(r, expected);
        NoDotNetWording(r);
    }

    [Fact]
    public void A_limit_past_int_is_said_in_the_flag()
    {
        var r = CliRunner.Run("predict", "--model", TrainIris("limit"), "--data", Iris, "--limit", "99999999999");
        TrainingAssert.UsageError(r, "--limit 99999999999");
        NoDotNetWording(r);
    }

    [Fact]
    public void An_empty_onnx_path_is_said_in_the_flag()
    {
        var r = CliRunner.Run("export", "--model", TrainIris("empty"), "--onnx", "");
        TrainingAssert.UsageError(r, "--onnx");
        NoDotNetWording(r);
    }

    [Fact]
    public void A_layer_norm_at_an_old_opset_suggests_the_opset_that_has_it()
    {
        string onnx = _tmp.File("ln.onnx");
        var r = CliRunner.Run("export", "--model", TrainIris("ln", "--arch", "4-8:ln:relu-3"), "--onnx", onnx, "--opset", "13");
        TrainingAssert.UsageError(r, "--opset 17");
        Assert.False(File.Exists(onnx), "a refused export wrote a file");
    }
}
