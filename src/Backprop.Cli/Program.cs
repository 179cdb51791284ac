using System.CommandLine;
using Backprop.Cli.Commands;

namespace Backprop.Cli;

public static class Program
{
    public static int Main(string[] args) => Cli.Run(BuildRoot(), args);

    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("backprop: train and understand neural networks by backpropagation");
        root.Subcommands.Add(ProblemCommands.Grad());
        root.Subcommands.Add(ProblemCommands.JacobianCommand());
        root.Subcommands.Add(ProblemCommands.GradCheck());
        root.Subcommands.Add(TrainCommand.Create());
        root.Subcommands.Add(ModelCommands.Evaluate());
        root.Subcommands.Add(ModelCommands.Predict());
        root.Subcommands.Add(BenchCommands.Create());
        root.Subcommands.Add(InteropCommands.Import());
        root.Subcommands.Add(InteropCommands.Export());
        root.Subcommands.Add(ExplainCommand.Create());
        root.Subcommands.Add(ExplainCommand.Diagnose());
        return root;
    }
}
