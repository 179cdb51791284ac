using Backprop.Explain;
using Backprop.Health;
using Backprop.Nn;
using Backprop.Problems;
using Backprop.Tests.Cli;

namespace Backprop.Tests.Explain;

/// <summary>
/// explain, per-sample gradients and diagnose on networks with layer norm, batch norm (training and eval) and dropout:
/// every new op's backward step is recomputed in float64 by its printed rule and agrees with the tape and with finite
/// differences; batch norm in training is said to couple the batch, and per-sample gradients refuse it.
/// </summary>
public class LayerExplainTests
{
    private static string LayerFile(string name) => CliRunner.DataPath("problems-layers", name);
    private static ProblemSpec Spec(string name) => ProblemFile.Load(LayerFile(name));

    public static TheoryData<string, string> EveryGradientOfEveryLayerProblem()
    {
        var data = new TheoryData<string, string>();
        foreach (var f in Directory.GetFiles(CliRunner.DataPath("problems-layers"), "*.json").Order())
        {
            var name = Path.GetFileName(f);
            data.Add(name, "input");
            var p = new Problem<double>(ProblemFile.Load(f));
            for (int i = 0; i < p.Network.Layers.Count; i++)
                foreach (var param in p.Network.Layers[i].Parameters) data.Add(name, $"layers.{i}.{param.Name}");
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(EveryGradientOfEveryLayerProblem))]
    public void EveryStepIsRecomputedByItsRule_AndAgreesWithTheTapeAndFiniteDifferences(string file, string wrt)
    {
        foreach (var notation in new[] { Notation.Columns, Notation.Rows })
        {
            var p = new Problem<double>(Spec(file));
            var d = Explainer.Explain(p, wrt, notation);
            Assert.True(d.FiniteDifference!.Passed, $"{file} {wrt}: {DerivationRenderer.FiniteDifferenceLine(d.FiniteDifference)}");
            Assert.True(d.MaxTapeDeviation < 1e-9, $"{file} {wrt} {notation}: max tape deviation {d.MaxTapeDeviation}");
            // no step of a new layer is left to the tape's numbers: each is recomputed
            Assert.DoesNotContain(d.Backward, s => s.Note?.Contains("the numbers are the tape's", StringComparison.Ordinal) == true);
            Assert.Equal(p.Resolve(wrt).Grad.ToDoubleArray(), d.Result.Value.Data.ToArray(), (a, b) => Math.Abs(a - b) <= 1e-12 * (1 + Math.Abs(b)));
            foreach (var format in new[] { DerivationFormat.Text, DerivationFormat.Markdown, DerivationFormat.Latex })
            {
                var text = DerivationRenderer.Render(d, format);
                Assert.Contains(format == DerivationFormat.Text ? d.Result.Name : "\\partial", text);
                if (format == DerivationFormat.Latex) Assert.DoesNotContain('\u0302', text); // x̂ is \hat{x}
            }
        }
        // float32: the float64 recomputation from float32 values agrees to single precision, except where a training
        // batch norm makes gradients cancel to float32 rounding noise (a bias before it, a batch of 2), which finite
        // differences still check
        var p32 = new Problem<float>(Spec(file));
        var d32 = Explainer.Explain(p32, wrt);
        Assert.True(d32.FiniteDifference!.Passed, $"{file} {wrt} float32: {DerivationRenderer.FiniteDifferenceLine(d32.FiniteDifference)}");
        if (!p32.Tape.Nodes.Any(v => v.Op is IBatchCoupling { CouplesBatch: true }))
            Assert.True(d32.MaxTapeDeviation < 1e-4, $"{file} {wrt} float32: max tape deviation {d32.MaxTapeDeviation}");
    }

    [Fact]
    public void LayerNorm_PrintsTheFullRuleThroughTheMeanAndTheVariance_WithItsNumbers()
    {
        var p = new Problem<double>(Spec("ln-relu-mse-sum-003.json"));   // dense, layernorm (relu), dense
        var d = Explainer.Explain(p, "input");
        var step = Assert.Single(d.Backward, s => s.Name == "∂L/∂h₁");
        Assert.Equal("∂L/∂h₁ = (1/σ̂₂)·(dx̂₂ − mean_f(dx̂₂) − x̂₂ ⊙ mean_f(dx̂₂ ⊙ x̂₂)), dx̂₂ = δ₂ ⊙ γ₂", step.Formula[..step.Formula.IndexOf("   (", StringComparison.Ordinal)]);
        Assert.Contains("through μ₂", step.Formula);
        Assert.Contains("through σ₂²", step.Formula);
        Assert.Equal(["μ₂", "σ̂₂", "x̂₂", "dx̂₂"], step.Factors.Select(f => f.Symbol));
        // the printed numbers: x̂ has mean 0 and (biased) variance σ²/(σ² + ε) in each row; σ̂ is one value per row
        var xhat = step.Factors.Single(f => f.Symbol == "x̂₂").Value;
        var sigmaHat = step.Factors.Single(f => f.Symbol == "σ̂₂").Value;
        var h1 = p.Trace.H[0].Value;
        Assert.Equal(3, sigmaHat.Length);
        for (int i = 0; i < xhat.Rows; i++)
        {
            var row = Enumerable.Range(0, xhat.Cols).Select(j => xhat.Data[i * xhat.Cols + j]).ToArray();
            Assert.Equal(0, row.Average(), 12);
            var hRow = Enumerable.Range(0, h1.Cols).Select(j => h1.Data[i * h1.Cols + j]).ToArray();
            double variance = hRow.Select(v => (v - hRow.Average()) * (v - hRow.Average())).Average();
            Assert.Equal(Math.Sqrt(variance + 1e-5), sigmaHat.Data[i], 12);
        }
        // dx̂ = dy ⊙ γ with dy = δ₂ of the previous step
        var delta2 = d.Backward.Single(s => s.Name == "δ₂").Value;
        var gamma = p.Network.Layers[1].Parameter("weight")!.Value;
        var dxhat = step.Factors.Single(f => f.Symbol == "dx̂₂").Value;
        for (int k = 0; k < dxhat.Length; k++) Assert.Equal(delta2.Data[k] * gamma.Data[k % gamma.Length], dxhat.Data[k], 14);
        Assert.True(step.TapeDeviation < 1e-12);
        Assert.Contains(d.Forward, s => s.Formula.StartsWith("z₂ = γ₂ ⊙ x̂₂ + β₂, x̂₂ = (h₁ − μ₂)/σ̂₂", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("weight", "∂L/∂γ₂", "dγ = Σ_rows dy ⊙ x̂")]
    [InlineData("bias", "∂L/∂β₂", "dβ = Σ_rows dy")]
    public void NormLayerScaleAndShift(string parameter, string name, string rule)
    {
        var p = new Problem<double>(Spec("ln-relu-mse-sum-003.json"));
        var d = Explainer.Explain(p, $"layers.1.{parameter}");
        Assert.Equal(name, d.Result.Name);
        Assert.Contains(rule, d.Result.Rules);
        Assert.Equal(p.Network.Layers[1].Parameter(parameter)!.Grad.Data.ToArray(), d.Result.Value.Data.ToArray(), (a, b) => Math.Abs(a - b) <= 1e-13 * (1 + Math.Abs(b)));
        Assert.True(d.FiniteDifference!.Passed);
    }

    [Fact]
    public void BatchNormInTraining_SaysTheSamplesOfTheBatchAreCoupled()
    {
        var d = Explainer.Explain(new Problem<double>(Spec("bn-relu-ce-w-mean-006.json")), "layers.0.weight");
        var step = Assert.Single(d.Backward, s => s.Rules.Any(r => r.Contains("mean_batch", StringComparison.Ordinal)));
        Assert.Contains("couples the samples of the batch", step.Note);
        Assert.Contains("every row's gradient depends on the whole batch through μ₂_B and σ₂²_B", step.Note);
        Assert.True(step.TapeDeviation < 1e-12);
        var text = CliRunner.Run("explain", LayerFile("bn-relu-ce-w-mean-006.json"), "--wrt", "layers.0.weight");
        Assert.Equal(0, text.ExitCode);
        Assert.Contains("couples the samples of the batch", text.Stdout);

        // in evaluation each row is on its own
        var eval = Explainer.Explain(new Problem<double>(Spec("bneval-gelu-bce-pw-sum-007.json")), "input");
        Assert.Contains(eval.Backward, s => s.Note?.Contains("each row's gradient depends on that row alone", StringComparison.Ordinal) == true);
    }

    [Fact]
    public void Dropout_PrintsTheMaskAndTheScale()
    {
        var spec = Spec("drop10-huber-d05-mean-009.json");   // dense, dropout (fixed mask), dense
        var d = Explainer.Explain(new Problem<double>(spec), "layers.0.weight");
        var step = Assert.Single(d.Backward, s => s.Factors.Any(f => f.Symbol == "m₂"));
        Assert.Equal(spec.Layers[1].Matrices["mask"].SelectMany(r => r), step.Factors.Single(f => f.Symbol == "m₂").Value.Data.ToArray());
        double p = spec.Layers[1].Settings["p"];
        Assert.Equal(1 / (1 - p), step.Factors.Single(f => f.Symbol == "1/(1 − p)").Value.Data[0], 15);
        Assert.Contains("dx = dy ⊙ m/(1 − p)", step.Rules);
        Assert.True(step.TapeDeviation < 1e-12);
    }

    [Fact]
    public void ReferenceRules_AreTheOpsBackward_ForEveryOperand()
    {
        // each op's float64 rule against its own kernel, for x, γ and β, in both batch-norm modes and for dropout
        var rng = new Random(3);
        foreach (var build in new Func<Var<double>, Var<double>, Var<double>, Var<double>>[]
        {
            (x, g, b) => Functional.LayerNorm(x, g, b, 1e-3),
            (x, g, b) => Functional.BatchNorm(x, new BatchNormStatistics<double>(Tensor<double>.Random(rng, -1, 1, 4), Tensor<double>.Random(rng, 0.5, 2, 4), 1e-5, 0.1), g, b),
            (x, g, b) => Functional.BatchNorm(x, new BatchNormStatistics<double>(Tensor<double>.Random(rng, -1, 1, 4), Tensor<double>.Random(rng, 0.5, 2, 4), 1e-5, 0.1)
                { Mode = new LayerMode { Training = false } }, g, b),
            (x, g, b) => Functional.Dropout(x, new DropoutMask<double>(0.4) { Seed = 9 }),
        })
        {
            var tape = new Tape<double>();
            var x = tape.Leaf(Tensor<double>.Random(rng, -2, 2, 5, 4), true, "x");
            var gamma = tape.Leaf(Tensor<double>.Random(rng, 0.5, 1.5, 4), true, "γ");
            var beta = tape.Leaf(Tensor<double>.Random(rng, -0.5, 0.5, 4), true, "β");
            var y = build(x, gamma, beta);
            var dy = Tensor<double>.Random(rng, -1, 1, 5, 4);
            tape.Backward(y, dy);
            var reference = Assert.IsAssignableFrom<IReferenceBackward<double>>(y.Op);
            for (int which = 0; which < y.Inputs.Count; which++)
            {
                var r = reference.ReferenceBackward(y.InputArray, dy, which);
                Assert.Equal(y.Inputs[which].Grad.Data.ToArray(), r.Gradient.Data.ToArray(), (a, b) => Math.Abs(a - b) <= 1e-12 * (1 + Math.Abs(b)));
            }
        }
    }

    [Fact]
    public void Cli_WrtAParameterOfALayerWithoutParameters_IsOneLine()
    {
        var r = CliRunner.Run("explain", LayerFile("drop10-huber-d05-mean-009.json"), "--wrt", "layers.1.weight");
        Assert.Equal(2, r.ExitCode);
        Assert.Equal("layers.1 is a dropout layer, which has no parameters (use layers.1.output or input)",
            Assert.Single(r.Stderr.TrimEnd().Split('\n'))[(r.Stderr.IndexOf("layers.1 is", StringComparison.Ordinal))..]);
        var output = CliRunner.Run("explain", LayerFile("drop10-huber-d05-mean-009.json"), "--wrt", "layers.1.output", "--json");
        Assert.Equal(0, output.ExitCode);
        Assert.True(output.Json.GetProperty("finite_difference").GetProperty("passed").GetBoolean());
    }

    // ------------------------------------------------------------------ per-sample gradients

    [Theory]
    [InlineData("ln-relu-mse-sum-003.json", false)]           // layer norm: each row through its own statistics
    [InlineData("lnplain-lnplain-tanh-l1-mean-004.json", false)]
    [InlineData("bneval-gelu-bce-pw-sum-007.json", false)]     // batch norm in evaluation: constants per feature
    [InlineData("drop10-huber-d05-mean-009.json", false)]      // dropout: sample i keeps its mask row
    [InlineData("drop30-ln-ce-w-sum-010.json", false)]         // dropout, layer norm, class-weighted cross-entropy
    [InlineData("drop30-ln-ce-w-sum-010.json", true)]          // the same with the mean: L = (1/Σ w[t_i])·Σ_i ℓ_i
    public void PerSample_WorksForPerSampleLayers_SumsToTheBatch_AndIsEachSamplesOwnGradient(string file, bool mean)
    {
        var spec = Spec(file);
        if (mean) spec = spec with { Reduction = Reduction.Mean };
        var p = new Problem<double>(spec);
        var all = PerSampleGradients.ForAllLayers(p);
        int n = spec.BatchSize;
        var batch = p.Gradients();
        double weightSum = spec.LossSettings.ClassWeights is { } weights ? spec.ClassTargets!.Sum(t => weights[t]) : n;
        Assert.Equal(spec.Reduction == Reduction.Mean ? 1 / weightSum : 1, all[0].BatchFactor, 14);
        for (int l = 0; l < all.Count; l++)
        {
            Assert.Equal(p.Network.Layers[l].Parameters.Select(q => q.Name), all[l].Parameters.Select(q => q.Name));
            foreach (var param in all[l].Parameters)
            {
                var g = batch.LayerGradients[l].Single(q => q.Name == param.Name).Gradient;
                for (int k = 0; k < g.Length; k++)
                {
                    double sum = Enumerable.Range(0, n).Sum(i => param.Gradient.Data[i * g.Length + k]);
                    Assert.Equal(g.Data[k], all[l].BatchFactor * sum, 10);
                }
            }
        }
        // sample i's gradient is that of the problem on a batch holding only sample i (with its own mask row)
        for (int i = 0; i < n; i++)
        {
            var single = new Problem<double>(spec with
            {
                Input = [spec.Input[i]],
                Target = spec.Target is null ? null : [spec.Target[i]],
                ClassTargets = spec.ClassTargets is null ? null : [spec.ClassTargets[i]],
                Layers = [.. spec.Layers.Select(layer => layer with
                {
                    Matrices = layer.Matrices.ToDictionary(kv => kv.Key, kv => new[] { kv.Value[i] }),
                })],
            });
            var g1 = single.Gradients();
            for (int l = 0; l < all.Count; l++)
                foreach (var param in all[l].Parameters)
                {
                    var g = g1.LayerGradients[l].Single(q => q.Name == param.Name).Gradient;
                    // with class weights, ℓ_i is sample i's weighted term: the single-sample mean divides the weight out
                    double w = spec.LossSettings?.ClassWeights is { } cw && spec.Reduction == Reduction.Mean ? cw[spec.ClassTargets![i]] : 1;
                    for (int k = 0; k < g.Length; k++) Assert.Equal(w * g.Data[k], param.Gradient.Data[i * g.Length + k], 10);
                }
        }
    }

    [Theory]
    [InlineData("bn-relu-ce-w-mean-006.json", "layers.1")]
    [InlineData("edge-batch2-bn-bn-tanh-mse-mean-008.json", "layers.0")]
    [InlineData("bneval-bn-ce-mean-014.json", "layers.3")]   // an eval batch norm before a training one: the training one is named
    public void PerSample_RefusesBatchNormInTraining_WithOneLineAndTheReason(string file, string layer)
    {
        foreach (var args in new[] { new[] { "grad", LayerFile(file), "--per-sample" }, ["explain", LayerFile(file), "--per-sample", "--wrt", "layers.0.weight", "--json"] })
        {
            var r = CliRunner.Run(args);
            Assert.Equal(2, r.ExitCode);
            var line = Assert.Single(r.Stderr.TrimEnd().Split('\n'));
            Assert.Contains($"per-sample gradients are not defined for {layer} (batchnorm)", line);
            Assert.Contains("batch norm in training mode couples the samples", line);
            Assert.Contains("a sample's gradient depends on the other samples", line);
            Assert.DoesNotContain("   at ", r.Stderr);
            Assert.Equal("", r.Stdout);
        }
    }

    [Fact]
    public void PerSample_Cli_DropoutLayerHasNoParameters_NormLayerHasGammaAndBeta()
    {
        var r = CliRunner.Run("grad", LayerFile("drop30-ln-ce-w-sum-010.json"), "--per-sample");
        Assert.Equal(0, r.ExitCode);
        var layers = r.Json.GetProperty("layers").EnumerateArray().ToArray();
        var spec = Spec("drop30-ln-ce-w-sum-010.json");
        for (int l = 0; l < layers.Length; l++)
        {
            var names = layers[l].EnumerateObject().Select(q => q.Name).ToArray();
            if (spec.Layers[l].Kind == "dropout") Assert.Empty(names);
            if (spec.Layers[l].Kind == "layernorm")
            {
                Assert.Equal(["weight", "bias"], names);
                Assert.Equal(spec.BatchSize, layers[l].GetProperty("weight").GetArrayLength());
            }
        }
        var dropout = spec.Layers.ToList().FindIndex(x => x.Kind == "dropout");
        var e = CliRunner.Run("explain", LayerFile("drop30-ln-ce-w-sum-010.json"), "--per-sample", "--wrt", $"layers.{dropout}.weight");
        Assert.Equal(2, e.ExitCode);
        Assert.Contains("dropout layer, which has no parameters", Assert.Single(e.Stderr.TrimEnd().Split('\n')));
    }

    // ------------------------------------------------------------------ diagnose

    [Fact]
    public void Diagnose_RowsForDropoutAndNormLayers()
    {
        var r = CliRunner.Run("diagnose", LayerFile("bn-silu-drop50-ln-elu-none-013.json"), "--json");
        Assert.Equal(0, r.ExitCode);
        var layers = r.Json.GetProperty("layers").EnumerateArray().ToArray();
        var kinds = layers.Select(l => l.GetProperty("kind").GetString()!).ToArray();
        Assert.Equal(["dense", "batchnorm", "dropout", "layernorm", "dense"], kinds);
        foreach (var l in layers)
        {
            string kind = l.GetProperty("kind").GetString()!;
            Assert.Equal(kind == "dense", l.TryGetProperty("weight_gradient_norm", out _));
            Assert.Equal(kind is "batchnorm" or "layernorm", l.TryGetProperty("scale_norm", out _));   // γ: a scale, not a weight
            Assert.True(l.GetProperty("output_gradient_norm").GetDouble() > 0);
        }
        var p = new Problem<double>(Spec("bn-silu-drop50-ln-elu-none-013.json"));
        var report = p.Diagnose();
        Assert.Equal(p.Network.Layers[1].Parameter("weight")!.Grad.FrobeniusNorm(), report.Layers[1].ScaleGradientNorm!.Value, 12);
        Assert.True(r.Json.GetProperty("healthy").GetBoolean(), r.Json.GetProperty("verdict").GetString());
        var text = CliRunner.Run("diagnose", LayerFile("bn-silu-drop50-ln-elu-none-013.json"));
        Assert.Contains("‖∂L/∂γ‖", text.Stdout);
        Assert.Contains("dropout", text.Stdout);
    }

    [Fact]
    public void Verdict_LeavesLayersWithoutAWeightOutOfTheRatio()
    {
        // a dense layer then a dropout (no weight, norms 0): not "exploding", as a ratio 0/‖∂L/∂W₁‖ would say
        var layers = new[]
        {
            new LayerHealth(1, "relu", 1.0, 1.0, 1.0, 0, null),
            new LayerHealth(2, "identity", 0, 0, 1.0, null, null) { Kind = "dropout", HasWeight = false },
        };
        var report = GradientHealth.Judge(layers);
        Assert.False(report.Exploding, report.Verdict);
        Assert.True(report.Healthy, report.Verdict);
        // and the ratio still runs between the weighted layers around it
        var vanishing = GradientHealth.Judge([
            new LayerHealth(1, "relu", 1e-6, 1.0, 1.0, 0, null),
            new LayerHealth(2, "identity", 0, 0, 1.0, null, null) { Kind = "dropout", HasWeight = false },
            new LayerHealth(3, "identity", 1.0, 1.0, 1.0, null, null),
        ]);
        Assert.True(vanishing.Vanishing, vanishing.Verdict);
        Assert.Contains("from layer 3 to layer 1", vanishing.Verdict);
    }
}
