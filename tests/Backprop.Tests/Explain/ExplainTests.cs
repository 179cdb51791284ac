using System.Globalization;
using System.Text.Json;
using Backprop.Explain;
using Backprop.Nn;
using Backprop.Problems;
using Backprop.Tests.Cli;

namespace Backprop.Tests.Explain;

public class ExplainTests
{
    private static Problem<double> Load(string name) => Problem<double>.Load(CliRunner.DataPath("problems", name));

    /// <summary>The expected gradient for "layers.I.weight", "layers.I.bias" or "input" from the problem's PyTorch answers.</summary>
    private static double[] Expected(ProblemSpec spec, string wrt)
    {
        var g = spec.Expected!.Value.GetProperty("gradients");
        JsonElement el = wrt == "input" ? g.GetProperty("input") : g.GetProperty("layers")[int.Parse(wrt.Split('.')[1], CultureInfo.InvariantCulture)].GetProperty(wrt.Split('.')[2]);
        return Flatten(el).ToArray();
    }

    private static IEnumerable<double> Flatten(JsonElement el) =>
        el.ValueKind == JsonValueKind.Array ? el.EnumerateArray().SelectMany(Flatten) : [el.GetDouble()];

    /// <summary>Agreement to 6 significant digits, the precision explain prints.</summary>
    private static void AssertSixDigits(double[] expected, double[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 5e-7 * Math.Abs(expected[i]) + 1e-300,
                $"element {i}: expected {expected[i]:G17}, derived {actual[i]:G17}");
    }

    private static void AssertDeltasEqualTape(Problem<double> p, Derivation d)
    {
        foreach (var s in d.Backward)
        {
            Assert.NotNull(s.TapeDeviation);
            Assert.True(s.TapeDeviation <= 1e-12, $"{s.Name} deviates from the tape by {s.TapeDeviation}");
            if (s.Name.StartsWith('δ'))
            {
                int l = int.Parse(string.Concat(s.Name[1..].Select(c => (char)('0' + "₀₁₂₃₄₅₆₇₈₉".IndexOf(c)))), CultureInfo.InvariantCulture);
                var tapeDelta = p.Trace.Z[l - 1].Grad.Data;
                for (int i = 0; i < tapeDelta.Length; i++)
                    Assert.True(Math.Abs(tapeDelta[i] - s.Value.Data[i]) <= 1e-12 * (1 + Math.Abs(tapeDelta[i])), $"{s.Name}[{i}]");
            }
        }
    }

    [Fact]
    public void SigmoidLinearNoBias_DerivesDfDW1()
    {
        var p = Load("seed-2-2-2-1-sigmoid-linear-nobias.json");
        var d = Explainer.Explain(p, "layers.0.weight");
        Assert.Equal(["δ₃", "δ₂", "δ₁", "∂L/∂W₁"], d.BackwardNames);
        Assert.Equal("δ₂ = ∂L/∂z₂ = (δ₃·W₃) ⊙ σ′(z₂)", d.Backward[1].Formula);
        Assert.Equal("∂L/∂W₁ = δ₁ᵀ·x", d.Result.Formula);
        Assert.Equal([2, 2], d.Result.Value.ShapeArray);
        AssertSixDigits(Expected(p.Spec, "layers.0.weight"), d.Result.Value.Data.ToArray());
        AssertDeltasEqualTape(p, d);
        Assert.True(d.FiniteDifference!.Passed);
        Assert.Empty(d.Jacobian); // a scalar output: the gradient is the Jacobian
    }

    [Fact]
    public void SigmoidLinearNoBias_Cli_PrintsStepsNumbersAndFiniteDifferenceLine()
    {
        var path = CliRunner.DataPath("problems", "seed-2-2-2-1-sigmoid-linear-nobias.json");
        var r = CliRunner.Run("explain", path, "--wrt", "layers.0.weight");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("z₁ = x·W₁ᵀ", r.Stdout);
        Assert.Contains("[1×2]·[2×2]ᵀ → [1×2]", r.Stdout);
        Assert.Contains("h₁ = σ(z₁)", r.Stdout);
        Assert.Contains("layers.0.weight ↔ W₁", r.Stdout);
        var backward = r.Stdout[r.Stdout.IndexOf("Backward pass", StringComparison.Ordinal)..];
        int last = -1;
        foreach (var name in new[] { "δ₃ =", "δ₂ =", "δ₁ =", "∂L/∂W₁ =" })
        {
            int at = backward.IndexOf(name, StringComparison.Ordinal);
            Assert.True(at > last, $"{name} out of order");
            last = at;
        }
        // every value of the requested gradient is printed, to 6 significant digits
        var result = backward[backward.LastIndexOf("∂L/∂W₁ =", StringComparison.Ordinal)..];
        var printed = System.Text.RegularExpressions.Regex.Matches(result.Split("tape's own")[0], @"-?\d[\d.]*(e[-+]\d+)?")
            .Select(m => double.Parse(m.Value, CultureInfo.InvariantCulture)).Where(v => v != 1).ToArray();
        AssertSixDigitsPrinted(Expected(ProblemFile.Load(path), "layers.0.weight"), printed);
        var fdLine = r.Stdout.Split('\n').Single(l => l.Contains("finite-difference", StringComparison.Ordinal));
        Assert.EndsWith("pass", fdLine.TrimEnd());
    }

    private static void AssertSixDigitsPrinted(double[] expected, double[] printed)
    {
        Assert.Equal(expected.Length, printed.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.Equal(expected[i].ToString("G6", CultureInfo.InvariantCulture), printed[i].ToString("G6", CultureInfo.InvariantCulture));
    }

    [Fact]
    public void SigmoidChain_JacobianInMatrixProductForm_EqualsExpected()
    {
        var p = Load("seed-sigmoid-chain-jacobian.json");
        var jacobians = p.Spec.Expected!.Value.GetProperty("jacobian_output").EnumerateArray().ToList();
        Assert.NotEmpty(jacobians);
        foreach (var j in jacobians)
        {
            int layer = j.GetProperty("layer").GetInt32();
            var d = Explainer.Explain(p, $"layers.{layer}.bias", finiteDifference: false);
            var step = Assert.Single(d.Jacobian);
            Assert.Equal($"dŷ/db{Float64Math.Sub(layer + 1)}", step.Name);
            // diag(σ′₄)·W₄·diag(σ′₃)·…·diag(σ′_i): 2·(4 − i) + 1 factors
            Assert.Equal(2 * (4 - (layer + 1)) + 1, step.Factors.Count);
            Assert.StartsWith(layer < 3 ? "diag(σ′(z₄))·W₄·diag(σ′(z₃))" : "diag(σ′(z₄))", step.Formula.Split(" = ")[1]);
            Assert.True(step.TapeDeviation <= 1e-12);
            AssertSixDigits(Flatten(j.GetProperty("rows")).ToArray(), step.Value.Data.ToArray());
            AssertSixDigits(Expected(p.Spec, $"layers.{layer}.bias"), d.Result.Value.Data.ToArray());
        }
        var first = Explainer.Explain(p, "layers.0.bias");
        Assert.Equal(["δ₄", "δ₃", "δ₂", "δ₁", "∂L/∂b₁"], first.BackwardNames);
        Assert.True(first.FiniteDifference!.Passed);
    }

    [Fact]
    public void ReluBatchMean_BiasGradientIsTheBatchSumOfDelta()
    {
        var p = Load("seed-fc-relu-batch-mean.json");
        var d = Explainer.Explain(p, "layers.0.bias");
        Assert.Equal(["δ₂", "δ₁", "∂L/∂b₁"], d.BackwardNames);
        Assert.Contains("2·(ŷ − t)/N", d.Backward[0].Formula);
        Assert.Contains("(N = 24", d.Backward[0].Factors[0].Definition); // mean over 8 × 3 elements
        Assert.Contains("relu′(z₁)", d.Backward[1].Formula);
        Assert.Contains("1/N of the mean reduction is already inside δ_L", d.Result.Note);
        AssertSixDigits(Expected(p.Spec, "layers.0.bias"), d.Result.Value.Data.ToArray());
        AssertDeltasEqualTape(p, d);
        // ∂L/∂b₁ = Σ_batch δ₁ = N × (the batch mean of δ₁)
        var delta1 = d.Backward[1].Value;
        int n = delta1.Rows, c = delta1.Cols;
        for (int j = 0; j < c; j++)
        {
            double mean = Enumerable.Range(0, n).Average(i => delta1.Data[i * c + j]);
            Assert.Equal(n * mean, d.Result.Value.Data[j], 12);
        }
        Assert.True(d.FiniteDifference!.Passed);

        foreach (var wrt in new[] { "layers.0.weight", "layers.1.weight", "layers.1.bias", "input" })
        {
            var e = Explainer.Explain(p, wrt);
            AssertSixDigits(Expected(p.Spec, wrt), e.Result.Value.Data.ToArray());
            Assert.True(e.FiniteDifference!.Passed, wrt);
        }
    }

    [Fact]
    public void SmallWeightsVanishing_DeltasShrinkLayerByLayer()
    {
        var p = Load("seed-sigmoid-small-weights-vanishing.json");
        var d = Explainer.Explain(p, "layers.0.weight");
        Assert.Equal(["δ₉", "δ₈", "δ₇", "δ₆", "δ₅", "δ₄", "δ₃", "δ₂", "δ₁", "∂L/∂W₁"], d.BackwardNames);
        AssertSixDigits(Expected(p.Spec, "layers.0.weight"), d.Result.Value.Data.ToArray());
        AssertDeltasEqualTape(p, d);
        var norms = d.Backward.Take(9).Select(s => s.Value.FrobeniusNorm()).ToArray();
        for (int i = 1; i < norms.Length; i++) Assert.True(norms[i] < norms[i - 1], $"‖δ‖ grows at step {i}");
        Assert.True(norms[^1] < 1e-8 * norms[0], "gradients vanish");
        Assert.True(d.FiniteDifference!.Passed);
    }

    [Fact]
    public void RowsNotation_UsesTheHomeworkRecurrences()
    {
        var p = Load("seed-2-2-2-1-sigmoid-linear-nobias.json");
        var d = Explainer.Explain(p, "layers.0.weight", Notation.Rows);
        Assert.Equal(["dy₄", "db₃", "dy₃", "db₂", "dy₂", "db₁", "dA₁", "∂L/∂W₁"], d.BackwardNames);
        Assert.Equal("db₂ = ∂L/∂z₂ = dy₃·diag(σ′(A₂y₂))", d.Backward[3].Formula);
        Assert.StartsWith("dy₃ = db₃·A₃", d.Backward[2].Formula);
        Assert.StartsWith("dA₁ = y₁·db₁", d.Backward[6].Formula);
        Assert.Equal([2, 2], d.Backward[6].Value.ShapeArray);
        AssertSixDigits(Expected(p.Spec, "layers.0.weight"), d.Result.Value.Data.ToArray());
        Assert.True(d.FiniteDifference!.Passed);
        var columns = Explainer.Explain(p, "layers.0.weight", Notation.Columns, finiteDifference: false);
        Assert.Equal(columns.Backward[0].Value.Data, d.Backward[1].Value.Data); // δ₃ = db₃
        Assert.Equal(columns.Backward[1].Value.Data, d.Backward[3].Value.Data); // δ₂ = db₂
    }

    [Fact]
    public void EveryRandomProblem_EveryGradient_MatchesPyTorchAndTheTape()
    {
        foreach (var file in Directory.GetFiles(CliRunner.DataPath("problems"), "random-*.json").Order())
        {
            var p = Problem<double>.Load(file);
            var wrts = new List<string> { "input" };
            for (int i = 0; i < p.Network.Layers.Count; i++)
            {
                wrts.Add($"layers.{i}.weight");
                if (p.Network.Layers[i].Parameter("bias") is not null) wrts.Add($"layers.{i}.bias");
            }
            foreach (var wrt in wrts)
            {
                var d = Explainer.Explain(p, wrt, finiteDifference: false);
                // a softmax output under loss none has Σ outputs ≡ 1: its gradients are rounding noise, not comparable
                bool cancels = d.Result.Value.Data.ToArray().All(v => Math.Abs(v) < 1e-14);
                Assert.True(cancels || d.MaxTapeDeviation <= 1e-10, $"{Path.GetFileName(file)} {wrt}: deviation {d.MaxTapeDeviation}");
                var expected = Expected(p.Spec, wrt);
                for (int i = 0; i < expected.Length; i++)
                    Assert.True(Math.Abs(expected[i] - d.Result.Value.Data[i]) <= 1e-9 + 1e-6 * Math.Abs(expected[i]),
                        $"{Path.GetFileName(file)} {wrt}[{i}]: {expected[i]} vs {d.Result.Value.Data[i]}");
            }
        }
    }

    /// <summary>
    /// --wrt layers.I.output derives ∂L/∂h for every layer of every random problem: the walk stops at the layer's
    /// output, the last step equals the tape's gradient of h, and central differences of L in h (perturbing h and
    /// replaying only the layers after it) agree.
    /// </summary>
    [Fact]
    public void EveryRandomProblem_EveryLayerOutput_MatchesTheTapeAndFiniteDifferences()
    {
        int checkedOutputs = 0;
        foreach (var file in Directory.GetFiles(CliRunner.DataPath("problems"), "random-*.json").Order().Take(12))
        {
            var p = Problem<double>.Load(file);
            for (int i = 0; i < p.Network.Layers.Count; i++)
            {
                var d = Explainer.Explain(p, $"layers.{i}.output");
                var h = p.Trace.H[i];
                Assert.Equal(h.Grad.Data.Length, d.Result.Value.Length);
                for (int k = 0; k < h.Grad.Data.Length; k++)
                    Assert.True(Math.Abs(h.Grad.Data[k] - d.Result.Value.Data[k]) <= 1e-12 * (1 + Math.Abs(h.Grad.Data[k])),
                        $"{Path.GetFileName(file)} layers.{i}.output[{k}]: tape {h.Grad.Data[k]}, derived {d.Result.Value.Data[k]}");
                Assert.True(d.FiniteDifference!.Passed, $"{Path.GetFileName(file)} layers.{i}.output: {d.FiniteDifference}");
                checkedOutputs++;
            }
        }
        Assert.True(checkedOutputs >= 24);
    }

    [Fact]
    public void HiddenOutput_StepsEndAtDLdh_AndEqualTheJacobianOfAScalarOutput()
    {
        var path = CliRunner.DataPath("problems", "seed-2-2-2-1-sigmoid-linear-nobias.json");
        var d = Explainer.Explain(Load("seed-2-2-2-1-sigmoid-linear-nobias.json"), "layers.0.output");
        Assert.Equal(["δ₃", "δ₂", "∂L/∂h₁"], d.BackwardNames);
        Assert.Equal("∂L/∂h₁ = δ₂·W₂", d.Result.Formula);
        // loss none with one output: L = ŷ, so ∂L/∂h₁ is the one row of the Jacobian dŷ/dh₁
        var j = CliRunner.Run("jacobian", path, "--wrt", "layers.0.output").Json.GetProperty("rows")[0];
        AssertSixDigits(Flatten(j).ToArray(), d.Result.Value.Data.ToArray());
        var rows = Explainer.Explain(Load("seed-2-2-2-1-sigmoid-linear-nobias.json"), "layers.0.output", Notation.Rows);
        Assert.Equal("dy₂", rows.Result.Name);
        var cli = CliRunner.Run("explain", path, "--wrt", "layers.1.output");
        Assert.Equal(0, cli.ExitCode);
        Assert.Contains("∂L/∂h₂ = δ₃·W₃", cli.Stdout);
        Assert.Contains(": pass", cli.Stdout);
    }

    [Theory]
    [InlineData("softmax", "cross_entropy")]
    [InlineData("tanh", "bce_with_logits")]
    [InlineData("gelu", "mse")]
    public void SoftmaxAndOtherActivations_StepsEqualTheTape(string hidden, string loss)
    {
        string target = loss == "cross_entropy" ? "[2, 0]" : "[[0, 1, 1], [1, 0, 1]]";
        var spec = ProblemFile.Parse($$"""
            {"layers": [
              {"weight": [[0.3, -0.2], [0.5, 0.1], [-0.4, 0.7]], "bias": [0.1, -0.2, 0.05], "activation": "{{hidden}}"},
              {"weight": [[0.2, -0.6, 0.4], [0.9, 0.3, -0.5], [-0.1, 0.8, 0.2]], "bias": [0, 0.1, -0.1], "activation": "identity"}],
             "input": [[0.5, -1.0], [1.5, 0.25]], "loss": "{{loss}}", "reduction": "sum", "target": {{target}}}
            """);
        var p = new Problem<double>(spec);
        foreach (var wrt in new[] { "layers.0.weight", "layers.0.bias", "input" })
        {
            var d = Explainer.Explain(p, wrt);
            Assert.True(d.MaxTapeDeviation <= 1e-12, $"{wrt}: {d.MaxTapeDeviation}");
            Assert.True(d.FiniteDifference!.Passed, wrt);
            if (hidden == "softmax") Assert.Contains("s ⊙ (", d.Backward[1].Formula);
        }
    }

    [Fact]
    public void MarkdownAndLatex_RenderTheSameSteps()
    {
        var p = Load("seed-2-2-2-1-sigmoid-linear-nobias.json");
        var d = Explainer.Explain(p, "layers.0.weight");
        var md = DerivationRenderer.Render(d, DerivationFormat.Markdown);
        Assert.Contains("## Backward pass", md);
        Assert.Contains("$\\delta _{2}$", md);
        Assert.Contains("\\odot", md);
        Assert.Contains("finite-difference", md);
        var tex = DerivationRenderer.Render(d, DerivationFormat.Latex);
        Assert.Contains("\\begin{align}", tex);
        Assert.Contains("\\end{align}", tex);
        Assert.Contains("\\begin{bmatrix}", tex);
        var r = CliRunner.Run("explain", CliRunner.DataPath("problems", "seed-2-2-2-1-sigmoid-linear-nobias.json"), "--format", "latex");
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("\\begin{align}", r.Stdout);
    }

    [Fact]
    public void Float32_MatchesToSinglePrecision()
    {
        var spec = ProblemFile.Load(CliRunner.DataPath("problems", "seed-fc-relu-batch-mean.json"));
        var d = Explainer.Explain(new Problem<float>(spec), "layers.0.weight");
        Assert.Equal("float32", d.DType);
        var expected = Expected(spec, "layers.0.weight");
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], d.Result.Value.Data[i], 5);
        Assert.True(d.FiniteDifference!.Passed);
    }

    [Fact]
    public void Cli_JsonAndErrors()
    {
        var path = CliRunner.DataPath("problems", "seed-sigmoid-chain-jacobian.json");
        var r = CliRunner.Run("explain", path, "--wrt", "layers.1.bias", "--json");
        Assert.Equal(0, r.ExitCode);
        var names = r.Json.GetProperty("backward").EnumerateArray().Select(s => s.GetProperty("name").GetString()!).ToArray();
        Assert.Equal(["δ₄", "δ₃", "δ₂", "∂L/∂b₂"], names);
        Assert.True(r.Json.GetProperty("finite_difference").GetProperty("passed").GetBoolean());
        Assert.Single(r.Json.GetProperty("jacobian").EnumerateArray());

        var bad = CliRunner.Run("explain", path, "--wrt", "layers.7.weight");
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("layer 7 does not exist", bad.Stderr);
        Assert.Single(bad.Stderr.TrimEnd().Split('\n'));
        var noBias = CliRunner.Run("explain", CliRunner.DataPath("problems", "seed-2-2-2-1-sigmoid-linear-nobias.json"), "--wrt", "layers.0.bias");
        Assert.Equal(2, noBias.ExitCode);
    }
}
