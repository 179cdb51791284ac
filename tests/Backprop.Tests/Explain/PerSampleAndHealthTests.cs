using Backprop.Explain;
using Backprop.Health;
using Backprop.Nn;
using Backprop.Problems;
using Backprop.Tests.Cli;

namespace Backprop.Tests.Explain;

public class PerSampleAndHealthTests
{
    private static ProblemSpec Spec(string name) => ProblemFile.Load(CliRunner.DataPath("problems", name));

    [Theory]
    [InlineData("seed-fc-relu-batch-mean.json", 0)]
    [InlineData("seed-fc-relu-batch-mean.json", 1)]
    [InlineData("seed-sigmoid-chain-jacobian.json", 2)]
    public void PerSampleGradients_SumToTheBatchGradient_AndEqualSingleSampleProblems(string file, int layer)
    {
        var spec = Spec(file);
        var p = new Problem<double>(spec);
        var g = PerSampleGradients.ForLayer(p, layer);
        var batchW = p.Network.Layers[layer].Parameter("weight")!.Grad.Clone();
        var batchB = p.Network.Layers[layer].Parameter("bias")?.Grad.Clone();
        int n = spec.BatchSize, size = batchW.Length, outs = batchW.Dim(0);
        Assert.Equal(spec.Loss == LossKind.None || spec.Reduction == Reduction.Sum ? 1.0 : 1.0 / n, g.BatchFactor);
        for (int k = 0; k < size; k++)
        {
            double sum = Enumerable.Range(0, n).Sum(i => g.Weight!.Data[i * size + k]);
            Assert.Equal(batchW.Data[k], g.BatchFactor * sum, 12);
        }
        if (batchB is not null)
            for (int o = 0; o < outs; o++)
                Assert.Equal(batchB.Data[o], g.BatchFactor * Enumerable.Range(0, n).Sum(i => g.Bias!.Data[i * outs + o]), 12);

        // sample i's gradient is the gradient of the same problem on a batch holding only sample i
        for (int i = 0; i < n; i++)
        {
            var single = new Problem<double>(spec with
            {
                Input = [spec.Input[i]],
                Target = spec.Target is null ? null : [spec.Target[i]],
                ClassTargets = spec.ClassTargets is null ? null : [spec.ClassTargets[i]],
            });
            var w = single.Gradients().LayerGradients[layer].Single(q => q.Name == "weight").Gradient;
            for (int k = 0; k < size; k++) Assert.Equal(w.Data[k], g.Weight!.Data[i * size + k], 12);
        }
    }

    [Fact]
    public void PerSample_Cli_Json()
    {
        var r = CliRunner.Run("explain", CliRunner.DataPath("problems", "seed-fc-relu-batch-mean.json"), "--per-sample", "--wrt", "layers.0.weight", "--json");
        Assert.Equal(0, r.ExitCode);
        Assert.Equal(8, r.Json.GetProperty("weight").GetArrayLength());
        Assert.Equal(0.125, r.Json.GetProperty("batch_factor").GetDouble());
    }

    [Fact]
    public void Diagnose_DeepSigmoid_IsVanishing()
    {
        var report = new Problem<double>(Spec("seed-sigmoid-small-weights-vanishing.json")).Diagnose();
        Assert.True(report.Vanishing);
        Assert.False(report.Healthy);
        Assert.Contains("vanishing gradients", report.Verdict);
        Assert.Contains("from layer 9 to layer 1", report.Verdict);
        Assert.Equal(9, report.Layers.Count);
        var r = CliRunner.Run("diagnose", CliRunner.DataPath("problems", "seed-sigmoid-small-weights-vanishing.json"));
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("vanishing", r.Stdout);
    }

    [Fact]
    public void Diagnose_ShallowRelu_IsHealthy_AndCountsDeadAndSaturatedUnits()
    {
        var report = new Problem<double>(Spec("seed-fc-relu-batch-mean.json")).Diagnose();
        Assert.True(report.Healthy);
        Assert.Contains("healthy", report.Verdict);
        var r = CliRunner.Run("diagnose", CliRunner.DataPath("problems", "seed-fc-relu-batch-mean.json"), "--json");
        Assert.True(r.Json.GetProperty("healthy").GetBoolean());

        var z = Tensor<double>.FromRows([[-1.0, 2.0, -3.0, 0.0], [-1.0, -2.0, -3.0, 0.0]]);
        Assert.Equal(0.75, GradientHealth.DeadFraction(z));
        var sig = new Sigmoid<double>();
        var zs = Tensor<double>.FromRows([[0.0, 10.0, -10.0, 1.0]]);
        var hs = new Tensor<double>(1, 4);
        sig.Forward(zs.Data, hs.Data, 4);
        Assert.Equal(0.5, GradientHealth.SaturatedFraction(sig, zs, hs));

        var saturated = new Problem<double>(ProblemFile.Parse("""
            {"layers": [{"weight": [[20, 20], [-20, 15]], "activation": "sigmoid"}, {"weight": [[1, 1]], "activation": "identity"}],
             "input": [[1, 1]], "loss": "none"}
            """));
        var s = saturated.Diagnose();
        Assert.Contains("of layer-1 sigmoid units are saturated", s.Verdict);
    }

    [Fact]
    public void Dot_WritesTheGraphAtomically()
    {
        var path = Path.Combine(Path.GetTempPath(), $"explain-{Guid.NewGuid():N}.dot");
        try
        {
            var r = CliRunner.Run("explain", CliRunner.DataPath("problems", "seed-fc-relu-batch-mean.json"), "--dot", path);
            Assert.Equal(0, r.ExitCode);
            var dot = File.ReadAllText(path);
            Assert.StartsWith("digraph", dot);
            Assert.Contains("layers.0.weight (leaf)", dot);
            Assert.Contains("z = x·Wᵀ + b", dot);
            Assert.Contains("‖grad‖ =", dot);
            Assert.Contains("->", dot);
            Assert.Contains("mse", dot);
        }
        finally { File.Delete(path); }
    }
}
