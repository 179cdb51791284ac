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
        Assert.Contains($"--activation '{TestKinds.Softsign}'", unknown.Stderr);
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
}
