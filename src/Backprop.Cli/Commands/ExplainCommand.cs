using System.CommandLine;
using System.Numerics;
using System.Text.Json;
using Backprop.Explain;
using Backprop.Problems;

namespace Backprop.Cli.Commands;

/// <summary>explain: a backpropagation derivation of one gradient of a problem, generated from its recorded graph.</summary>
public static class ExplainCommand
{
    public static Command Create()
    {
        var problem = new Argument<string>("PROBLEM") { Description = "A problem file (JSON)" };
        var wrt = new Option<string>("--wrt")
        {
            Description = "The gradient to derive: layers.I.weight | layers.I.bias | input",
            DefaultValueFactory = _ => "layers.0.weight",
        };
        var format = new Option<string>("--format") { Description = "text, markdown or latex", DefaultValueFactory = _ => "text" };
        format.AcceptOnlyFromAmong("text", "markdown", "latex");
        var notation = new Option<string>("--notation")
        {
            Description = "columns (δ_l = ∂L/∂z_l) or rows (the row-vector recurrences db_l, dA_l, dy_l)",
            DefaultValueFactory = _ => "columns",
        };
        notation.AcceptOnlyFromAmong("columns", "rows");
        var dtype = Cli.DTypeOption();
        var json = new Option<bool>("--json") { Description = "Print the derivation's steps as one JSON object on the last line" };
        var cmd = new Command("explain", "Derive one gradient of a problem step by step, with shapes and numbers, checked by finite differences")
        {
            problem, wrt, format, notation, dtype, json,
        };
        cmd.SetAction(r =>
        {
            var spec = ProblemFile.Load(r.GetValue(problem)!);
            var options = new Options(r.GetValue(wrt)!, ParseFormat(r.GetValue(format)!),
                r.GetValue(notation) == "rows" ? Notation.Rows : Notation.Columns, r.GetValue(json));
            bool passed = r.GetValue(dtype) == "float32" ? Run(new Problem<float>(spec), options) : Run(new Problem<double>(spec), options);
            return passed ? 0 : 1;
        });
        return cmd;
    }

    private sealed record Options(string Wrt, DerivationFormat Format, Notation Notation, bool Json);

    private static DerivationFormat ParseFormat(string s) => s switch
    {
        "markdown" => DerivationFormat.Markdown,
        "latex" => DerivationFormat.Latex,
        _ => DerivationFormat.Text,
    };

    private static bool Run<T>(Problem<T> p, Options o) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Derivation d;
        try { d = Explainer.Explain(p, o.Wrt, o.Notation); }
        catch (ArgumentException e) when (e is not ShapeMismatchException) { throw new UsageException(e.Message); }
        if (o.Json) WriteJson(d);
        else Console.Out.Write(DerivationRenderer.Render(d, o.Format));
        Console.Out.Flush();
        return d.FiniteDifference?.Passed ?? true;
    }

    private static void WriteJson(Derivation d)
    {
        Cli.WriteJsonLine(w =>
        {
            w.WriteStartObject();
            w.WriteString("problem", d.ProblemName);
            w.WriteString("dtype", d.DType);
            w.WriteString("wrt", d.Wrt);
            w.WriteString("notation", d.Notation == Notation.Rows ? "rows" : "columns");
            w.WriteString("objective", d.Objective);
            WriteSteps(w, "forward", d.Forward);
            WriteSteps(w, "backward", d.Backward);
            WriteSteps(w, "jacobian", d.Jacobian);
            if (d.FiniteDifference is { } fd)
            {
                w.WritePropertyName("finite_difference");
                w.WriteStartObject();
                w.WriteBoolean("passed", fd.Passed);
                w.WritePropertyName("max_rel_error"); JsonTensor.WriteNumber(w, fd.MaxRelError);
                w.WritePropertyName("max_abs_error"); JsonTensor.WriteNumber(w, fd.MaxAbsError);
                w.WriteEndObject();
            }
            w.WritePropertyName("max_tape_deviation"); JsonTensor.WriteNumber(w, d.MaxTapeDeviation);
            w.WriteEndObject();
        });
    }

    private static void WriteSteps(Utf8JsonWriter w, string name, IReadOnlyList<DerivationStep> steps)
    {
        w.WritePropertyName(name);
        w.WriteStartArray();
        foreach (var s in steps)
        {
            w.WriteStartObject();
            w.WriteString("name", s.Name);
            w.WriteString("formula", s.Formula);
            w.WriteString("shape", s.Shape);
            w.WritePropertyName("value"); JsonTensor.WriteMatrix(w, s.Value);
            w.WritePropertyName("factors");
            w.WriteStartArray();
            foreach (var f in s.Factors) w.WriteStringValue(f.Symbol);
            w.WriteEndArray();
            if (s.TapeDeviation is double dev) { w.WritePropertyName("tape_deviation"); JsonTensor.WriteNumber(w, dev); }
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }
}
