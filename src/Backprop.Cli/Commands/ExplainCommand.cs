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
        var problem = new Argument<string?>("PROBLEM") { Description = "A problem file (JSON); or use --model, --data and --rows", Arity = ArgumentArity.ZeroOrOne };
        var wrt = new Option<string>("--wrt")
        {
            Description = "The gradient to derive: layers.I.weight | layers.I.bias | layers.I.output | input",
            DefaultValueFactory = _ => "layers.0.weight",
        };
        var format = new Option<string>("--format")
        {
            Description = "text, markdown, latex, or html (one self-contained page: the derivation in MathML, the network and the gradient norms in SVG)",
            DefaultValueFactory = _ => "text",
        };
        format.AcceptOnlyFromAmong("text", "markdown", "latex", "html");
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
        var output = OutOption();
        var (model, data, label, rows) = ModelOptions();
        var cmd = new Command("explain", "Derive one gradient of a problem step by step, with shapes and numbers, checked by finite differences")
        {
            problem, wrt, format, notation, dtype, json, perSample, dot, output, model, data, label, rows,
        };
        cmd.SetAction(r =>
        {
            bool html = r.GetValue(format) == "html";
            if (html && r.GetValue(json)) throw new UsageException("--format html and --json: give one (--json prints the derivation as one JSON object, --format html writes a page)");
            var (spec, source, fromModel) = LoadSpec(r.GetValue(problem), r.GetValue(model), r.GetValue(data), r.GetValue(label), r.GetValue(rows), null, "explain", catalog);
            var options = new Options(r.GetValue(wrt)!, ParseFormat(r.GetValue(format)!),
                r.GetValue(notation) == "rows" ? Notation.Rows : Notation.Columns, r.GetValue(json), r.GetValue(perSample), r.GetValue(dot))
            {
                Html = html, OutPath = r.GetValue(output), Source = source,
                // a model's weights have too many elements for two forward passes each: an even sample of them
                FiniteDifferenceSample = fromModel ? ModelFiniteDifferenceSample : null,
            };
            bool passed = r.GetValue(dtype) == "float32" ? Run(new Problem<float>(spec, catalog), options) : Run(new Problem<double>(spec, catalog), options);
            return passed ? 0 : 1;
        });
        return cmd;
    }

    /// <summary>How many elements of a model's gradient explain checks by finite differences (two forward passes each).</summary>
    public const int ModelFiniteDifferenceSample = 64;

    private sealed record Options(string Wrt, DerivationFormat Format, Notation Notation, bool Json, bool PerSample, string? DotPath)
    {
        public bool Html { get; init; }
        public string? OutPath { get; init; }
        public string Source { get; init; } = "";
        public int? FiniteDifferenceSample { get; init; }
    }

    private static Option<string?> OutOption() => new("--out") { Description = "Write the output to this file (atomically) instead of stdout" };

    private static (Option<string?> Model, Option<string?> Data, Option<string?> Label, Option<string?> Rows) ModelOptions() => (
        new Option<string?>("--model") { Description = "A trained model (safetensors), in place of a PROBLEM file: its task's loss on --rows of --data" },
        new Option<string?>("--data") { Description = "With --model: an MNIST directory (its test set) or a CSV file" },
        new Option<string?>("--label") { Description = "With --model: the CSV label column(s) (default: those the model recorded)" },
        new Option<string?>("--rows") { Description = "With --model: the rows of --data to take, START:END (END excluded), e.g. 0:8" });

    /// <summary>
    /// The problem to explain or diagnose: a problem file, or a model with rows of a data set. Returns the spec, words
    /// saying what it is, and whether it came from a model.
    /// </summary>
    private static (ProblemSpec Spec, string Source, bool FromModel) LoadSpec(string? path, string? model, string? data, string? label, string? rows, int? batch,
        string command, Catalog catalog)
    {
        if (path is not null)
        {
            if (model is not null) throw new UsageException($"{command} takes a PROBLEM file or --model with --data, not both");
            if (rows is not null) throw new UsageException($"--rows {rows}: rows are taken from --data with --model, not from a PROBLEM file");
            return (ProblemFile.Load(path, catalog), $"problem file {Path.GetFileName(path)}", false);
        }
        string m = model ?? throw new UsageException($"{command} needs a PROBLEM file, or --model M --data D --rows 0:8");
        string d = data ?? throw new UsageException($"{command} --model needs --data");
        int start = 0, count;
        if (rows is not null)
        {
            if (batch is not null) throw new UsageException("--rows and --batch: give one");
            (start, count) = ParseRows(rows);
        }
        else
        {
            count = batch ?? 8;
            if (count <= 0) throw new UsageException($"--batch {count}: must be at least 1");
        }
        var spec = ModelBatch(m, d, label, start, count, rows, catalog);
        return (spec, spec.Name, true);
    }

    /// <summary>"0:8" → (0, 8); "5" → (5, 1).</summary>
    public static (int Start, int Count) ParseRows(string text)
    {
        var parts = text.Split(':');
        var ci = System.Globalization.CultureInfo.InvariantCulture;
        const System.Globalization.NumberStyles none = System.Globalization.NumberStyles.None;
        if (parts.Length == 1 && int.TryParse(parts[0], none, ci, out int one)) return (one, 1);
        if (parts.Length == 2 && int.TryParse(parts[0], none, ci, out int a) && int.TryParse(parts[1], none, ci, out int b))
        {
            if (b <= a) throw new UsageException($"--rows {text}: END must be larger than START (END is excluded: 0:8 is rows 0 to 7)");
            return (a, b - a);
        }
        throw new UsageException($"--rows {text}: expected START:END, e.g. 0:8");
    }

    /// <summary>Writes a command's output to stdout, or atomically to --out; an unwritable file is one line and exit 2, and no file is left half-written.</summary>
    private static void WriteOutput(string? path, string content)
    {
        if (path is null)
        {
            Console.Out.Write(content);
            return;
        }
        try { Backprop.IO.AtomicFile.WriteAllText(path, content); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
            throw new UsageException(dir is not null && !Directory.Exists(dir) ? $"--out {path}: the directory {dir} does not exist"
                : Cli.Unwritable(e) ? $"--out {path}: {e.Message}"
                : $"--out {path}: cannot write the file ({(e is UnauthorizedAccessException ? "permission denied" : e.Message)})");
        }
    }

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
            if (o.Html) throw new UsageException("--per-sample prints the per-sample gradients as text or --json, not --format html");
            WritePerSample(p, o);
            return true;
        }
        var parts = o.Wrt.Split('.');
        if (parts.Length == 3 && parts[0] == "layers" && parts[2] != "output" && int.TryParse(parts[1], out int i)
            && i >= 0 && i < p.Network.Layers.Count && p.Network.Layers[i].Parameters.Count == 0)
            throw new UsageException($"--wrt '{o.Wrt}': layers.{i} is a {p.Network.Layers[i].Kind} layer, which has no parameters (use layers.{i}.output or input)");
        Derivation d;
        try { d = Explainer.Explain(p, o.Wrt, o.Notation, finiteDifferenceSample: o.FiniteDifferenceSample); }
        catch (UnknownValueException e) { throw new UsageException($"--wrt {e.Message}"); }
        catch (ArgumentException e) when (e is not ShapeMismatchException) { throw new UsageException(e.Message); }
        if (o.DotPath is not null)
        {
            p.Forward();
            p.Backward();
            Backprop.IO.AtomicFile.WriteAllText(o.DotPath, GraphDot.Write(p.Tape, p.Spec.Name, v => ParameterName(p, v)));
        }
        if (o.Json) WriteJson(d);
        else if (o.Html)
        {
            // diagnose's forward and backward pass leave the objective's gradients on the tape for the picture
            var health = p.Diagnose();
            WriteOutput(o.OutPath, Backprop.Reports.GradientPages.Explain(d, health, NetworkGradients.Of(p, o.Wrt), o.Source));
        }
        else WriteOutput(o.OutPath, DerivationRenderer.Render(d, o.Format));
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
        var (model, data, label, rows) = ModelOptions();
        var batch = new Option<int?>("--batch") { Description = "With --model: diagnose the first N rows (default 256; or --rows)" };
        var format = new Option<string>("--format") { Description = "text, or html (one self-contained page: the health table, the verdict and the charts)", DefaultValueFactory = _ => "text" };
        format.AcceptOnlyFromAmong("text", "html");
        var output = OutOption();
        var plots = new Option<string?>("--plots") { Description = "Write the distribution of ∂L/∂h per layer (PNG) and its series (JSON) to this directory" };
        var dtype = Cli.DTypeOption();
        var json = new Option<bool>("--json") { Description = "Print one JSON object on the last line" };
        var cmd = new Command("diagnose", "Per-layer gradient and weight norms, dead ReLUs, saturated units and a verdict (vanishing, exploding, healthy)")
        {
            problem, model, data, label, batch, rows, plots, dtype, json, format, output,
        };
        cmd.SetAction(r =>
        {
            bool html = r.GetValue(format) == "html";
            if (html && r.GetValue(json)) throw new UsageException("--format html and --json: give one (--json prints the health as one JSON object, --format html writes a page)");
            int? b = r.GetValue(batch);
            var (spec, source, _) = LoadSpec(r.GetValue(problem), r.GetValue(model), r.GetValue(data), r.GetValue(label), r.GetValue(rows),
                r.GetValue(model) is not null && r.GetValue(rows) is null ? b ?? 256 : b, "diagnose", catalog);
            var (report, network) = r.GetValue(dtype) == "float32" ? Diagnose(new Problem<float>(spec, catalog), r.GetValue(plots)) : Diagnose(new Problem<double>(spec, catalog), r.GetValue(plots));
            if (r.GetValue(json)) WriteHealthJson(report);
            else if (html) WriteOutput(r.GetValue(output), Backprop.Reports.GradientPages.Diagnose(spec.Name, report, network, source));
            else if (r.GetValue(output) is { } path)
            {
                var text = new StringWriter();
                WriteHealthText(spec.Name, report, text);
                WriteOutput(path, text.ToString());
            }
            else WriteHealthText(spec.Name, report, null);
            return 0;
        });
        return cmd;
    }

    private static (HealthReport, NetworkGradients) Diagnose<T>(Problem<T> p, string? plots) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var report = p.Diagnose();
        if (plots is not null) DiagnosePlots.Write(plots, p.Trace.H.Select(h => h.Grad.ToDoubleArray()).ToList());
        return (report, NetworkGradients.Of(p, null));
    }

    /// <summary>
    /// A model and rows [start, start + count) of a data set as a problem: the model's layers, those rows and their
    /// targets, and the loss of the model's task (cross-entropy for a classifier, the task's default loss otherwise), mean reduction.
    /// </summary>
    private static ProblemSpec ModelBatch(string modelPath, string dataPath, string? label, int start, int count, string? rowsText, Catalog catalog)
    {
        var model = Backprop.Training.ModelFile.Load<double>(modelPath, catalog);
        var facts = Backprop.Training.TaskMetadata.Read(model.Metadata, modelPath);
        var targets = facts.Targets(model.LabelNames) with { FeatureNames = model.FeatureNames };
        if (label is not null) targets = targets with { Columns = label.Split(',', StringSplitOptions.TrimEntries) };
        var data = DataLoading.ForModel(dataPath, targets, model.Standardizer, facts.TargetScaling);
        if (data.FeatureCount != model.Network.Inputs)
            throw new UsageException($"{dataPath} has {data.FeatureCount} features per sample but the model takes {model.Network.Inputs}");
        if (data.Count == 0) throw new UsageException($"{dataPath}: no rows");
        if (start >= data.Count) throw new UsageException($"--rows {rowsText}: {dataPath} has {data.Count} rows (0:{data.Count})");
        int n = Math.Min(count, data.Count - start);
        var input = Enumerable.Range(start, n).Select(i => data.Row(i).ToArray().Select(v => (double)v).ToArray()).ToArray();
        var layers = model.Network.Layers.Select(l => new LayerSpec(l.Kind, l.Inputs, l.Outputs, l.Activation.Name,
            [.. l.Parameters.Select(p => new TensorSpec(p.Name, p.Value.Value.ShapeArray, p.Value.Value.ToDoubleArray())),
             .. l.Buffers.Select(b => new TensorSpec(b.Name, b.Value.ShapeArray, b.Value.ToDoubleArray()))])).ToList();
        bool classes = facts.Task.Targets == TargetKind.Classes;
        double[][]? values = null;
        if (!classes)
        {
            var t = data.Targets ?? throw new UsageException($"{dataPath}: no target columns for the model's {facts.Task.Name} task");
            int k = data.TargetCount;
            values = Enumerable.Range(start, n).Select(i => t.AsSpan(i * k, k).ToArray().Select(v => (double)v).ToArray()).ToArray();
        }
        string name = $"{Path.GetFileName(modelPath)} on rows {start}:{start + n} of {Path.GetFileName(dataPath.TrimEnd('/'))}";
        return new ProblemSpec(name, layers, input, classes ? LossKind.CrossEntropy : facts.Objective.Loss, Backprop.Ops.Reduction.Mean,
            values, classes ? data.Labels[start..(start + n)] : null, null);
    }

    private static string Fraction(double? f) => f is double v ? $"{100 * v:0}%" : "–";

    private static void WriteHealthText(string name, HealthReport report, TextWriter? to)
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
        if (to is null)
        {
            Cli.Ansi().Write(table);
            Console.Out.WriteLine($"verdict: {report.Verdict}");
            Console.Out.Flush();
            return;
        }
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Out = new AnsiConsoleOutput(to) });
        console.Profile.Width = 160;
        console.Write(table);
        to.WriteLine($"verdict: {report.Verdict}");
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
