using System.CommandLine;
using System.Numerics;
using System.Text.Json;
using Backprop.Data;
using Backprop.Explain;
using Backprop.Health;
using Backprop.Nn;
using Backprop.Problems;
using Spectre.Console;

namespace Backprop.Cli.Commands;

/// <summary>explain: a backpropagation derivation of one gradient of a problem, generated from its recorded graph.</summary>
public static class ExplainCommand
{
    public static Command Create(Catalog catalog)
    {
        var problem = new Argument<string>("PROBLEM") { Description = "A problem file (JSON)" };
        var wrt = new Option<string>("--wrt")
        {
            Description = "The gradient to derive: layers.I.weight | layers.I.bias | layers.I.output | input",
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
        var perSample = new Option<bool>("--per-sample")
        {
            Description = "Print the per-sample gradients of the --wrt layer's weight and bias (closed form δ_iᵀ·x_i) instead of the derivation",
        };
        var dot = new Option<string?>("--dot") { Description = "Also write the computation graph as Graphviz DOT to this file" };
        var cmd = new Command("explain", "Derive one gradient of a problem step by step, with shapes and numbers, checked by finite differences")
        {
            problem, wrt, format, notation, dtype, json, perSample, dot,
        };
        cmd.SetAction(r =>
        {
            var spec = ProblemFile.Load(r.GetValue(problem)!, catalog);
            var options = new Options(r.GetValue(wrt)!, ParseFormat(r.GetValue(format)!),
                r.GetValue(notation) == "rows" ? Notation.Rows : Notation.Columns, r.GetValue(json), r.GetValue(perSample), r.GetValue(dot));
            bool passed = r.GetValue(dtype) == "float32" ? Run(new Problem<float>(spec, catalog), options) : Run(new Problem<double>(spec, catalog), options);
            return passed ? 0 : 1;
        });
        return cmd;
    }

    private sealed record Options(string Wrt, DerivationFormat Format, Notation Notation, bool Json, bool PerSample, string? DotPath);

    private static DerivationFormat ParseFormat(string s) => s switch
    {
        "markdown" => DerivationFormat.Markdown,
        "latex" => DerivationFormat.Latex,
        _ => DerivationFormat.Text,
    };

    private static bool Run<T>(Problem<T> p, Options o) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (o.PerSample)
        {
            WritePerSample(p, o);
            return true;
        }
        var parts = o.Wrt.Split('.');
        if (parts.Length == 3 && parts[0] == "layers" && parts[2] != "output" && int.TryParse(parts[1], out int i)
            && i >= 0 && i < p.Network.Layers.Count && p.Network.Layers[i].Parameters.Count == 0)
            throw new UsageException($"--wrt '{o.Wrt}': layers.{i} is a {p.Network.Layers[i].Kind} layer, which has no parameters (use layers.{i}.output or input)");
        Derivation d;
        try { d = Explainer.Explain(p, o.Wrt, o.Notation); }
        catch (UnknownValueException e) { throw new UsageException($"--wrt {e.Message}"); }
        catch (ArgumentException e) when (e is not ShapeMismatchException) { throw new UsageException(e.Message); }
        if (o.DotPath is not null)
        {
            p.Forward();
            p.Backward();
            Backprop.IO.AtomicFile.WriteAllText(o.DotPath, GraphDot.Write(p.Tape, p.Spec.Name, v => ParameterName(p, v)));
        }
        if (o.Json) WriteJson(d);
        else Console.Out.Write(DerivationRenderer.Render(d, o.Format));
        Console.Out.Flush();
        return d.FiniteDifference?.Passed ?? true;
    }

    /// <summary>The problem-file name of a parameter ("layers.0.weight"); null for other values, which keep their own names.</summary>
    private static string? ParameterName<T>(Problem<T> p, Var<T> v) where T : unmanaged, IFloatingPointIeee754<T>
    {
        foreach (var (name, value) in p.Network.NamedParameters())
            if (ReferenceEquals(value, v)) return name;
        return null;
    }

    private static void WritePerSample<T>(Problem<T> p, Options o) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var parts = o.Wrt.Split('.');
        if (parts.Length != 3 || parts[0] != "layers" || !int.TryParse(parts[1], out int layer))
            throw new UsageException($"--per-sample needs --wrt layers.I.weight or layers.I.bias, not '{o.Wrt}'");
        PerSampleGradient g;
        try { g = PerSampleGradients.ForLayer(p, layer); }
        catch (CoupledSamplesException) { throw; }
        catch (ArgumentException e) { throw new UsageException($"--wrt '{o.Wrt}': {e.Message}"); }
        var kind = p.Network.Layers[layer].Kind;
        if (g.Parameters.Count == 0)
            throw new UsageException($"--wrt '{o.Wrt}': layers.{layer} is a {kind} layer, which has no parameters to take per-sample gradients of");
        int n = g.Parameters[0].Gradient.Dim(0);
        string reduction = g.BatchFactor == 1 ? "L = Σ_i ℓ_i" : $"L = (1/{DerivationRenderer.Number(1 / g.BatchFactor)})·Σ_i ℓ_i (mean reduction)";
        if (o.Json)
        {
            Cli.WriteJsonLine(w =>
            {
                w.WriteStartObject();
                w.WriteString("wrt", o.Wrt);
                w.WriteNumber("layer", layer);
                w.WriteString("kind", kind);
                w.WriteNumber("batch_factor", g.BatchFactor);
                JsonTensor.WritePerSample(w, g);
                w.WriteEndObject();
            });
            return;
        }
        string sub = Float64Math.Sub(layer + 1);
        string s = DerivationRenderer.Number(1 / g.BatchFactor);
        Console.Out.WriteLine($"per-sample gradients of layer {layer + 1} (layers.{layer}, {kind}) for {p.Spec.Name}: ∇ℓ_i, the gradient of sample i's own loss; {reduction}");
        Console.Out.WriteLine($"  ∇ℓ_i = s·(the gradient of a backward pass seeded with row i of ∂L/∂ŷ), s = {s}: each sample's output depends on that sample alone");
        if (g.Weight is { Rank: 3 } w3)
            Console.Out.WriteLine($"  dense: ∇_W{sub} ℓ_i = s·δ{sub},iᵀ·x_i (outer product [{w3.Dim(1)}×1]·[1×{w3.Dim(2)}]),  ∇_b{sub} ℓ_i = s·δ{sub},i");
        for (int i = 0; i < n; i++)
        {
            Console.Out.WriteLine($"  sample {i}:");
            foreach (var param in g.Parameters)
            {
                var t = param.Gradient;
                int size = t.Length / n;
                var one = t.Rank == 3 ? new Tensor<double>(t.Data.Slice(i * size, size).ToArray(), t.Dim(1), t.Dim(2))
                    : new Tensor<double>(t.Data.Slice(i * size, size).ToArray(), 1, size);
                Console.Out.WriteLine($"    ∇ layers.{layer}.{param.Name} ℓ_{i}:");
                foreach (var line in DerivationRenderer.MatrixLines(one)) Console.Out.WriteLine($"      {line}");
            }
        }
        Console.Out.Flush();
    }

    /// <summary>diagnose: per-layer gradient health with a plain-language verdict.</summary>
    public static Command Diagnose(Catalog catalog)
    {
        var problem = new Argument<string?>("PROBLEM") { Description = "A problem file (JSON); or use --model and --data", Arity = ArgumentArity.ZeroOrOne };
        var model = new Option<string?>("--model") { Description = "A trained model (safetensors), diagnosed on one batch of --data" };
        var data = new Option<string?>("--data") { Description = "With --model: an MNIST directory (its test set) or a CSV file" };
        var label = new Option<string?>("--label") { Description = "CSV label column" };
        var batch = new Option<int>("--batch") { Description = "With --model: the batch size to diagnose", DefaultValueFactory = _ => 256 };
        var plots = new Option<string?>("--plots") { Description = "Write the distribution of ∂L/∂h per layer (PNG) and its series (JSON) to this directory" };
        var dtype = Cli.DTypeOption();
        var json = new Option<bool>("--json") { Description = "Print one JSON object on the last line" };
        var cmd = new Command("diagnose", "Per-layer gradient and weight norms, dead ReLUs, saturated units and a verdict (vanishing, exploding, healthy)")
        {
            problem, model, data, label, batch, plots, dtype, json,
        };
        cmd.SetAction(r =>
        {
            ProblemSpec spec;
            if (r.GetValue(problem) is { } path)
            {
                if (r.GetValue(model) is not null) throw new UsageException("diagnose takes a PROBLEM file or --model with --data, not both");
                spec = ProblemFile.Load(path, catalog);
            }
            else
            {
                string m = r.GetValue(model) ?? throw new UsageException("diagnose needs a PROBLEM file, or --model M --data D");
                string d = r.GetValue(data) ?? throw new UsageException("diagnose --model needs --data");
                int b = r.GetValue(batch);
                if (b <= 0) throw new UsageException($"--batch {b}: must be at least 1");
                spec = ModelBatch(m, d, r.GetValue(label), b, catalog);
            }
            var report = r.GetValue(dtype) == "float32" ? Diagnose(new Problem<float>(spec, catalog), r.GetValue(plots)) : Diagnose(new Problem<double>(spec, catalog), r.GetValue(plots));
            if (r.GetValue(json)) WriteHealthJson(report);
            else WriteHealthText(spec.Name, report);
            return 0;
        });
        return cmd;
    }

    private static HealthReport Diagnose<T>(Problem<T> p, string? plots) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var report = p.Diagnose();
        if (plots is not null) DiagnosePlots.Write(plots, p.Trace.H.Select(h => h.Grad.ToDoubleArray()).ToList());
        return report;
    }

    /// <summary>A model and the first rows of a data set as a problem: the model's layers, a batch, cross-entropy with mean reduction.</summary>
    private static ProblemSpec ModelBatch(string modelPath, string dataPath, string? label, int batch, Catalog catalog)
    {
        var model = Backprop.Training.ModelFile.Load<double>(modelPath, catalog);
        var data = DataLoading.ForModel(dataPath, label, model.LabelNames, model.Standardizer);
        if (data.FeatureCount != model.Network.Inputs)
            throw new UsageException($"{dataPath} has {data.FeatureCount} features per sample but the model takes {model.Network.Inputs}");
        int n = Math.Min(batch, data.Count);
        if (n == 0) throw new UsageException($"{dataPath}: no rows");
        var input = Enumerable.Range(0, n).Select(i => data.Row(i).ToArray().Select(v => (double)v).ToArray()).ToArray();
        var layers = model.Network.Layers.Select(l => new LayerSpec(l.Kind, l.Inputs, l.Outputs, l.Activation.Name,
            [.. l.Parameters.Select(p => new TensorSpec(p.Name, p.Value.Value.ShapeArray, p.Value.Value.ToDoubleArray())),
             .. l.Buffers.Select(b => new TensorSpec(b.Name, b.Value.ShapeArray, b.Value.ToDoubleArray()))])).ToList();
        return new ProblemSpec($"{Path.GetFileName(modelPath)} on {n} rows of {Path.GetFileName(dataPath.TrimEnd('/'))}", layers, input,
            LossKind.CrossEntropy, Backprop.Ops.Reduction.Mean, null, data.Labels[..n], null);
    }

    private static string Fraction(double? f) => f is double v ? $"{100 * v:0}%" : "–";

    private static void WriteHealthText(string name, HealthReport report)
    {
        var table = new Table().Title(Markup.Escape($"diagnose {name} (layers numbered from 1: layers.0 is layer 1)"));
        static string Sci(double? v) => v is double d ? d.ToString("0.000e+00", System.Globalization.CultureInfo.InvariantCulture) : "–";
        // a norm layer's γ is a scale, not a weight: its own columns, shown when the network has one
        bool scales = report.Layers.Any(l => l.ScaleNorm is not null);
        table.AddColumns(["layer", "kind", "activation", "‖∂L/∂W‖", "‖W‖", .. scales ? new[] { "‖∂L/∂γ‖", "‖γ‖" } : [], "‖∂L/∂h‖", "dead ReLU", "saturated"]);
        foreach (var l in report.Layers)
            table.AddRow([l.Layer.ToString(System.Globalization.CultureInfo.InvariantCulture), l.Kind, l.Activation,
                Sci(l.HasWeight ? l.WeightGradientNorm : null), Sci(l.HasWeight ? l.WeightNorm : null),
                .. scales ? new[] { Sci(l.ScaleGradientNorm), Sci(l.ScaleNorm) } : [],
                Sci(l.OutputGradientNorm), Fraction(l.DeadFraction), Fraction(l.SaturatedFraction)]);
        Cli.Ansi().Write(table);
        Console.Out.WriteLine($"verdict: {report.Verdict}");
        Console.Out.Flush();
    }

    private static void WriteHealthJson(HealthReport report)
    {
        Cli.WriteJsonLine(w =>
        {
            w.WriteStartObject();
            w.WriteString("verdict", report.Verdict);
            w.WriteBoolean("healthy", report.Healthy);
            w.WriteBoolean("vanishing", report.Vanishing);
            w.WriteBoolean("exploding", report.Exploding);
            w.WritePropertyName("shrink_factor"); JsonTensor.WriteNumber(w, report.ShrinkFactor);
            w.WritePropertyName("layers");
            w.WriteStartArray();
            foreach (var l in report.Layers)
            {
                w.WriteStartObject();
                w.WriteNumber("layer", l.Layer);
                w.WriteString("kind", l.Kind);
                w.WriteString("activation", l.Activation);
                // a layer without a weight (dropout, norm layers) has no weight norms; a norm layer's γ is a scale
                if (l.HasWeight)
                {
                    w.WritePropertyName("weight_gradient_norm"); JsonTensor.WriteNumber(w, l.WeightGradientNorm);
                    w.WritePropertyName("weight_norm"); JsonTensor.WriteNumber(w, l.WeightNorm);
                }
                if (l.ScaleNorm is double sn)
                {
                    w.WritePropertyName("scale_gradient_norm"); JsonTensor.WriteNumber(w, l.ScaleGradientNorm ?? 0);
                    w.WritePropertyName("scale_norm"); JsonTensor.WriteNumber(w, sn);
                }
                w.WritePropertyName("output_gradient_norm"); JsonTensor.WriteNumber(w, l.OutputGradientNorm);
                if (l.DeadFraction is double d) w.WriteNumber("dead_fraction", d);
                if (l.SaturatedFraction is double s) w.WriteNumber("saturated_fraction", s);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        });
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
