using Backprop.Data;
using Backprop.Kernels;
using Backprop.Nn;
using Backprop.Tests.Cli;
using Backprop.Tests.Performance;
using Backprop.Training;

namespace Backprop.Tests.Training;

/// <summary>Training networks with dropout and norm layers: modes, determinism, resume, allocation, and bad input.</summary>
public class LayerTrainingTests
{
    private static string Iris => CliRunner.DataPath("tabular", "iris.csv");
    private const string Arch = "4-16:bn:relu:drop0.3-16:ln:tanh:drop0.2-3";

    private static CliRunner.Result Train(params string[] extra)
    {
        if (!extra.Contains("--seed")) extra = [.. extra, "--seed", "3"];
        var r = CliRunner.Run(["train", "--data", Iris, "--batch", "16", "--lr", "0.01", "--threads", "1", "--quiet", "--json", .. extra]);
        Assert.True(r.ExitCode == 0, $"train {string.Join(' ', extra)}: {r.Stderr}");
        return r;
    }

    [Fact]
    public void ARunWithDropoutAndNormLayersIsTheSameForASeed()
    {
        using var tmp = new TempDir();
        Train("--arch", Arch, "--epochs", "3", "--out", tmp.File("a.safetensors"));
        Train("--arch", Arch, "--epochs", "3", "--out", tmp.File("b.safetensors"));
        Train("--arch", Arch, "--epochs", "3", "--seed", "4", "--out", tmp.File("c.safetensors"));
        var a = ModelFile.Load<float>(tmp.File("a.safetensors")).Network;
        TrainingAssert.BitIdentical(a, ModelFile.Load<float>(tmp.File("b.safetensors")).Network);
        Assert.False(TrainingAssert.SameBits(a, ModelFile.Load<float>(tmp.File("c.safetensors")).Network));
        Assert.Equal(Arch, ArchitectureSpec.Of(a).ToString());
        // the running statistics moved from their start (mean 0, variance 1) and were saved
        var bn = (BatchNormLayer<float>)a.Layers[1];
        Assert.Contains(bn.Statistics.RunningMean.Span.ToArray(), v => v != 0);
    }

    [Fact]
    public void DropoutDrawsDependOnTheSeedAndContinueAcrossAResume()
    {
        using var tmp = new TempDir();
        // three epochs straight, and one epoch then a resume to three: the same masks, so the same weights
        Train("--arch", Arch, "--schedule", "constant", "--epochs", "3", "--out", tmp.File("a.safetensors"));
        Train("--arch", Arch, "--schedule", "constant", "--epochs", "1", "--checkpoint", tmp.File("b.ck"), "--out", tmp.File("b1.safetensors"));
        Train("--arch", Arch, "--schedule", "constant", "--epochs", "3", "--resume", tmp.File("b.ck"), "--out", tmp.File("b.safetensors"));
        TrainingAssert.BitIdentical(ModelFile.Load<float>(tmp.File("a.safetensors")).Network, ModelFile.Load<float>(tmp.File("b.safetensors")).Network);

        // the flags form resumes as well, and a different network is refused with the setting named
        Train("--layers", "4,8,3", "--dropout", "0.25", "--norm", "layernorm", "--schedule", "constant", "--epochs", "1",
            "--checkpoint", tmp.File("c.ck"), "--out", tmp.File("c1.safetensors"));
        Train("--resume", tmp.File("c.ck"), "--epochs", "2", "--out", tmp.File("c2.safetensors"));
        var other = CliRunner.Run("train", "--data", Iris, "--resume", tmp.File("c.ck"), "--dropout", "0.5", "--epochs", "2", "--out", tmp.File("c3.safetensors"));
        Assert.Equal(2, other.ExitCode);
        Assert.Contains("--dropout", other.Stderr);
    }

    [Fact]
    public void EvaluationSeesDropoutOffAndRunningStatistics()
    {
        var net = Initializers.Network<double>(ArchitectureSpec.Parse("4-8:bn:relu:drop0.5-3"), seed: 1);
        var data = new LabeledData(Enumerable.Range(0, 40).Select(i => (float)Math.Sin(i)).ToArray(), Enumerable.Range(0, 10).Select(i => i % 3).ToArray(), 4);
        var (loss1, _) = Trainer<double>.Evaluate(net, data, batchSize: 4);
        var (loss2, _) = Trainer<double>.Evaluate(net, data, batchSize: 3);
        // no random mask and no batch statistics: the same loss whatever the batching
        Assert.Equal(loss1, loss2, 12);
        Assert.All(net.Layers, l => Assert.False(l.Training));
        var bn = (BatchNormLayer<double>)net.Layers[1];
        Assert.All(bn.Statistics.RunningMean.Span.ToArray(), v => Assert.Equal(0, v));   // evaluation leaves them alone
        var p1 = Trainer<double>.Predict(net, data);
        var rows = Enumerable.Range(0, 10).Select(r => data.Features.AsSpan(r * 4, 4).ToArray().Select(v => (double)v).ToArray()).ToArray();
        var p2 = net.Predict(Backprop.Core.Tensor<double>.FromRows(rows));
        for (int i = 0; i < p1.Length; i++) Assert.Equal(p1.Span[i], p2.Span[i], 12);
    }

    [Theory]
    [InlineData("784-64:ln:relu:drop0.2-10", 32, 1)]
    [InlineData("784-64:bn:relu:drop0.5-64:ln-10", 16, 2)]
    [InlineData("20:drop0.1-16:bn:tanh-5", 7, 1)]
    public void ATrainingStepWithNormAndDropoutLayersAllocatesZeroBytes(string arch, int batch, int threads)
    {
        using var context = new ComputeContext(threads);
        var net = Initializers.Network<float>(ArchitectureSpec.Parse(arch), seed: 0);
        net.SetTraining(true);
        var step = new TrainingStep<float>(net, batch, context);
        var opt = Optimizer<float>.Create("adam", net.Parameters().ToArray(), 0.001, context: context);
        var rng = new Random(3);
        var x = Enumerable.Range(0, batch * net.Inputs).Select(_ => (float)rng.NextDouble()).ToArray();
        var y = Enumerable.Range(0, batch).Select(_ => rng.Next(net.Outputs)).ToArray();
        for (int i = 0; i < 30; i++) { step.Load(x, y); step.ForwardBackward(); opt.Step(); }
        Assert.Equal(0, SteadyState.AllocatedBytes(() => { step.Load(x, y); step.ForwardBackward(); opt.Step(); }, context, 50));
        Assert.True(float.IsFinite(step.Loss.Value[0]));
    }

    [Fact]
    public void BenchTrainTakesAnArchAndReportsZeroAllocations()
    {
        var r = CliRunner.Run("bench", "train", "--arch", "64-32:ln:relu:drop0.2-32:bn:relu-10", "--batch", "16", "--steps", "20", "--threads", "1", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Equal(0, r.Json.GetProperty("allocated_bytes_per_step").GetDouble());
        Assert.True(r.Json.GetProperty("samples_per_s").GetDouble() > 0);
        var bad = CliRunner.Run("bench", "train", "--arch", "64-32:nope-10");
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("unknown token 'nope'", bad.Stderr);
    }

    [Theory]
    [InlineData(new[] { "--dropout", "1" }, "--dropout 1: must be in [0, 1)")]
    [InlineData(new[] { "--dropout", "-0.1" }, "--dropout -0.1: must be in [0, 1)")]
    [InlineData(new[] { "--norm", "groupnorm" }, "groupnorm")]
    [InlineData(new[] { "--arch", "4-8:relu:fancy-3" }, "unknown token 'fancy' in '8:relu:fancy'")]
    [InlineData(new[] { "--arch", "4-8:relu:drop2-3" }, "must be in [0, 1)")]
    [InlineData(new[] { "--arch", "5-8:relu-3" }, "--arch 5-8:relu-3: starts with 5 but")]
    [InlineData(new[] { "--arch", "4-8:relu-2" }, "ends with 2 but")]
    [InlineData(new[] { "--arch", "4-8:relu-3", "--layers", "4,8,3" }, "--arch")]
    [InlineData(new[] { "--norm", "batchnorm", "--batch", "1" }, "--batch 1: batchnorm in training mode needs batches of at least 2")]
    [InlineData(new[] { "--norm", "batchnorm", "--batch", "5" }, "leave a last batch of 1 sample")]
    // cross-entropy applies the softmax itself: a softmax output layer would be applied twice
    [InlineData(new[] { "--arch", "4-3:softmax" }, "--arch 4-3:softmax: ends in softmax, which cross_entropy applies to the outputs itself")]
    [InlineData(new[] { "--out", "DIR" }, "is a directory; name a file in it")]
    [InlineData(new[] { "--plots", "FILE/plots" }, "cannot make the directory")]
    public void BadLayerOptionsAreOneLineAndLeaveTheModelFileAlone(string[] options, string fragment)
    {
        using var tmp = new TempDir();
        var model = tmp.File("model.safetensors");
        File.WriteAllText(model, "an existing model");
        File.WriteAllText(tmp.File("FILE"), "a file, not a directory");
        options = [.. options.Select(o => o == "DIR" ? tmp.Path : o.StartsWith("FILE", StringComparison.Ordinal) ? tmp.File(o) : o)];
        string[] output = options.Contains("--out") ? [] : ["--out", model];
        var r = CliRunner.Run(["train", "--data", Iris, "--epochs", "1", .. output, .. options]);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(fragment, r.Stderr);
        Assert.Single(r.Stderr.Trim().Split('\n'));
        Assert.Equal("an existing model", File.ReadAllText(model));
    }
}
