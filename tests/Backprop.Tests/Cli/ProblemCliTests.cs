using System.Text.Json;
using Backprop.Nn;

namespace Backprop.Tests.Cli;

public class ProblemCliTests
{
    private static string Seed(string name) => CliRunner.DataPath("problems", name + ".json");

    private static string WriteTemp(string json)
    {
        var path = Path.Combine(Path.GetTempPath(), $"backprop-test-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, json);
        return path;
    }

    private const string Valid = """
        {"layers": [{"weight": [[0.5, -0.2], [0.1, 0.3]], "bias": [0.1, -0.1], "activation": "tanh"},
                    {"weight": [[0.7, -0.4]], "activation": "identity"}],
         "input": [[1.0, 2.0], [0.5, -1.0]], "loss": "mse", "reduction": "mean", "target": [[0.3], [-0.2]]}
        """;

    public static TheoryData<string, string, string> BadProblems() => new()
    {
        { "truncated file", Valid[..(Valid.Length / 2)], "invalid JSON" },
        { "not JSON at all (a CSV)", "sepal_length,label\n5.1,0\n", "invalid JSON at line 1, byte 1: 's' is an invalid start of a value" },
        { "empty file", "", "empty" },
        { "ragged weight", Valid.Replace("[[0.5, -0.2], [0.1, 0.3]]", "[[0.5, -0.2], [0.1]]"), "layers[0].weight is ragged" },
        { "ragged input", Valid.Replace("[[1.0, 2.0], [0.5, -1.0]]", "[[1.0, 2.0], [0.5]]"), "input is ragged" },
        { "layer chain mismatch", Valid.Replace("[[0.7, -0.4]]", "[[0.7, -0.4, 0.2]]"), "layers[1].weight is 1×3 but layers[0] gives 2 outputs" },
        { "input width mismatch", Valid.Replace("[[1.0, 2.0], [0.5, -1.0]]", "[[1.0, 2.0, 3.0], [0.5, -1.0, 1.0]]"), "input is 2×3" },
        { "bias length mismatch", Valid.Replace("[0.1, -0.1]", "[0.1, -0.1, 0.4]"), "layers[0].bias has 3 values" },
        { "target shape mismatch", Valid.Replace("[[0.3], [-0.2]]", "[[0.3], [-0.2], [0.1]]"), "target is 3×1" },
        { "unknown activation", Valid.Replace("\"tanh\"", "\"swish\""), "layers[0].activation: unknown activation 'swish'" },
        { "unknown loss", Valid.Replace("\"mse\"", "\"hinge\""), "loss: unknown loss 'hinge'" },
        { "unknown reduction", Valid.Replace("\"mean\"", "\"max\""), "reduction: unknown reduction 'max'" },
        { "class index out of range", Valid.Replace("\"mse\"", "\"cross_entropy\"").Replace("[[0.3], [-0.2]]", "[0, 1]"), "target[1] = 1 is out of range" },
        { "class index not an integer", Valid.Replace("\"mse\"", "\"cross_entropy\"").Replace("[[0.3], [-0.2]]", "[0, 0.5]"), "target[1] = 0.5 is not a class index" },
        { "empty network", """{"layers": [], "input": [[1.0]], "loss": "none"}""", "layers: the network is empty" },
        { "missing layers", """{"input": [[1.0]], "loss": "none"}""", "layers: missing" },
        { "missing target", Valid.Replace(", \"target\": [[0.3], [-0.2]]", ""), "target: missing" },
        { "NaN weight", Valid.Replace("0.7, -0.4", "0.7, NaN"), "layers[1].weight[0][1] is NaN" },
        { "Infinity input", Valid.Replace("[0.5, -1.0]", "[0.5, -Infinity]"), "input[1][1] is -Infinity" },
        { "overflowing number", Valid.Replace("0.7, -0.4", "0.7, 1e999"), "layers[1].weight[0][1] = 1e999 is not a finite number" },
        { "string number", Valid.Replace("0.7, -0.4", "0.7, \"x\""), "layers[1].weight[0][1]: must be a number" },
        { "top level array", "[1, 2]", "top level must be a JSON object" },
    };

    [Theory]
    [MemberData(nameof(BadProblems))]
    public void EveryProblemFileErrorIsExitTwoWithOneLineNamingTheField(string what, string json, string expected)
    {
        var path = WriteTemp(json);
        try
        {
            foreach (var cmd in new[] { new[] { "grad", path }, new[] { "jacobian", path, "--wrt", "input" }, new[] { "gradcheck", path } })
            {
                var r = CliRunner.Run(cmd);
                Assert.True(r.ExitCode == 2, $"{what}: {cmd[0]} exit {r.ExitCode}, stderr: {r.Stderr}");
                var lines = r.Stderr.TrimEnd().Split('\n');
                Assert.True(lines.Length == 1, $"{what}: stderr has {lines.Length} lines: {r.Stderr}");
                Assert.Contains(expected, r.Stderr);
                Assert.DoesNotContain("   at ", r.Stderr);
                Assert.DoesNotContain("BytePositionInLine", r.Stderr);   // the parser's own position, said once already
                Assert.Equal("", r.Stdout);
            }
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void AProblemFormatMessageStaysOnOneLineWhenItQuotesAControlCharacter()
    {
        // the CLI flattens its stderr line anyway; the library's message itself must be one line too
        var ex = Assert.Throws<Backprop.Problems.ProblemFormatException>(() =>
            Backprop.Problems.ProblemFile.Parse(Valid.Replace("\"tanh\"", "\"ta\\nnh\"")));
        Assert.DoesNotContain('\n', ex.Message);
        Assert.Contains("unknown activation 'ta nh'", ex.Message);
    }

    [Fact]
    public void MissingFileIsExitTwo()
    {
        var r = CliRunner.Run("grad", "/nonexistent/problem.json");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains("/nonexistent/problem.json: no such file", r.Stderr);
    }

    [Theory]
    [InlineData("layers.7.bias", "layer 7 does not exist")]
    [InlineData("layers.0.gamma", "expected weight, bias or output")]
    [InlineData("output", "expected layers.I.weight")]
    public void BadWrtIsExitTwo(string wrt, string expected)
    {
        var r = CliRunner.Run("jacobian", Seed("seed-sigmoid-chain-jacobian"), "--wrt", wrt);
        Assert.Equal(2, r.ExitCode);
        Assert.Contains(expected, r.Stderr);
    }

    [Fact]
    public void BadOptionValueIsExitTwo()
    {
        var r = CliRunner.Run("grad", Seed("seed-fc-relu-batch-mean"), "--dtype", "float16");
        Assert.Equal(2, r.ExitCode);
        Assert.Single(r.Stderr.TrimEnd().Split('\n'));
    }

    [Fact]
    public void JacobianWithRespectToTheInputMatchesTheGradientForOneOutput()
    {
        // The 2-2-2-1 chain has one output, so its Jacobian row is the gradient of Σ outputs.
        var path = Seed("seed-2-2-2-1-sigmoid-linear-nobias");
        var j = CliRunner.Run("jacobian", path, "--wrt", "input").Json;
        var g = CliRunner.Run("grad", path).Json;
        Assert.Equal("[1,2]", j.GetProperty("shape").GetRawText());
        GoldenProblemTests.AssertClose(g.GetProperty("gradients").GetProperty("input"), j.GetProperty("rows"), "d y / d x");
    }

    [Fact]
    public void JacobianOfTheOutputWithRespectToItselfIsTheIdentity()
    {
        var path = Seed("seed-sigmoid-chain-jacobian");
        var j = CliRunner.Run("jacobian", path, "--wrt", "layers.3.output").Json;
        var rows = j.GetProperty("rows").EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetDouble()).ToArray()).ToArray();
        for (int i = 0; i < rows.Length; i++)
            for (int k = 0; k < rows[i].Length; k++) Assert.Equal(i == k ? 1.0 : 0.0, rows[i][k]);
    }

    [Fact]
    public void JacobianChainRuleThroughAHiddenOutput()
    {
        // d y_L / d b_0 = (d y_L / d h_0)·(d h_0 / d b_0), and d h_0 / d b_0 = diag(σ′(z_0)) for one input row.
        var path = Seed("seed-sigmoid-chain-jacobian");
        var dyDh0 = Rows(CliRunner.Run("jacobian", path, "--wrt", "layers.0.output").Json);
        var dyDb0 = Rows(CliRunner.Run("jacobian", path, "--wrt", "layers.0.bias").Json);
        var p = Backprop.Problems.Problem<double>.Load(path);
        var h0 = p.Trace.H[0].Value.Data;
        for (int i = 0; i < dyDb0.Length; i++)
            for (int k = 0; k < h0.Length; k++)
                Assert.Equal(dyDh0[i][k] * h0[k] * (1 - h0[k]), dyDb0[i][k], 1e-15);
    }

    private static double[][] Rows(JsonElement j) =>
        j.GetProperty("rows").EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetDouble()).ToArray()).ToArray();

    [Theory]
    [InlineData("float64")]
    [InlineData("float32")]
    public void GradcheckPassesOnEveryReferenceProblem(string dtype)
    {
        // the dense reference problems and the layer ones (dropout, layer norm, batch norm in both modes, the new losses)
        var files = new[] { "problems", "problems-layers" }.SelectMany(d => Directory.GetFiles(CliRunner.DataPath(d), "*.json")).ToList();
        Assert.Contains(files, f => f.Contains("problems-layers", StringComparison.Ordinal));
        foreach (var f in files)
        {
            var r = CliRunner.Run("gradcheck", f, "--dtype", dtype, "--json");
            Assert.True(r.ExitCode == 0, $"{Path.GetFileName(f)}: {r.LastLine}");
            Assert.True(r.Json.GetProperty("passed").GetBoolean());
        }
    }

    [Fact]
    public void GradcheckTableNamesEveryTensor()
    {
        var r = CliRunner.Run("gradcheck", Seed("seed-fc-relu-batch-mean"));
        Assert.Equal(0, r.ExitCode);
        foreach (var name in new[] { "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias", "input" })
            Assert.Contains(name, r.Stdout);
        Assert.Contains("all 5 tensors pass", r.Stdout);
    }

    [Fact]
    public void GradcheckFailsWhenTheAnalyticGradientIsWrong()
    {
        // Analytic gradients that are off by 1% must be caught.
        var p = Backprop.Problems.Problem<double>.Load(Seed("seed-fc-relu-batch-mean"));
        var leaves = new List<(string, Var<double>)> { ("layers.0.weight", p.Network.Layers[0].Parameter("weight")!) };
        p.Tape.Forward();
        p.Backward();
        var wrong = p.Network.Layers[0].Parameter("weight")!.Grad.ToDoubleArray().Select(v => v * 1.01 + 1e-3).ToArray();
        var report = GradientCheck.Compare(p.Tape, p.Objective, leaves, [wrong], "float64", 1e-7, 1e-5);
        Assert.False(report.Passed);
    }

    /// <summary>
    /// A recorded value (a hidden layer's output) can be checked too: it is perturbed in place and only the ops after
    /// it are replayed. The tape's gradient passes; a gradient off by 1% fails.
    /// </summary>
    [Fact]
    public void GradcheckOfAHiddenOutputReplaysOnlyWhatFollowsIt()
    {
        var p = Backprop.Problems.Problem<double>.Load(Seed("seed-fc-relu-batch-mean"));
        var h = p.Trace.H[0];
        var values = new List<(string, Var<double>)> { ("layers.0.output", h) };
        p.Tape.Forward();
        p.Backward();
        var right = h.Grad.ToDoubleArray();
        Assert.Contains(right, v => v != 0);
        Assert.True(GradientCheck.Compare(p.Tape, p.Objective, values, [right], "float64", 1e-7, 1e-5).Passed);
        var wrong = right.Select(v => v * 1.01 + 1e-3).ToArray();
        Assert.False(GradientCheck.Compare(p.Tape, p.Objective, values, [wrong], "float64", 1e-7, 1e-5).Passed);
        // the values are restored afterwards
        var before = h.Value.Data.ToArray();
        p.Tape.Forward();
        Assert.Equal(before, h.Value.Data);
    }

    [Fact]
    public void Float32GradAgreesWithFloat64()
    {
        var path = Seed("random-017");
        var a = CliRunner.Run("grad", path, "--dtype", "float32").Json;
        var b = CliRunner.Run("grad", path).Json;
        Assert.Equal(b.GetProperty("loss").GetDouble(), a.GetProperty("loss").GetDouble(), 4);
    }
}

public class PerSampleCliTests
{
    [Theory]
    [InlineData("seed-fc-relu-batch-mean")]
    [InlineData("random-017")]
    [InlineData("random-010")]
    public void PerSampleGradientsSumToTheBatchGradient(string name)
    {
        var path = CliRunner.DataPath("problems", name + ".json");
        var ps = CliRunner.Run("grad", path, "--per-sample").Json;
        var batch = CliRunner.Run("grad", path).Json.GetProperty("gradients").GetProperty("layers").EnumerateArray().ToArray();
        double s = ps.GetProperty("batch_factor").GetDouble();
        var layers = ps.GetProperty("layers").EnumerateArray().ToArray();
        Assert.Equal(batch.Length, layers.Length);
        for (int l = 0; l < layers.Length; l++)
        {
            var perSample = layers[l].GetProperty("weight").EnumerateArray()
                .Select(m => m.EnumerateArray().SelectMany(r => r.EnumerateArray().Select(v => v.GetDouble())).ToArray()).ToArray();
            var expected = batch[l].GetProperty("weight").EnumerateArray().SelectMany(r => r.EnumerateArray().Select(v => v.GetDouble())).ToArray();
            for (int k = 0; k < expected.Length; k++)
                Assert.Equal(expected[k], s * perSample.Sum(m => m[k]), 1e-12);
        }
    }
}
