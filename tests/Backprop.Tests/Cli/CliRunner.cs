using System.Text;
using System.Text.Json;

namespace Backprop.Tests.Cli;

/// <summary>Runs the backprop command in-process with captured stdout/stderr (serialised: Console is global).</summary>
public static class CliRunner
{
    private static readonly object Gate = new();

    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public string LastLine => Stdout.TrimEnd('\n', '\r').Split('\n')[^1];
        public JsonElement Json => JsonDocument.Parse(LastLine).RootElement;
    }

    public static Result Run(params string[] args) => RunWith(null, args);

    /// <summary>Runs the CLI built with <paramref name="catalog"/>'s activations, losses and layer kinds (null: the built-ins).</summary>
    public static Result RunWith(Backprop.Nn.Catalog? catalog, params string[] args)
    {
        lock (Gate)
        {
            var oldOut = Console.Out; var oldErr = Console.Error;
            var so = new StringWriter(); var se = new StringWriter();
            Console.SetOut(so); Console.SetError(se);
            try
            {
                int rc = catalog is null ? Backprop.Cli.Program.Main(args) : Backprop.Cli.Program.Run(args, catalog);
                return new Result(rc, so.ToString(), se.ToString());
            }
            finally
            {
                Console.SetOut(oldOut); Console.SetError(oldErr);
            }
        }
    }

    /// <summary>Runs <paramref name="action"/> with stdout captured (under the same lock as the CLI runs: Console is global) and returns what it printed.</summary>
    public static string CaptureConsole(Action action)
    {
        lock (Gate)
        {
            var oldOut = Console.Out;
            var so = new StringWriter();
            Console.SetOut(so);
            try { action(); }
            finally { Console.SetOut(oldOut); }
            return so.ToString();
        }
    }

    public static string RepoRoot
    {
        get
        {
            var d = new DirectoryInfo(AppContext.BaseDirectory);
            while (d is not null && !File.Exists(Path.Combine(d.FullName, "Backprop.slnx"))) d = d.Parent;
            return d?.FullName ?? throw new InvalidOperationException("repository root not found");
        }
    }

    public static string DataPath(params string[] parts) => Path.Combine([RepoRoot, "data", .. parts]);
}
