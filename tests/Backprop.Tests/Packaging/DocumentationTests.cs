using Backprop.Tests.Cli;

namespace Backprop.Tests.Packaging;

/// <summary>
/// Every public type and member of the library has an XML documentation comment, and the compiler keeps it so: the
/// library builds its documentation file (shipped in the package for IntelliSense) and `.editorconfig` makes a
/// missing comment (CS1591) or a mismatched one an error for all of src/Backprop, with no folder exempt.
/// </summary>
public class DocumentationTests
{
    [Fact]
    public void MissingDocumentationIsAnErrorForTheWholeLibrary()
    {
        var lines = File.ReadAllLines(Path.Combine(CliRunner.RepoRoot, ".editorconfig"));
        string? section = null;
        var severities = new List<(string Section, string Rule, string Severity)>();
        foreach (var raw in lines)
        {
            var line = raw.Trim();
            if (line.StartsWith('[')) { section = line; continue; }
            if (section is null || !line.StartsWith("dotnet_diagnostic.CS", StringComparison.Ordinal)) continue;
            var parts = line.Split('=', 2);
            severities.Add((section, parts[0].Trim().Split('.')[1], parts[1].Trim()));
        }
        foreach (var rule in new[] { "CS1591", "CS1573", "CS1572", "CS1574" })
            Assert.Contains(("[src/Backprop/**.cs]", rule, "error"), severities);
        // no later section turns a documentation rule off for part of the library
        Assert.DoesNotContain(severities, s => s.Section.StartsWith("[src/Backprop/", StringComparison.Ordinal) && s.Severity == "none");
    }

    [Fact]
    public void TheLibraryShipsItsDocumentationFile()
    {
        // the test's output folder holds the library's build output, documentation file included
        string xml = Path.Combine(AppContext.BaseDirectory, "Backprop.Core.xml");
        Assert.True(File.Exists(xml), $"{xml} is missing: GenerateDocumentationFile is off for the library");
        var doc = System.Xml.Linq.XDocument.Load(xml);
        var members = doc.Descendants("member").Select(m => (string?)m.Attribute("name")).ToHashSet();
        Assert.Contains("T:Backprop.Models.ModelBuilder", members);
        Assert.Contains("T:Backprop.Distributed.ICollective", members);
        Assert.Contains("T:Backprop.Training.Trainer`1", members);
    }
}
