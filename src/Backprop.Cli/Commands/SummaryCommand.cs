using System.CommandLine;
using System.Globalization;
using Backprop.Nn;
using Backprop.Training;
using Spectre.Console;

namespace Backprop.Cli.Commands;

/// <summary>summary: each layer's kind, output shape, parameters, buffers and FLOPs, the totals and the memory of training.</summary>
public static class SummaryCommand
{
    public static Command Create(Catalog catalog)
    {
        var optimizers = OptimizerRegistry.Default;
        var model = new Option<string?>("--model") { Description = "A backprop model file (safetensors)" };
        var arch = new Option<string?>("--arch") { Description = "An architecture spec, as train takes it (e.g. \"784-512:relu:ln-256:relu:drop0.2-10\")" };
        var layers = new Option<string?>("--layers") { Description = "Layer sizes, input first (e.g. 784,128,10), as train takes them" };
        var activation = new Option<string>("--activation") { Description = "Hidden activation with --layers", DefaultValueFactory = _ => "relu" };
        var norm = new Option<string?>("--norm") { Description = "With --layers: a norm layer before each hidden activation (layernorm or batchnorm)" };
        var dropout = new Option<double>("--dropout") { Description = "With --layers: dropout with this p after each hidden activation", DefaultValueFactory = _ => 0 };
        var batch = new Option<int>("--batch") { Description = "The batch size the training memory is computed for", DefaultValueFactory = _ => 128 };
        var optimizer = new Option<string>("--optimizer") { Description = $"The optimizer whose state the training memory counts: {optimizers.NamesText()}", DefaultValueFactory = _ => "adam" };
        var json = new Option<bool>("--json") { Description = "One JSON object on the last line" };
        var cmd = new Command("summary", "A table of a network's layers: kind, output shape, parameters, buffers and FLOPs per sample, with totals and the memory of training")
        {
            model, arch, layers, activation, norm, dropout, batch, optimizer, json,
        };
        cmd.SetAction(r =>
        {
            string? m = r.GetValue(model), a = r.GetValue(arch), l = r.GetValue(layers);
            int given = (m is null ? 0 : 1) + (a is null ? 0 : 1) + (l is null ? 0 : 1);
            if (given != 1) throw new UsageException("summary needs exactly one of --model, --arch and --layers");
            int b = r.GetValue(batch);
            if (b < 1) throw new UsageException($"--batch {b}: must be at least 1");
            string optName = r.GetValue(optimizer)!;
            var opt = optimizers.Find(optName) ?? throw new UsageException($"--optimizer {optName}: unknown optimizer ({optimizers.NamesText()})");
            if (l is null && (r.GetValue(norm) is not null || r.GetValue(dropout) != 0))
                throw new UsageException("--norm and --dropout go with --layers (an --arch spec or a model says its own)");

            Sequential<float> net;
            string source;
            if (m is not null)
            {
                net = ModelFile.Load<float>(m, catalog).Network;
                source = m;
            }
            else
            {
                var spec = a is not null
                    ? ArchitectureSpec.Parse(a, catalog)
                    : ArchitectureSpec.Mlp(TrainCommand.ParseLayers(l!), r.GetValue(activation)!, r.GetValue(norm), r.GetValue(dropout), catalog);
                net = spec.Create<float>(catalog);
                source = spec.ToString();
            }
            var summary = ModelSummary.Of(net, catalog.Layers);
            var memory = summary.Memory(b, opt.StateNames.Length);
            if (r.GetValue(json)) { WriteJson(source, summary, memory, opt.Name); return 0; }

            var table = new Table().Title(Markup.Escape($"{source}: input [batch, {summary.Inputs}]"));
            foreach (var c in new[] { "#", "layer", "output shape", "parameters", "buffers", "FLOPs / sample" })
                table.AddColumn(c == "#" || c == "layer" || c == "output shape" ? new TableColumn(c) : new TableColumn(c).RightAligned());
            foreach (var row in summary.Layers)
                table.AddRow(row.Index.ToString(CultureInfo.InvariantCulture), Markup.Escape(row.Description), $"[[batch, {row.Outputs}]]",
                    N(row.Parameters), N(row.Buffers), N(row.Flops));
            table.AddRow("", "[bold]total[/]", $"[[batch, {summary.Outputs}]]", $"[bold]{N(summary.Parameters)}[/]", $"[bold]{N(summary.Buffers)}[/]", $"[bold]{N(summary.Flops)}[/]");
            Cli.Ansi().Write(table);
            Console.WriteLine("FLOPs per sample at inference: each kind counts its own; an activation " + ModelSummary.ActivationFlopsRule + ".");
            foreach (var kind in summary.Layers.GroupBy(x => x.Kind).Select(g => g.First()))
                Console.WriteLine($"  {kind.Kind}: {kind.FlopsRule}");
            Console.WriteLine($"training memory at batch {b} with {opt.Name}: {Bytes(memory.TotalBytes)}");
            Console.WriteLine($"  parameters {Bytes(memory.ParameterBytes)}, gradients {Bytes(memory.GradientBytes)}, {opt.Name} state {Bytes(memory.OptimizerBytes)} ({memory.OptimizerStates}×), "
                + $"buffers {Bytes(memory.BufferBytes)}, activations {Bytes(memory.ActivationBytes)}");
            Console.WriteLine($"  assumes {memory.Assumptions}");
            return 0;
        });
        return cmd;
    }

    private static string N(long v) => v.ToString("N0", CultureInfo.InvariantCulture);

    private static string Bytes(long b) => b switch
    {
        < 1024 => $"{b} B",
        < 1024 * 1024 => $"{b / 1024.0:F1} KiB".Replace(',', '.'),
        < 1024L * 1024 * 1024 => $"{b / (1024.0 * 1024):F1} MiB".Replace(',', '.'),
        _ => $"{b / (1024.0 * 1024 * 1024):F2} GiB".Replace(',', '.'),
    };

    private static void WriteJson(string source, ModelSummary s, TrainingMemory mem, string optimizer) => Cli.WriteJsonLine(w =>
    {
        w.WriteStartObject();
        w.WriteString("source", source);
        w.WriteNumber("inputs", s.Inputs);
        w.WriteNumber("outputs", s.Outputs);
        w.WritePropertyName("layers");
        w.WriteStartArray();
        foreach (var l in s.Layers)
        {
            w.WriteStartObject();
            w.WriteNumber("index", l.Index);
            w.WriteString("kind", l.Kind);
            w.WriteString("description", l.Description);
            w.WriteString("activation", l.Activation);
            w.WriteNumber("inputs", l.Inputs);
            w.WriteNumber("outputs", l.Outputs);
            w.WritePropertyName("output_shape"); w.WriteStartArray(); w.WriteStringValue("batch"); w.WriteNumberValue(l.Outputs); w.WriteEndArray();
            w.WriteNumber("parameters", l.Parameters);
            w.WriteNumber("buffers", l.Buffers);
            w.WriteNumber("flops", l.Flops);
            w.WriteNumber("layer_flops", l.LayerFlops);
            w.WriteNumber("activation_flops", l.ActivationFlops);
            w.WriteString("flops_rule", l.FlopsRule);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteNumber("parameters", s.Parameters);
        w.WriteNumber("buffers", s.Buffers);
        w.WriteNumber("flops", s.Flops);
        w.WriteString("activation_flops_rule", ModelSummary.ActivationFlopsRule);
        w.WritePropertyName("training_memory");
        w.WriteStartObject();
        w.WriteNumber("batch", mem.Batch);
        w.WriteString("optimizer", optimizer);
        w.WriteNumber("optimizer_states", mem.OptimizerStates);
        w.WriteNumber("bytes_per_value", mem.BytesPerValue);
        w.WriteNumber("parameters", mem.ParameterBytes);
        w.WriteNumber("gradients", mem.GradientBytes);
        w.WriteNumber("optimizer_state", mem.OptimizerBytes);
        w.WriteNumber("buffers", mem.BufferBytes);
        w.WriteNumber("activation_values_per_sample", mem.ActivationValuesPerSample);
        w.WriteNumber("activations", mem.ActivationBytes);
        w.WriteNumber("total", mem.TotalBytes);
        w.WriteString("assumptions", mem.Assumptions);
        w.WriteEndObject();
        w.WriteEndObject();
    });
}
