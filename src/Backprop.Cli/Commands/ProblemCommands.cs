using System.CommandLine;
using System.Numerics;
using System.Text.Json;
using Backprop.Nn;
using Backprop.Problems;
using Spectre.Console;

namespace Backprop.Cli.Commands;

/// <summary>The commands that read a problem file: grad, jacobian, gradcheck.</summary>
public static class ProblemCommands
{
    private static Argument<string> ProblemArgument() => new("PROBLEM") { Description = "A problem file (JSON)" };

    public static Command Grad(Catalog catalog)
    {
        var problem = ProblemArgument();
        var dtype = Cli.DTypeOption();
        var perSample = new Option<bool>("--per-sample")
        {
            Description = "Print per-sample gradients instead: for every layer's parameters, the gradient of each sample's own loss " +
                "(a dense layer's closed form is δ_iᵀ·x_i); refused for batch norm in training mode, which couples the samples",
        };
        var cmd = new Command("grad", "Print the loss, the output and the gradient of every weight, bias and the input as one JSON object")
        {
            problem, dtype, perSample,
        };
        cmd.SetAction(r =>
        {
            var spec = ProblemFile.Load(r.GetValue(problem)!, catalog);
            bool f32 = r.GetValue(dtype) == "float32";
            if (r.GetValue(perSample)) { if (f32) WritePerSample(new Problem<float>(spec, catalog)); else WritePerSample(new Problem<double>(spec, catalog)); }
            else if (f32) WriteGradients(new Problem<float>(spec, catalog));
            else WriteGradients(new Problem<double>(spec, catalog));
            return 0;
        });
        return cmd;
    }

    /// <summary>
    /// {"batch_factor": s, "layers": [{"weight": [batch × …], "bias": [batch × …]}, {} for dropout, …]}, where L = s·Σ_i ℓ_i.
    /// A batch norm in training mode couples the samples: refused (exit 2) with the reason.
    /// </summary>
    private static void WritePerSample<T>(Problem<T> p) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var layers = Backprop.Explain.PerSampleGradients.ForAllLayers(p);
        Cli.WriteJsonLine(w =>
        {
            w.WriteStartObject();
            w.WriteNumber("batch_factor", layers[0].BatchFactor);
            w.WritePropertyName("layers");
            w.WriteStartArray();
            foreach (var g in layers)
            {
                w.WriteStartObject();
                JsonTensor.WritePerSample(w, g);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        });
    }

    private static void WriteGradients<T>(Problem<T> p) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var g = p.Gradients();
        Cli.WriteJsonLine(w =>
        {
            w.WriteStartObject();
            if (g.Loss is double loss) { w.WritePropertyName("loss"); JsonTensor.WriteNumber(w, loss); }
            w.WritePropertyName("output"); JsonTensor.WriteMatrix(w, g.Output);
            w.WritePropertyName("gradients");
            w.WriteStartObject();
            w.WritePropertyName("layers");
            w.WriteStartArray();
            foreach (var layer in g.LayerGradients)
            {
                w.WriteStartObject();
                foreach (var (name, grad) in layer)
                {
                    w.WritePropertyName(name);
                    if (grad.Rank == 2) JsonTensor.WriteMatrix(w, grad); else JsonTensor.WriteVector(w, grad);
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WritePropertyName("input"); JsonTensor.WriteMatrix(w, g.InputGradient);
            w.WriteEndObject();
            if (g.LayerBuffers.Any(l => l.Count > 0))
            {
                // the buffers after the forward pass: a training batch norm's updated running statistics
                w.WritePropertyName("buffers");
                w.WriteStartObject();
                w.WritePropertyName("layers");
                w.WriteStartArray();
                foreach (var layer in g.LayerBuffers)
                {
                    w.WriteStartObject();
                    foreach (var (name, value) in layer)
                    {
                        w.WritePropertyName(name);
                        if (value.Rank == 2) JsonTensor.WriteMatrix(w, value); else JsonTensor.WriteVector(w, value);
                    }
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndObject();
        });
    }

    public static Command JacobianCommand(Catalog catalog)
    {
        var problem = ProblemArgument();
        var dtype = Cli.DTypeOption();
        var wrt = new Option<string>("--wrt")
        {
            Description = "layers.I.weight | layers.I.bias | layers.I.output | input",
            Required = true,
        };
        var cmd = new Command("jacobian", "Print d(flattened output)/d(WRT) as rows, one per output element (row-major)")
        {
            problem, dtype, wrt,
        };
        cmd.SetAction(r =>
        {
            var spec = ProblemFile.Load(r.GetValue(problem)!, catalog);
            if (r.GetValue(dtype) == "float32") WriteJacobian(new Problem<float>(spec, catalog), r.GetValue(wrt)!);
            else WriteJacobian(new Problem<double>(spec, catalog), r.GetValue(wrt)!);
            return 0;
        });
        return cmd;
    }

    private static void WriteJacobian<T>(Problem<T> p, string wrt) where T : unmanaged, IFloatingPointIeee754<T>
    {
        Var<T> target;
        try { target = p.Resolve(wrt); }
        catch (UnknownValueException e) { throw new UsageException($"--wrt {e.Message}"); }
        var j = p.Jacobian(target);
        Cli.WriteJsonLine(w =>
        {
            w.WriteStartObject();
            w.WritePropertyName("rows"); JsonTensor.WriteMatrix(w, j);
            w.WritePropertyName("shape");
            w.WriteStartArray(); w.WriteNumberValue(j.Dim(0)); w.WriteNumberValue(j.Dim(1)); w.WriteEndArray();
            w.WriteEndObject();
        });
    }

    public static Command GradCheck(Catalog catalog)
    {
        var problem = ProblemArgument();
        var dtype = Cli.DTypeOption();
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a table" };
        var cmd = new Command("gradcheck", "Compare backprop's gradients with central finite differences; exit 1 if any tensor fails")
        {
            problem, dtype, json,
        };
        cmd.SetAction(r =>
        {
            var spec = ProblemFile.Load(r.GetValue(problem)!, catalog);
            var report = r.GetValue(dtype) == "float32" ? CheckProblem<float>(spec, catalog) : CheckProblem<double>(spec, catalog);
            if (r.GetValue(json)) WriteReportJson(report); else WriteReportTable(spec.Name, report);
            return report.Passed ? 0 : 1;
        });
        return cmd;
    }

    /// <summary>
    /// Checks a problem's gradients in precision <typeparamref name="T"/> against central differences of a
    /// float64 copy of the same problem (its numbers rounded to <typeparamref name="T"/> first).
    /// </summary>
    public static GradientCheckReport CheckProblem<T>(ProblemSpec spec, Catalog? catalog = null) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var p = new Problem<T>(spec, catalog);
        p.Tape.Forward();
        p.Backward();
        var analytic = Leaves(p).Select(l => l.Leaf.Grad.ToDoubleArray()).ToList();
        var reference = typeof(T) == typeof(double) ? (Problem<double>)(object)p : new Problem<double>(spec.RoundedTo<T>(), catalog);
        var (atol, rtol) = GradientCheck.TolerancesFor<T>();
        return GradientCheck.Compare(reference.Tape, reference.Objective, Leaves(reference), analytic,
            typeof(T) == typeof(float) ? "float32" : "float64", atol, rtol);
    }

    private static List<(string Name, Var<T> Leaf)> Leaves<T>(Problem<T> p) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var leaves = p.Network.NamedParameters().ToList();
        leaves.Add(("input", p.Input));
        return leaves;
    }

    private static string Index(int[] idx) => "[" + string.Join(",", idx) + "]";

    private static void WriteReportTable(string name, GradientCheckReport report)
    {
        var table = new Table().Title(Markup.Escape($"gradcheck {name} ({report.DType}, step h = {report.Step:G3}·max(1,|x|))"));
        table.AddColumns("tensor", "shape", "max abs error", "max rel error", "worst element", "analytic", "numeric", "result");
        foreach (var e in report.Entries)
        {
            table.AddRow(
                Markup.Escape(e.Name), Markup.Escape(ShapeUtil.Format(e.Shape)), e.MaxAbsError.ToString("0.00e+00"), e.MaxRelError.ToString("0.00e+00"),
                Markup.Escape(Index(e.WorstIndex)), e.WorstAnalytic.ToString("G8"), e.WorstNumeric.ToString("G8"),
                e.Passed ? "[green]pass[/]" : "[red]FAIL[/]");
        }
        Cli.Ansi().Write(table);
        Console.WriteLine(report.Passed
            ? $"all {report.Entries.Count} tensors pass (|a − n| ≤ {report.AbsTolerance:G2} + {report.RelTolerance:G2}·|n|)"
            : $"{report.Entries.Count(e => !e.Passed)} of {report.Entries.Count} tensors FAIL (|a − n| ≤ {report.AbsTolerance:G2} + {report.RelTolerance:G2}·|n|)");
    }

    private static void WriteReportJson(GradientCheckReport report)
    {
        Cli.WriteJsonLine(w =>
        {
            w.WriteStartObject();
            w.WriteBoolean("passed", report.Passed);
            w.WriteString("dtype", report.DType);
            w.WriteNumber("step", report.Step);
            w.WriteNumber("abs_tolerance", report.AbsTolerance);
            w.WriteNumber("rel_tolerance", report.RelTolerance);
            w.WritePropertyName("tensors");
            w.WriteStartArray();
            foreach (var e in report.Entries)
            {
                w.WriteStartObject();
                w.WriteString("name", e.Name);
                w.WritePropertyName("shape"); w.WriteStartArray(); foreach (var d in e.Shape) w.WriteNumberValue(d); w.WriteEndArray();
                w.WritePropertyName("max_abs_error"); JsonTensor.WriteNumber(w, e.MaxAbsError);
                w.WritePropertyName("max_rel_error"); JsonTensor.WriteNumber(w, e.MaxRelError);
                w.WritePropertyName("worst_index"); w.WriteStartArray(); foreach (var d in e.WorstIndex) w.WriteNumberValue(d); w.WriteEndArray();
                w.WritePropertyName("worst_analytic"); JsonTensor.WriteNumber(w, e.WorstAnalytic);
                w.WritePropertyName("worst_numeric"); JsonTensor.WriteNumber(w, e.WorstNumeric);
                w.WriteBoolean("passed", e.Passed);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        });
    }
}
