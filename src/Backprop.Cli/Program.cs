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
    public static int Run(string[] args, Catalog catalog) => Cli.Run(BuildRoot(catalog), args);

    public static RootCommand BuildRoot(Catalog? catalog = null)
    {
        catalog ??= Catalog.Default;
        var root = new RootCommand("backprop: train and understand neural networks by backpropagation");
        root.Subcommands.Add(ProblemCommands.Grad(catalog));
        root.Subcommands.Add(ProblemCommands.JacobianCommand(catalog));
        root.Subcommands.Add(ProblemCommands.GradCheck(catalog));
        root.Subcommands.Add(TrainCommand.Create(catalog));
        root.Subcommands.Add(ModelCommands.Evaluate(catalog));
        root.Subcommands.Add(ModelCommands.Predict(catalog));
        root.Subcommands.Add(BenchCommands.Create(catalog));
        root.Subcommands.Add(InteropCommands.Import(catalog));
        root.Subcommands.Add(InteropCommands.Export(catalog));
        root.Subcommands.Add(SummaryCommand.Create(catalog));
        root.Subcommands.Add(ExplainCommand.Create(catalog));
        root.Subcommands.Add(ExplainCommand.Diagnose(catalog));
        return root;
    }
}
