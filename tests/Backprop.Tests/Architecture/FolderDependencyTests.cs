using System.Reflection;
using System.Text.RegularExpressions;
using Backprop.Tests.Cli;

namespace Backprop.Tests.Architecture;

/// <summary>
/// The library's folders are layers: each folder is one namespace, and the graph of which folder uses which has no
/// cycle and is the graph drawn in docs/architecture.md. Read from the sources: a file in folder F uses folder G when it
/// names Backprop.G (a using, an alias, a qualified name) or writes G.Type for a type declared in G.
/// </summary>
public partial class FolderDependencyTests
{
    private static readonly string LibraryRoot = Path.Combine(CliRunner.RepoRoot, "src", "Backprop");
    private static readonly Assembly Library = typeof(Backprop.Core.Tensor<>).Assembly;

    private static string[] Folders() =>
        Directory.GetDirectories(LibraryRoot).Select(Path.GetFileName).Where(f => f is not ("bin" or "obj")).Select(f => f!).OrderBy(f => f).ToArray();

    private static IEnumerable<(string Folder, string File)> SourceFiles() =>
        Folders().SelectMany(f => Directory.EnumerateFiles(Path.Combine(LibraryRoot, f), "*.cs", SearchOption.AllDirectories).Select(p => (f, p)));

    [Fact]
    public void Every_file_declares_the_namespace_of_its_folder()
    {
        var wrong = new List<string>();
        foreach (var (folder, file) in SourceFiles())
        {
            var ns = NamespaceDeclaration().Matches(File.ReadAllText(file)).Select(m => m.Groups[1].Value).ToArray();
            if (ns.Length == 0 || ns.Any(n => n != $"Backprop.{folder}" && !n.StartsWith($"Backprop.{folder}.", StringComparison.Ordinal)))
                wrong.Add($"{Path.GetRelativePath(LibraryRoot, file)}: {string.Join(", ", ns.DefaultIfEmpty("(none)"))}");
        }
        Assert.True(wrong.Count == 0, "files outside their folder's namespace:\n" + string.Join("\n", wrong));
    }

    [Fact]
    public void No_library_type_sits_in_the_root_namespace()
    {
        // A type in namespace Backprop would be visible from every folder without a using, hiding a dependency.
        var root = Library.GetTypes().Where(t => t.Namespace == "Backprop" && !t.IsDefined(typeof(System.Runtime.CompilerServices.CompilerGeneratedAttribute)))
            .Select(t => t.FullName).ToArray();
        Assert.True(root.Length == 0, "types in the root namespace: " + string.Join(", ", root));
    }

    [Fact]
    public void The_folder_graph_has_no_cycle()
    {
        var graph = ActualGraph();
        var cycle = FindCycle(graph);
        Assert.True(cycle is null, $"folders depend on each other in a cycle: {string.Join(" → ", cycle ?? [])}");
    }

    [Fact]
    public void The_folder_graph_is_the_one_in_the_architecture_document()
    {
        var actual = ActualGraph().SelectMany(kv => kv.Value.Select(to => $"{kv.Key} --> {to}")).Order().ToArray();
        var documented = DocumentedEdges().Order().ToArray();
        var missing = actual.Except(documented).ToArray();
        var stale = documented.Except(actual).ToArray();
        Assert.True(missing.Length == 0 && stale.Length == 0,
            "docs/architecture.md's folder graph differs from the sources.\n" +
            $"used but not drawn: {string.Join("; ", missing)}\ndrawn but not used: {string.Join("; ", stale)}");
    }

    [Fact]
    public void The_reader_sees_each_kind_of_reference()
    {
        // The dependency reader itself: a using, a qualified name, a G.Type reference and an alias count; a comment, a
        // string and a member access that merely looks like a folder name do not.
        var types = new Dictionary<string, HashSet<string>> { ["Nn"] = ["DenseLayer"], ["Data"] = ["LabeledData"], ["IO"] = ["AtomicFile"], ["Kernels"] = ["Gemm"] };
        Assert.Equal(["Nn"], Uses("Training", "using Backprop.Nn;\nclass X {}", types));
        Assert.Equal(["Data"], Uses("Training", "class X { Backprop.Data.LabeledData? d; }", types));
        Assert.Equal(["Kernels"], Uses("Ops", "class X { void F() => Kernels.Gemm.Run(); }", types));
        Assert.Equal(["IO"], Uses("Nn", "using Writer = Backprop.IO.AtomicFile;", types));
        Assert.Equal(["Nn"], Uses("Ops", "class X { string u = \"http://x\"; char q = '\"'; string v = @\"a\"\"b\"; Backprop.Nn.DenseLayer? d; }", types));
        Assert.Equal(["Data"], Uses("Ops", "class X { string s = $\"{Backprop.Data.LabeledData.Count} rows\"; }", types));
        Assert.Empty(Uses("Ops", "// uses Backprop.Nn\nclass X { string s = \"Backprop.Data\"; void F(Tensor t) => t.Data.Slice(0); }", types));
    }

    [Fact]
    public void The_cycle_finder_finds_a_cycle_and_only_a_cycle()
    {
        var cyclic = new Dictionary<string, SortedSet<string>> { ["Nn"] = ["Ops"], ["Ops"] = ["Autodiff"], ["Autodiff"] = ["Ops"] };
        Assert.Equal(["Ops", "Autodiff", "Ops"], FindCycle(cyclic));
        var layered = new Dictionary<string, SortedSet<string>> { ["Nn"] = ["Ops", "Core"], ["Ops"] = ["Core"], ["Core"] = [] };
        Assert.Null(FindCycle(layered));
    }

    private static Dictionary<string, SortedSet<string>> ActualGraph()
    {
        var folders = Folders();
        var types = folders.ToDictionary(f => f, f => Library.GetTypes()
            .Where(t => t.Namespace == $"Backprop.{f}").Select(t => t.Name.Split('`')[0]).ToHashSet());
        var graph = folders.ToDictionary(f => f, _ => new SortedSet<string>());
        foreach (var (folder, file) in SourceFiles())
            foreach (var used in Uses(folder, File.ReadAllText(file), types))
                graph[folder].Add(used);
        return graph;
    }

    private static SortedSet<string> Uses(string folder, string source, IReadOnlyDictionary<string, HashSet<string>> typesByFolder)
    {
        string code = WithoutCommentsAndStrings(source);
        var used = new SortedSet<string>();
        foreach (Match m in QualifiedName().Matches(code))
            if (m.Groups[1].Value != folder && typesByFolder.ContainsKey(m.Groups[1].Value)) used.Add(m.Groups[1].Value);
        foreach (Match m in FolderDotType().Matches(code))
        {
            string g = m.Groups[1].Value;
            if (g != folder && typesByFolder.TryGetValue(g, out var types) && types.Contains(m.Groups[2].Value)) used.Add(g);
        }
        return used;
    }

    /// <summary>
    /// Drops comments, character literals and plain and verbatim string literals; keeps interpolated strings whole, since
    /// their holes are code (what they add is at worst a dependency that is not there, never one missed).
    /// </summary>
    private static string WithoutCommentsAndStrings(string s)
    {
        var sb = new System.Text.StringBuilder(s.Length);
        int i = 0;
        while (i < s.Length)
        {
            char c = s[i];
            char next = i + 1 < s.Length ? s[i + 1] : '\0';
            if (c == '/' && next == '/') { while (i < s.Length && s[i] != '\n') i++; continue; }
            if (c == '/' && next == '*') { int end = s.IndexOf("*/", i + 2, StringComparison.Ordinal); i = end < 0 ? s.Length : end + 2; sb.Append(' '); continue; }
            if (c == '\'') { i++; while (i < s.Length && s[i] != '\'') i += s[i] == '\\' ? 2 : 1; i++; sb.Append("' '"); continue; }
            if (c == '@' && next == '"') { i += 2; while (i < s.Length && !(s[i] == '"' && (i + 1 >= s.Length || s[i + 1] != '"'))) i += s[i] == '"' ? 2 : 1; i++; sb.Append("\"\""); continue; }
            if (c == '"' && (i == 0 || (s[i - 1] != '$' && s[i - 1] != '@')))
            {
                i++;
                while (i < s.Length && s[i] != '"' && s[i] != '\n') i += s[i] == '\\' ? 2 : 1;
                i++; sb.Append("\"\""); continue;
            }
            if (c == '$' && (next == '"' || next == '@'))
            {
                // An interpolated string, copied whole: skip to its closing quote, counting braces.
                int depth = 0; sb.Append(c); i++;
                while (i < s.Length && s[i] != '"') sb.Append(s[i++]);
                sb.Append(s[i++]);
                while (i < s.Length)
                {
                    char d = s[i];
                    if (d == '\\' && depth == 0) { sb.Append(d).Append(s[i + 1]); i += 2; continue; }
                    if (d == '{') depth++;
                    else if (d == '}') depth = Math.Max(0, depth - 1);
                    else if (d == '"' && depth == 0) { sb.Append(d); i++; break; }
                    sb.Append(d); i++;
                }
                continue;
            }
            sb.Append(c); i++;
        }
        return sb.ToString();
    }

    private static IEnumerable<string> DocumentedEdges()
    {
        string doc = File.ReadAllText(Path.Combine(CliRunner.RepoRoot, "docs", "architecture.md"));
        var block = MermaidBlock().Match(doc);
        Assert.True(block.Success, "docs/architecture.md has no ```mermaid block with the folder graph");
        return DocumentedEdge().Matches(block.Groups[1].Value).Select(m => $"{m.Groups[1].Value} --> {m.Groups[2].Value}");
    }

    private static List<string>? FindCycle(Dictionary<string, SortedSet<string>> graph)
    {
        var state = graph.Keys.ToDictionary(k => k, _ => 0); // 0 unseen, 1 on the path, 2 done
        var path = new List<string>();
        List<string>? Visit(string n)
        {
            state[n] = 1; path.Add(n);
            foreach (var m in graph[n])
            {
                if (state.GetValueOrDefault(m) == 1) return [.. path.SkipWhile(p => p != m), m];
                if (state.GetValueOrDefault(m) == 0 && graph.ContainsKey(m) && Visit(m) is { } c) return c;
            }
            state[n] = 2; path.RemoveAt(path.Count - 1);
            return null;
        }
        foreach (var n in graph.Keys)
            if (state[n] == 0 && Visit(n) is { } c) return c;
        return null;
    }

    [GeneratedRegex(@"^\s*namespace\s+([\w.]+)", RegexOptions.Multiline)]
    private static partial Regex NamespaceDeclaration();
    [GeneratedRegex(@"\bBackprop\.(\w+)")]
    private static partial Regex QualifiedName();
    [GeneratedRegex(@"(?<![\w.])(\w+)\.([A-Z]\w*)")]
    private static partial Regex FolderDotType();
    [GeneratedRegex(@"```mermaid\s*\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex MermaidBlock();
    [GeneratedRegex(@"^\s*(\w+)\s*-->\s*(\w+)\s*$", RegexOptions.Multiline)]
    private static partial Regex DocumentedEdge();
}
