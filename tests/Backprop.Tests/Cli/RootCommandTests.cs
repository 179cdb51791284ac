using System.CommandLine;
using Backprop.Cli;
using Backprop.Nn;
using Xunit;

namespace Backprop.Tests.Cli;

/// <summary>
/// The CLI builds only the subcommand it runs when it can (Program.RootFor, a start-up saving): these check that the
/// lean tree is named as the whole one and parses every command line as the whole tree does.
/// </summary>
public class RootCommandTests
{
    [Fact]
    public void EachSubcommandIsListedUnderTheNameItsFactoryGives()
    {
        var names = Program.Subcommands.Select(s => s.Create(Catalog.Default).Name).ToArray();
        Assert.Equal(Program.Subcommands.Select(s => s.Name), names);
        Assert.Equal(names, Program.BuildRoot().Subcommands.Select(c => c.Name));
    }

    public static TheoryData<string> CommandLines =>
    [
        "grad data/problems/random-004.json",
        "grad data/problems/random-004.json --wrt W1 --json",
        "grad --no-such-option x.json",
        "grad",
        "train --epochs 2 --batch 32 --lr 0.1 --threads 1",
        "train --epochs two",
        "bench gemm --m 64 --n 64 --k 64 --json",
        "bench nothing",
        "explain data/problems/random-004.json --format latex",
        "summary --arch 784-128-10",
        "evaluate --model m.safetensors --data d.csv extra",
        "diagnose data/problems/random-004.json",
    ];

    [Theory]
    [MemberData(nameof(CommandLines))]
    public void TheLeanTreeParsesAsTheWholeTree(string line)
    {
        string[] args = line.Split(' ');
        var lean = Program.RootFor(args, Catalog.Default);
        Assert.IsNotType<RootCommand>(lean);                     // the saving is taken for these lines
        var whole = Program.BuildRoot().Parse(args);
        var parsed = lean.Parse(args);
        Assert.Equal(Describe(whole), Describe(parsed));
    }

    [Theory]
    [InlineData("--help")]
    [InlineData("grad --help")]
    [InlineData("grad x.json -h")]
    [InlineData("--version")]
    [InlineData("[suggest] gr")]
    [InlineData("@args.rsp")]
    [InlineData("gard x.json")]
    [InlineData("")]
    public void HelpVersionDirectivesResponseFilesAndUnknownWordsGetTheWholeTree(string line)
    {
        string[] args = line.Length == 0 ? [] : line.Split(' ');
        Assert.IsType<RootCommand>(Program.RootFor(args, Catalog.Default));
    }

    private static string Describe(ParseResult r)
    {
        var parts = new List<string> { $"command={string.Join('/', Path(r.CommandResult))}" };
        parts.AddRange(r.Errors.Select(e => $"error={e.Message}"));
        parts.AddRange(r.UnmatchedTokens.Select(t => $"unmatched={t}"));
        foreach (var o in r.CommandResult.Command.Options)
            if (r.GetResult(o) is { } result) parts.Add($"{o.Name}=[{string.Join(",", result.Tokens.Select(t => t.Value))}]");
        foreach (var a in r.CommandResult.Command.Arguments)
            if (r.GetResult(a) is { } result) parts.Add($"{a.Name}=[{string.Join(",", result.Tokens.Select(t => t.Value))}]");
        return string.Join("\n", parts);
    }

    private static IEnumerable<string> Path(System.CommandLine.Parsing.CommandResult? c)
    {
        var names = new Stack<string>();
        for (; c is not null; c = c.Parent as System.CommandLine.Parsing.CommandResult)
            if (c.Command is not RootCommand && c.Command.Name != "backprop") names.Push(c.Command.Name);
        return names;
    }
}

/// <summary>An option the command does not have is named as such, in one line, exit 2, before anything runs.</summary>
public class UnknownOptionTests
{
    [Theory]
    [InlineData("diagnose --layers 4,3,3", "diagnose has no option --layers (backprop diagnose --help lists its options)")]
    [InlineData("grad --bogus", "grad has no option --bogus")]   // a positional argument took "--bogus" as a file name
    [InlineData("train --epochs 1 --bogus 3", "train has no option --bogus")]
    [InlineData("bench train --steps=5 --bogus=1", "bench train has no option --bogus")]
    [InlineData("--bogus", "there is no option --bogus (backprop --help lists the commands)")]
    public void IsOneLineNamingTheOptionAndTheCommand(string line, string expected)
    {
        var r = CliRunner.Run(line.Split(' '));
        Assert.Equal(2, r.ExitCode);
        Assert.Equal($"backprop: {expected}".Split(" (")[0], r.Stderr.Trim().Split(" (")[0]);
        Assert.Contains(expected, r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    [Theory]
    [InlineData("summary --arch=4-8-3")]                 // "--name=value" of a known option
    [InlineData("summary --arch 4-8-3 --json")]
    [InlineData("grad data/problems/seed-fc-relu-batch-mean.json -- --not-an-option")]   // after "--" nothing is an option
    public void KnownOptionsAndTokensAfterTheEndOfOptionsPass(string line)
    {
        var args = line.Split(' ').Select(a => a.StartsWith("data/", StringComparison.Ordinal) ? Path.Combine(CliRunner.RepoRoot, a) : a).ToArray();
        Assert.Null(Backprop.Cli.Cli.UnknownOption(Program.BuildRoot().Parse(args), args));
    }
}
