using System.Text.RegularExpressions;
using Backprop.Tests.Cli;

namespace Backprop.Tests.Models;

/// <summary>
/// Every public type and member of the high-level API (src/Backprop/Models) has an XML documentation comment: what
/// IntelliSense shows a user. (Read from the sources: the compiler's CS1591 is not on for the whole library yet.)
/// </summary>
public sealed partial class ModelsDocumentationTests
{
    [Fact]
    public void Every_public_declaration_has_a_doc_comment()
    {
        var folder = Path.Combine(CliRunner.RepoRoot, "src", "Backprop", "Models");
        var undocumented = new List<string>();
        int declarations = 0;
        foreach (var file in Directory.EnumerateFiles(folder, "*.cs"))
        {
            var lines = File.ReadAllLines(file);
            for (int i = 0; i < lines.Length; i++)
            {
                if (!PublicDeclaration().IsMatch(lines[i])) continue;
                declarations++;
                int j = i - 1;
                while (j >= 0 && (lines[j].TrimStart().StartsWith('['))) j--;
                if (j < 0 || !lines[j].TrimStart().StartsWith("///", StringComparison.Ordinal))
                    undocumented.Add($"{Path.GetFileName(file)}:{i + 1}: {lines[i].Trim()}");
            }
        }
        Assert.True(declarations > 40, $"only {declarations} public declarations found: the reader is broken");
        Assert.True(undocumented.Count == 0, "public declarations without a /// comment:\n" + string.Join("\n", undocumented));
    }

    [GeneratedRegex(@"^\s*public\s")]
    private static partial Regex PublicDeclaration();
}
