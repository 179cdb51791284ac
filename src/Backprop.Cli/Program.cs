using System.CommandLine;
using Backprop.Cli.Commands;
using Backprop.Nn;

namespace Backprop.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        // Under mpirun every rank's stdout is a pseudo-terminal that Open MPI forwards, so .NET's console would write the
        // terminal's keypad-mode sequence (ESC[?1h ESC=) once per rank ahead of the output, even into a file or a pipe,
        // and the --json line would no longer parse. A rank's output is never a terminal the user types into: treat it
        // as a dumb one before the console is first touched.
        if (Backprop.Distributed.MpiCollective.UnderMpirun)
            Environment.SetEnvironmentVariable("TERM", "dumb");
        return Run(args, Catalog.Default);
    }

    /// <summary>
    /// The CLI with the activations, losses and layer kinds of <paramref name="catalog"/>: every command looks names up
    /// there, so a program that adds a kind (<c>Catalog.Default.With(...)</c>) gets a CLI that knows it.
    /// </summary>
    public static int Run(string[] args, Catalog catalog) => Cli.Run(RootFor(args, catalog), args);

    private const string Description = "backprop: train and understand neural networks by backpropagation";

    /// <summary>The subcommands, in the order <c>--help</c> lists them, each with the name its factory gives it.</summary>
    public static readonly IReadOnlyList<(string Name, Func<Catalog, Command> Create)> Subcommands =
    [
        ("grad", ProblemCommands.Grad),
        ("jacobian", ProblemCommands.JacobianCommand),
        ("gradcheck", ProblemCommands.GradCheck),
        ("train", TrainCommand.Create),
        ("evaluate", ModelCommands.Evaluate),
        ("predict", ModelCommands.Predict),
        ("bench", c => BenchCommands.Create(c)),
        ("import", InteropCommands.Import),
        ("export", InteropCommands.Export),
        ("summary", SummaryCommand.Create),
        ("explain", ExplainCommand.Create),
        ("diagnose", ExplainCommand.Diagnose),
    ];

    /// <summary>The whole command tree: every subcommand under a root with help, version and directives.</summary>
    public static RootCommand BuildRoot(Catalog? catalog = null)
    {
        catalog ??= Catalog.Default;
        var root = new RootCommand(Description);
        foreach (var (_, create) in Subcommands) root.Subcommands.Add(create(catalog));
        return root;
    }

    /// <summary>
    /// The tree that parses <paramref name="args"/> as the whole tree would. When the first word names a subcommand and
    /// nothing asks for help, the version, a directive or a response file, that is a plain root with just that
    /// subcommand: building every command, and System.CommandLine's RootCommand (its resource manager, help and version
    /// options, and the entry assembly's name, found through reflection), was 2.3 ms of a Native AOT `backprop grad`'s
    /// 13.6 ms and 80 of its 409 page faults (perf, Zen 5). The words it checks are the only ones the missing options
    /// and directives would take, so the parse is the same; anything else gets the whole tree. A lone
    /// <c>--version</c> gets a root without subcommands: it prints the version either way, and building the twelve
    /// subcommands was about 0.5 ms of its Native AOT start (perf stat, Zen 5 VM).
    /// </summary>
    public static Command RootFor(string[] args, Catalog catalog)
    {
        if (args is ["--version"]) return new RootCommand(Description);
        if (args.Length == 0 || args.Any(NeedsWholeTree)) return BuildRoot(catalog);
        foreach (var (name, create) in Subcommands)
            if (args[0] == name) return new Command("backprop", Description) { create(catalog) };
        return BuildRoot(catalog);
    }

    private static bool NeedsWholeTree(string arg) =>
        arg is "-h" or "/h" or "--help" or "-?" or "/?" or "--version" || arg.StartsWith('[') || arg.StartsWith('@');
}
