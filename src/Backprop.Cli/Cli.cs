using System.CommandLine;
using System.CommandLine.Parsing;
using System.Text;
using System.Text.Json;
using System.Text.Encodings.Web;
using Backprop.Problems;

namespace Backprop.Cli;

/// <summary>An error in the user's input: exit code 2 and one line on stderr.</summary>
public sealed class UsageException(string message) : Exception(message);

public static class Cli
{
    public const int ExitUsage = 2;

    public static int Run(Command root, string[] args)
    {
        Console.OutputEncoding = Encoding.UTF8;
        try
        {
            var parse = root.Parse(args);
            // Under mpirun every rank parses the same command line: rank 0 alone says what is wrong with it (or prints
            // the help), and the job's exit status is its. The others end in silence with 0: MPI is not started yet, so
            // nothing orders their exits, and mpirun kills the ranks still running when one exits non-zero, which could
            // take rank 0 before it has said why (a CI run saw an empty stderr that way).
            string? comma = CommaInNumber(parse);
            if (NotFirstRank(args) && (parse.Action is System.CommandLine.Help.HelpAction || UnknownOption(parse, args) is not null
                || parse.Errors.Count > 0 && parse.Action is System.CommandLine.Invocation.ParseErrorAction || comma is not null))
                return 0;
            // an option the command does not have: said as such, not as a stray value ("Unrecognized command or argument
            // '4,3,3'") or as the path of a file that does not exist (a positional argument takes "--bogus")
            if (UnknownOption(parse, args) is { } unknown)
            {
                string command = CommandPath(parse.CommandResult);
                Console.Error.WriteLine(command.Length == 0
                    ? $"backprop: there is no option {unknown} (backprop --help lists the commands)"
                    : $"backprop: {command} has no option {unknown} (backprop {command} --help lists its options)");
                return ExitUsage;
            }
            if (parse.Errors.Count > 0 && parse.Action is System.CommandLine.Invocation.ParseErrorAction)
            {
                // a word that is no command ("backprop frobnicate") also leaves the command missing, which the parser
                // says first ("Required command was not provided."): the word is what is wrong
                var error = parse.Errors.FirstOrDefault(e => e.Message.StartsWith("Unrecognized command or argument", StringComparison.Ordinal))
                    ?? parse.Errors[0];
                if (CommandWords(error.Message, CommandPath(parse.CommandResult), parse.CommandResult.Command.Subcommands.Count > 0) is { } said)
                {
                    Console.Error.WriteLine($"backprop: {said}");
                    return ExitUsage;
                }
                string? option = error.SymbolResult switch
                {
                    System.CommandLine.Parsing.OptionResult o => o.Option.Name,
                    System.CommandLine.Parsing.ArgumentResult { Parent: System.CommandLine.Parsing.OptionResult o } => o.Option.Name,
                    _ => null,
                };
                Console.Error.WriteLine($"backprop: {InFlagWords(OneLine(error.Message), option)}");
                return ExitUsage;
            }
            if (comma is not null)
            {
                Console.Error.WriteLine($"backprop: {comma}");
                return ExitUsage;
            }
            return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e)
        {
            return Report(e);
        }
    }

    /// <summary>
    /// The parser's "Cannot parse argument '1e3' for option '--epochs' as expected type 'System.Int32'." in the flag's
    /// words: "--epochs 1e3: not a whole number from -2147483648 to 2147483647"; and its "Argument 'float16' not
    /// recognized. Must be one of: 'float32' 'float64'" for the value of <paramref name="option"/>: "--dtype float16:
    /// expected float32 or float64", as the options that check their own values say it. Other messages as they are.
    /// </summary>
    internal static string InFlagWords(string message, string? option = null)
    {
        var choice = System.Text.RegularExpressions.Regex.Match(message, @"^Argument '(?<value>.*)' not recognized\. Must be one of:(?<choices>(?: '[^']*')+)\.?$");
        if (choice.Success && option is not null)
        {
            string[] choices = [.. System.Text.RegularExpressions.Regex.Matches(choice.Groups["choices"].Value, "'([^']*)'").Select(c => c.Groups[1].Value)];
            string list = choices.Length == 1 ? choices[0] : string.Join(", ", choices[..^1]) + " or " + choices[^1];
            return $"{option} {choice.Groups["value"].Value}: expected {list}";
        }
        var m = System.Text.RegularExpressions.Regex.Match(message,
            @"^Cannot parse argument '(?<value>.*)' for option '(?<option>[^']+)' as expected type 'System\.(?:Nullable`1\[System\.)?(?<type>\w+)\]?'\.?$");
        if (!m.Success) return message;
        string what = m.Groups["type"].Value switch
        {
            "Int32" => $"not a whole number from {int.MinValue} to {int.MaxValue}",
            "Int64" => $"not a whole number from {long.MinValue} to {long.MaxValue}",
            "Double" or "Single" => "not a number",
            "Boolean" => "not true or false",
            _ => "not a value of the right kind",
        };
        return $"{m.Groups["option"].Value} {m.Groups["value"].Value}: {what}";
    }

    /// <summary>
    /// --threads in the flag's words, for every command that takes it: ComputeContext's own ArgumentOutOfRangeException
    /// would print .NET's "(Parameter 'threads') Actual value was 100000."
    /// </summary>
    public static void CheckThreads(int threads)
    {
        if (threads < 0) throw new UsageException($"--threads {threads}: must be 0 (all cores) or more");
        if (threads > Backprop.Kernels.ComputeContext.MaxThreads) throw new UsageException($"--threads {threads}: at most {Backprop.Kernels.ComputeContext.MaxThreads}");
    }

    /// <summary>Whether this process is a rank other than 0 of a `--distributed` job under mpirun (the launcher's environment says).</summary>
    private static bool NotFirstRank(string[] args) => Array.IndexOf(args, "--distributed") >= 0 && LaterRank;

    /// <summary>
    /// Whether this process is a rank other than 0 of an mpirun job (the launcher's environment says). A `--distributed`
    /// command line that is wrong is wrong on every rank alike, and only rank 0 says so (see <see cref="Run"/>).
    /// </summary>
    internal static bool LaterRank => Backprop.Distributed.MpiCollective.UnderMpirun
        && (Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_RANK") ?? Environment.GetEnvironmentVariable("PMIX_RANK")) is { } rank && rank != "0";

    /// <summary>
    /// The first token before a lone "--" that is written as a long option ("--name", "--name=value") but is no option
    /// of the parsed command or of the commands above it; null when there is none. Response files and directives are
    /// left to the parser.
    /// </summary>
    public static string? UnknownOption(ParseResult parse, IReadOnlyList<string> args)
    {
        var known = new HashSet<string>(StringComparer.Ordinal);
        for (SymbolResult? r = parse.CommandResult; r is not null; r = r.Parent)
        {
            if (r is not CommandResult c) continue;
            foreach (var o in c.Command.Options)
            {
                known.Add(o.Name);
                foreach (var alias in o.Aliases) known.Add(alias);
            }
        }
        foreach (var token in args)
        {
            if (token == "--") break;
            if (!token.StartsWith("--", StringComparison.Ordinal) || token.Length < 3) continue;
            string name = token.Split('=', ':')[0];
            if (!known.Contains(name)) return name;
        }
        return null;
    }

    /// <summary>
    /// A number option's value written with a comma, said in the flag's words ("--lr 0,5: not a number (decimals take a
    /// point: 0.5)"); null when there is none. The parser reads a comma in a number as a thousands separator, so
    /// `--lr 0,5` trained at the learning rate 5 and `--clip 1,000` clipped at 1000.
    /// </summary>
    internal static string? CommaInNumber(ParseResult parse)
    {
        for (SymbolResult? r = parse.CommandResult; r is not null; r = r.Parent)
        {
            if (r is not CommandResult c) continue;
            foreach (var child in c.Children)
            {
                if (child is not OptionResult o) continue;
                var type = Nullable.GetUnderlyingType(o.Option.ValueType) ?? o.Option.ValueType;
                if (type != typeof(double) && type != typeof(float)) continue;
                foreach (var token in o.Tokens)
                    if (token.Value.Contains(','))
                        return $"{o.Option.Name} {token.Value}: not a number (decimals take a point: {token.Value.Replace(',', '.')})";
            }
        }
        return null;
    }

    /// <summary>
    /// The parser's "Required command was not provided.", "Unrecognized command or argument 'x'." ("there is no command
    /// frobnicate (backprop --help lists the commands)" where the command has subcommands, "train: unexpected argument
    /// extra (…)" where it has none), "Required argument 'PROBLEM' missing for command: 'grad'." ("grad needs its
    /// PROBLEM argument (…)") and "Option '--model' is required." ("predict needs --model (…)") in the CLI's words; null
    /// for other messages.
    /// </summary>
    internal static string? CommandWords(string message, string command, bool hasSubcommands)
    {
        string help = command.Length == 0 ? "backprop --help" : $"backprop {command} --help";
        if (message.StartsWith("Required command was not provided", StringComparison.Ordinal))
            return $"{(command.Length == 0 ? "no command given" : $"{command}: no subcommand given")} ({help} lists them)";
        var word = System.Text.RegularExpressions.Regex.Match(message, @"^Unrecognized command or argument '(?<word>.*)'\.?$");
        if (word.Success && hasSubcommands)
            return $"there is no command {(command.Length == 0 ? "" : command + " ")}{word.Groups["word"].Value} ({help} lists the commands)";
        if (word.Success)
            return $"{command}: unexpected argument {word.Groups["word"].Value} ({help} lists what it takes)";
        var argument = System.Text.RegularExpressions.Regex.Match(message, @"^Required argument '(?<name>[^']+)' missing for command: '[^']*'\.?$");
        if (argument.Success)
            return $"{command} needs its {argument.Groups["name"].Value} argument ({help} says what it is)";
        var option = System.Text.RegularExpressions.Regex.Match(message, @"^Option '(?<name>[^']+)' is required\.?$");
        if (option.Success)
            return $"{command} needs {option.Groups["name"].Value} ({help} lists its options)";
        return null;
    }

    /// <summary>The subcommands' names down to <paramref name="command"/> ("bench train"); empty for the root.</summary>
    private static string CommandPath(CommandResult command)
    {
        var names = new List<string>();
        for (SymbolResult? r = command; r is { Parent: not null }; r = r.Parent)
            if (r is CommandResult c) names.Add(c.Command.Name);
        names.Reverse();
        return string.Join(' ', names);
    }

    /// <summary>The exit code <see cref="Report"/> gives for <paramref name="e"/>, without printing.</summary>
    public static int ExitCodeOf(Exception e) => e switch
    {
        UsageException or NotSupportedException or ProblemFormatException or ShapeMismatchException or ArgumentException or FormatException
            or FileNotFoundException or DirectoryNotFoundException or InvalidDataException or Backprop.IO.DataFormatException => ExitUsage,
        _ => 1,
    };

    /// <summary>Turns an exception into one line on stderr and an exit code; never a stack trace.</summary>
    public static int Report(Exception e)
    {
        var (line, code) = Describe(e);
        Console.Error.WriteLine($"backprop: {line}");
        return code;
    }

    /// <summary>What <see cref="Report"/> says of an exception (one line, without "backprop: ") and the exit code.</summary>
    public static (string Line, int Code) Describe(Exception e) => e switch
    {
        UsageException or NotSupportedException or ProblemFormatException or ShapeMismatchException or ArgumentException or FormatException
            or FileNotFoundException or DirectoryNotFoundException or InvalidDataException or Backprop.IO.DataFormatException => (OneLine(e.Message), ExitUsage),
        // a file the run cannot write (a full disk, a read-only file system, no permission): said as AtomicFile words it
        _ when Unwritable(e) => (OneLine(e.Message), ExitUsage),
        Backprop.Training.NonFiniteValueException diverged => (Diverged(diverged), 1),
        OutOfMemoryException => ("out of memory", 1),
        _ => ($"internal error ({e.GetType().Name}): {OneLine(e.Message)}", 1),
    };

    /// <summary>
    /// Whether <paramref name="e"/> is AtomicFile's failure to write a file, already worded as one line that names the
    /// file and the reason ("cannot write /dev/full: no space left on device").
    /// </summary>
    internal static bool Unwritable(Exception e) =>
        e is IOException or UnauthorizedAccessException && e.Message.StartsWith("cannot write ", StringComparison.Ordinal);

    /// <summary>
    /// A divergence in one line, its remedy worded in flags: "training diverged at step 7 (…): …; lower --lr (now 0.1)
    /// or use --clip; the last good checkpoint is run.ckpt".
    /// </summary>
    public static string Diverged(Backprop.Training.NonFiniteValueException e, double? learningRate = null, string? lastGoodCheckpoint = null) =>
        $"training diverged at {OneLine(e.Detail)}" +
        (e.Remedy == Backprop.Training.DivergenceRemedy.LowerLearningRateOrClip
            ? $"; lower --lr{(learningRate is double lr ? $" (now {lr})" : "")} or use --clip" : "") +
        (lastGoodCheckpoint is null ? "" : $"; the last good checkpoint is {lastGoodCheckpoint}");

    private static string OneLine(string s) =>
        System.Text.RegularExpressions.Regex.Replace(s.ReplaceLineEndings(" "), @"\s+", " ").Trim();

    /// <summary>A Spectre console on the current stdout (which tests redirect), wide enough for tables when piped.</summary>
    public static Spectre.Console.IAnsiConsole Ansi()
    {
        var console = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings
        {
            Out = new Spectre.Console.AnsiConsoleOutput(Console.Out),
        });
        if (Console.IsOutputRedirected || Console.Out is StringWriter) console.Profile.Width = 160;
        return console;
    }

    public static Option<string> DTypeOption()
    {
        var o = new Option<string>("--dtype") { Description = "Precision: float64 or float32", DefaultValueFactory = _ => "float64" };
        o.AcceptOnlyFromAmong("float64", "float32");
        return o;
    }

    /// <summary>Writes one compact JSON object as the last line of stdout.</summary>
    public static void WriteJsonLine(Action<Utf8JsonWriter> write)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = false, Encoder = RelaxedJsonEncoder.Instance }))
        {
            write(w);
        }
        Console.Out.WriteLine(Encoding.UTF8.GetString(ms.GetBuffer(), 0, (int)ms.Length));
        Console.Out.Flush();
    }
}

/// <summary>
/// <see cref="JavaScriptEncoder.UnsafeRelaxedJsonEscaping"/>, byte for byte, without building it for text that needs no
/// escaping. The built-in encoders share one static constructor that computes the allowed set of all 65,536 UTF-16 code
/// units for the relaxed encoder (and the default one): 0.3 ms and 8 page faults of a Native AOT <c>backprop grad</c>'s
/// start (perf, Zen 5 VM), to write property names that are plain ASCII. Printable ASCII other than <c>"</c> and
/// <c>\</c> is never escaped by the relaxed encoder; anything else is handed to it.
/// </summary>
internal sealed class RelaxedJsonEncoder : JavaScriptEncoder
{
    public static readonly RelaxedJsonEncoder Instance = new();

    private static JavaScriptEncoder Relaxed => JavaScriptEncoder.UnsafeRelaxedJsonEscaping;

    private static bool Plain(int c) => c is >= 0x20 and <= 0x7E and not '"' and not '\\';

    public override int MaxOutputCharactersPerInputCharacter => Relaxed.MaxOutputCharactersPerInputCharacter;

    public override bool WillEncode(int unicodeScalar) => !Plain(unicodeScalar) && Relaxed.WillEncode(unicodeScalar);

    public override unsafe int FindFirstCharacterToEncode(char* text, int textLength)
    {
        for (int i = 0; i < textLength; i++)
            if (!Plain(text[i])) return Relaxed.FindFirstCharacterToEncode(text, textLength);
        return -1;
    }

    public override int FindFirstCharacterToEncodeUtf8(ReadOnlySpan<byte> utf8Text)
    {
        foreach (byte b in utf8Text)
            if (!Plain(b)) return Relaxed.FindFirstCharacterToEncodeUtf8(utf8Text);
        return -1;
    }

    public override unsafe bool TryEncodeUnicodeScalar(int unicodeScalar, char* buffer, int bufferLength, out int numberOfCharactersWritten) =>
        Relaxed.TryEncodeUnicodeScalar(unicodeScalar, buffer, bufferLength, out numberOfCharactersWritten);

    public override System.Buffers.OperationStatus EncodeUtf8(ReadOnlySpan<byte> utf8Source, Span<byte> utf8Destination,
        out int bytesConsumed, out int bytesWritten, bool isFinalBlock = true) =>
        Relaxed.EncodeUtf8(utf8Source, utf8Destination, out bytesConsumed, out bytesWritten, isFinalBlock);

    public override System.Buffers.OperationStatus Encode(ReadOnlySpan<char> source, Span<char> destination,
        out int charsConsumed, out int charsWritten, bool isFinalBlock = true) =>
        Relaxed.Encode(source, destination, out charsConsumed, out charsWritten, isFinalBlock);

    public override string Encode(string value) => Relaxed.Encode(value);

    public override void Encode(TextWriter output, char[] value, int startIndex, int characterCount) =>
        Relaxed.Encode(output, value, startIndex, characterCount);

    public override void Encode(TextWriter output, string value, int startIndex, int characterCount) =>
        Relaxed.Encode(output, value, startIndex, characterCount);
}

/// <summary>JSON helpers for tensors: matrices as nested arrays, in shortest round-trip form.</summary>
public static class JsonTensor
{
    public static void WriteNumber(Utf8JsonWriter w, double v)
    {
        if (double.IsFinite(v)) w.WriteNumberValue(v);
        else w.WriteNullValue();
    }

    public static void WriteMatrix<T>(Utf8JsonWriter w, Tensor<T> t) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        int r = t.Rows, c = t.Cols;
        w.WriteStartArray();
        for (int i = 0; i < r; i++)
        {
            w.WriteStartArray();
            for (int j = 0; j < c; j++) WriteNumber(w, double.CreateTruncating(t.Data[i * c + j]));
            w.WriteEndArray();
        }
        w.WriteEndArray();
    }

    /// <summary>A rank-3 tensor as an array of matrices, e.g. per-sample weight gradients [batch × out × in].</summary>
    public static void WriteMatrices<T>(Utf8JsonWriter w, Tensor<T> t) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        int n = t.Dim(0), rows = t.Dim(1), cols = t.Dim(2);
        w.WriteStartArray();
        for (int i = 0; i < n; i++)
        {
            w.WriteStartArray();
            for (int r = 0; r < rows; r++)
            {
                w.WriteStartArray();
                for (int c = 0; c < cols; c++) WriteNumber(w, double.CreateTruncating(t.Data[(i * rows + r) * cols + c]));
                w.WriteEndArray();
            }
            w.WriteEndArray();
        }
        w.WriteEndArray();
    }

    /// <summary>
    /// Each parameter of one layer's per-sample gradients under its name: a dense layer's "weight" [batch × out × in] and
    /// "bias" [batch × out], a norm layer's "weight" (γ) and "bias" (β) [batch × F]; nothing for a layer without parameters.
    /// </summary>
    public static void WritePerSample(Utf8JsonWriter w, Backprop.Explain.PerSampleGradient g)
    {
        foreach (var p in g.Parameters)
        {
            w.WritePropertyName(p.Name);
            if (p.Gradient.Rank == 3) WriteMatrices(w, p.Gradient); else WriteMatrix(w, p.Gradient);
        }
    }

    public static void WriteVector<T>(Utf8JsonWriter w, Tensor<T> t) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        w.WriteStartArray();
        foreach (var v in t.Data) WriteNumber(w, double.CreateTruncating(v));
        w.WriteEndArray();
    }
}
