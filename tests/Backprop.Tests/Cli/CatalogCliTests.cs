using Backprop.Tests.Data;
using Backprop.Tests.Nn;
using Backprop.Training;

namespace Backprop.Tests.Cli;

/// <summary>
/// The CLI built with a catalog that holds a test-only activation (<see cref="TestKinds"/>) knows it by name alone:
/// train takes it as --activation, the model file records it and loads back, explain prints it in LaTeX.
/// </summary>
public sealed class CatalogCliTests
{
    private static string Iris => CliRunner.DataPath("tabular", "iris.csv");

    [Fact]
    public void TrainsWithATestOnlyActivationByName()
    {
        using var tmp = new TempDir();
        string model = tmp.File("softsign.safetensors");
        var r = CliRunner.RunWith(TestKinds.Catalog, "train", "--data", Iris, "--layers", "4,16,3", "--activation", TestKinds.Softsign,
            "--epochs", "60", "--lr", "0.03", "--threads", "1", "--out", model, "--quiet", "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.True(r.Json.GetProperty("test_accuracy").GetDouble() > 0.8, r.Stdout);

        var m = ModelFile.Load<float>(model, TestKinds.Catalog);
        Assert.Equal([TestKinds.Softsign, "identity"], m.Network.Layers.Select(l => l.Activation.Name));
        // the built-in CLI does not know the name: one line, exit 2, at train and at load
        var unknown = CliRunner.Run("train", "--data", Iris, "--activation", TestKinds.Softsign, "--epochs", "1", "--out", tmp.File("x"), "--quiet");
        Assert.Equal(2, unknown.ExitCode);
        Assert.Contains($"--activation {TestKinds.Softsign}: expected one of", unknown.Stderr);
        var load = CliRunner.Run("evaluate", "--model", model, "--data", Iris);
        Assert.Equal(2, load.ExitCode);
        Assert.Contains($"unknown activation '{TestKinds.Softsign}'", load.Stderr);
        Assert.Equal(0, CliRunner.RunWith(TestKinds.Catalog, "evaluate", "--model", model, "--data", Iris).ExitCode);
    }

    [Fact]
    public void ExplainPrintsATestOnlyActivationInLatex()
    {
        using var tmp = new TempDir();
        string problem = tmp.File("softsign.json");
        File.WriteAllText(problem, $$"""
            {
              "name": "softsign-chain",
              "layers": [
                { "weight": [[0.8, -0.3], [0.5, 0.9]], "bias": [0.1, -0.2], "activation": "{{TestKinds.Softsign}}" },
                { "weight": [[1.2, -0.7]], "activation": "identity" }
              ],
              "input": [[0.4, -1.1], [1.5, 0.3]],
              "loss": "mse",
              "target": [[0.5], [-0.25]]
            }
            """);
        var r = CliRunner.RunWith(TestKinds.Catalog, "explain", problem, "--wrt", "layers.0.weight", "--format", "latex");
        Assert.True(r.ExitCode == 0, r.Stderr);
        Assert.Contains("\\operatorname{ssign}", r.Stdout);                   // the activation's own LaTeX symbol
        Assert.Contains("\\operatorname{ssign}'", r.Stdout);                  // its derivative in the backward pass
        var fd = Assert.Single(r.Stdout.Split('\n'), l => l.StartsWith("% finite-difference check", StringComparison.Ordinal));
        Assert.EndsWith(": pass", fd.TrimEnd());

        // gradcheck passes through the activation's own backward rule, and the built-in CLI refuses the name
        var check = CliRunner.RunWith(TestKinds.Catalog, "gradcheck", problem, "--json");
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
        var plain = CliRunner.Run("gradcheck", problem);
        Assert.Equal(2, plain.ExitCode);
        Assert.Contains($"unknown activation '{TestKinds.Softsign}'", plain.Stderr);
    }

    /// <summary>A problem file names a layer's kind and gives its parameters and buffers by name; the CLI built with the kind reads it.</summary>
    [Fact]
    public void ProblemFilesHoldATestOnlyLayerKind()
    {
        using var tmp = new TempDir();
        string problem = tmp.File("scale.json");
        File.WriteAllText(problem, $$"""
            {
              "name": "scale-chain",
              "layers": [
                { "weight": [[0.8, -0.3], [0.5, 0.9], [-0.4, 0.2]], "bias": [0.1, -0.2, 0.05], "activation": "tanh" },
                { "type": "{{ScaleKind.KindName}}", "scale": [1.5, 0.7, -0.9], "shift": [0.1, 0.0, -0.2], "activation": "{{TestKinds.Softsign}}" },
                { "weight": [[1.2, -0.7, 0.4]], "activation": "identity" }
              ],
              "input": [[0.4, -1.1], [1.5, 0.3]],
              "loss": "mse",
              "target": [[0.5], [-0.25]]
            }
            """);
        var grad = CliRunner.RunWith(TestKinds.Catalog, "grad", problem);
        Assert.True(grad.ExitCode == 0, grad.Stderr);
        var layer1 = grad.Json.GetProperty("gradients").GetProperty("layers")[1];
        Assert.Equal(3, layer1.GetProperty("scale").GetArrayLength());            // the layer's parameter, by its name
        Assert.False(layer1.TryGetProperty("shift", out _));                      // a buffer has no gradient

        var check = CliRunner.RunWith(TestKinds.Catalog, "gradcheck", problem, "--json");
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
        Assert.Contains("layers.1.scale", check.Stdout);

        var explain = CliRunner.RunWith(TestKinds.Catalog, "explain", problem, "--wrt", "layers.1.scale");
        Assert.True(explain.ExitCode == 0, explain.Stderr);
        Assert.Contains("z₂ = u₂ + shift₂", explain.Stdout);
        Assert.Contains("∂L/∂scale₂ = (∂L/∂u₂) ⊙ h₁", explain.Stdout);

        // faults name the field, as for dense layers; the built-in CLI does not know the kind
        File.WriteAllText(tmp.File("short.json"), File.ReadAllText(problem).Replace("\"scale\": [1.5, 0.7, -0.9]", "\"scale\": [1.5, 0.7]"));
        var shortScale = CliRunner.RunWith(TestKinds.Catalog, "grad", tmp.File("short.json"));
        Assert.Equal(2, shortScale.ExitCode);
        Assert.Contains("layers[1].scale is [2] but a test_scale layer 3→3 needs [3]", shortScale.Stderr);
        var plain = CliRunner.Run("grad", problem);
        Assert.Equal(2, plain.ExitCode);
        Assert.Contains($"layers[1].type: unknown layer type '{ScaleKind.KindName}' (known: dense, layernorm, batchnorm, dropout)", plain.Stderr);
    }

    /// <summary>diagnose --model turns any model into a problem: a saved network with the test-only layer is diagnosed.</summary>
    [Fact]
    public void DiagnosesAModelWithATestOnlyLayer()
    {
        using var tmp = new TempDir();
        var acts = TestKinds.Catalog.Activations;
        var rng = new Random(2);
        var net = new Backprop.Nn.Sequential<float>(
        [
            new Backprop.Nn.DenseLayer<float>(Tensor<float>.Random(rng, -1, 1, 5, 4), new Tensor<float>(5), acts.Create<float>("relu")),
            new ScaleLayer<float>(Tensor<float>.Random(rng, 0.5, 1.5, 5), new Tensor<float>(5), acts.Create<float>(TestKinds.Softsign)),
            new Backprop.Nn.DenseLayer<float>(Tensor<float>.Random(rng, -1, 1, 3, 5), new Tensor<float>(3), acts.Create<float>("identity")),
        ]);
        string model = tmp.File("scale.safetensors");
        ModelFile.Save(model, net, ["setosa", "versicolor", "virginica"]);
        var r = CliRunner.RunWith(TestKinds.Catalog, "diagnose", "--model", model, "--data", Iris, "--json");
        Assert.True(r.ExitCode == 0, r.Stderr);
        var layers = r.Json.GetProperty("layers");
        Assert.Equal(3, layers.GetArrayLength());
        Assert.Equal(TestKinds.Softsign, layers[1].GetProperty("activation").GetString());
        Assert.True(layers[1].TryGetProperty("saturated_fraction", out _));     // softsign declares a maximum derivative
    }
}
