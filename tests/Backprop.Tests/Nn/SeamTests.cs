using System.Text.RegularExpressions;
using Backprop.Tests.Cli;

namespace Backprop.Tests.Nn;

/// <summary>
/// The library reaches layers and activations through their seams: only the Nn folder names the dense layer, and only
/// the activations' own file tells one activation from another by type. A new kind then needs no edit elsewhere.
/// </summary>
public sealed class SeamTests
{
    private static IEnumerable<(string Path, string Text)> LibrarySources()
    {
        var root = Path.Combine(CliRunner.RepoRoot, "src");
        foreach (var f in Directory.EnumerateFiles(root, "*.cs", SearchOption.AllDirectories))
        {
            var rel = Path.GetRelativePath(root, f).Replace('\\', '/');
            if (rel.Contains("/obj/", StringComparison.Ordinal) || rel.Contains("/bin/", StringComparison.Ordinal)) continue;
            yield return (rel, File.ReadAllText(f));
        }
    }

    [Fact]
    public void OnlyTheNnFolderNamesTheDenseLayer()
    {
        var offenders = LibrarySources()
            .Where(s => !s.Path.StartsWith("Backprop/Nn/", StringComparison.Ordinal) && s.Text.Contains("DenseLayer<", StringComparison.Ordinal))
            .Select(s => s.Path).ToList();
        Assert.True(offenders.Count == 0, $"DenseLayer used outside Nn (go through ILayer<T>): {string.Join(", ", offenders)}");
    }

    [Fact]
    public void NoCodeOutsideTheActivationsTellsActivationsApartByType()
    {
        var builtIns = new[] { "Identity", "Sigmoid", "Tanh", "Relu", "LeakyRelu", "Elu", "Softplus", "Gelu", "Silu", "Softmax" };
        var typeTest = new Regex($@"\b(is|case)\s+(not\s+)?({string.Join("|", builtIns)})<");
        var nameTest = new Regex(@"(Activation(\.Name)?|activation)\s*(==|is)\s*""(relu|sigmoid|tanh|leaky_relu|elu|gelu|silu|softplus|softmax)""");
        var offenders = LibrarySources()
            .Where(s => s.Path != "Backprop/Ops/Activations.cs")
            .Where(s => typeTest.IsMatch(s.Text) || nameTest.IsMatch(s.Text))
            .Select(s => s.Path).ToList();
        Assert.True(offenders.Count == 0, $"activation kinds told apart outside Activations.cs (use the activation's facts): {string.Join(", ", offenders)}");
    }
}
