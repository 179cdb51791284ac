using System.CommandLine;
using Backprop.Interop;
using Backprop.IO;
using Backprop.Nn;
using Backprop.Training;

namespace Backprop.Cli.Commands;

/// <summary>import (PyTorch state dicts) and export (ONNX).</summary>
public static class InteropCommands
{
    public static Command Import(Catalog catalog)
    {
        var from = new Option<string>("--from") { Description = "A PyTorch nn.Sequential state dict saved as safetensors (keys 0.weight, 0.bias, 2.weight, …)", Required = true };
        var acts = new Option<string?>("--activations")
        {
            Description = "Comma-separated activation after each hidden Linear (one per hidden layer, or one for all); the output layer is identity. "
                + $"Known: {string.Join(", ", catalog.Activations.Names)}",
        };
        var layout = new Option<string?>("--layout")
        {
            Description = "Instead of --activations: every module of the Sequential in order, comma-separated: linear, layernorm, batchnorm, "
                + "dropout or dropout:P, or an activation (e.g. linear,batchnorm,relu,dropout:0.2,linear). Needed for LayerNorm without affine, "
                + "activations before a norm layer, or to keep Dropout layers",
        };
        var outOpt = new Option<string>("--out") { Description = "The backprop model file to write (safetensors)", Required = true };
        var dtype = new Option<string>("--dtype") { Description = "Precision of the stored model: float32 or float64", DefaultValueFactory = _ => "float32" };
        dtype.AcceptOnlyFromAmong("float32", "float64");
        var json = new Option<bool>("--json") { Description = "One JSON object on the last line" };
        var cmd = new Command("import", "Convert a PyTorch MLP state dict (safetensors) into a backprop model") { from, acts, layout, outOpt, dtype, json };
        cmd.SetAction(r =>
        {
            string src = r.GetValue(from)!;
            string dst = r.GetValue(outOpt)!;
            var file = SafeTensorsFile.Read(src);
            var layers = TorchImport.Inspect(file);
            string? layoutSpec = r.GetValue(layout);
            if (layoutSpec is not null && r.GetValue(acts) is not null)
                throw new UsageException("--layout and --activations: give one of them (the layout names the activations itself)");
            IReadOnlyList<TorchImportLayer> plan;
            try
            {
                plan = layoutSpec is not null
                    ? TorchImport.ResolveLayout(layoutSpec, layers, src, catalog.Activations)
                    : TorchImport.ResolveActivations(r.GetValue(acts), layers, src, catalog.Activations);
            }
            catch (ArgumentException e) { throw new UsageException($"{(layoutSpec is not null ? "--layout" : "--activations")}: {e.Message}"); }
            var net = TorchImport.Import<double>(file, plan, catalog);
            var activations = net.Layers.Select(l => l.Activation.Name).ToArray();
            var labels = Enumerable.Range(0, net.Outputs).Select(i => i.ToString()).ToArray();
            if (r.GetValue(dtype) == "float64") ModelFile.Save(dst, net, labels);
            else ModelFile.Save(dst, net.Cast<float>(), labels);
            if (r.GetValue(json))
            {
                Cli.WriteJsonLine(w =>
                {
                    w.WriteStartObject();
                    w.WriteString("model", dst);
                    w.WritePropertyName("sizes"); w.WriteStartArray(); w.WriteNumberValue(net.Inputs); foreach (var l in net.Layers) w.WriteNumberValue(l.Outputs); w.WriteEndArray();
                    w.WritePropertyName("kinds"); w.WriteStartArray(); foreach (var l in net.Layers) w.WriteStringValue(l.Kind); w.WriteEndArray();
                    w.WritePropertyName("activations"); w.WriteStartArray(); foreach (var a in activations) w.WriteStringValue(a); w.WriteEndArray();
                    w.WritePropertyName("bias"); w.WriteStartArray(); foreach (var l in net.Layers) w.WriteBooleanValue(l.Parameter("bias") is not null); w.WriteEndArray();
                    w.WritePropertyName("modules"); w.WriteStartArray(); foreach (var l in plan) w.WriteNumberValue(l.ModuleIndex); w.WriteEndArray();
                    w.WriteNumber("parameters", net.ParameterCount);
                    w.WriteEndObject();
                });
                return 0;
            }
            Console.WriteLine($"imported {src}: {net} ({net.ParameterCount} parameters, modules {string.Join(", ", plan.Select(l => l.ModuleIndex))})");
            if (layoutSpec is null)
                for (int k = 1; k < plan.Count; k++)
                    if (plan[k].ModuleIndex - plan[k - 1].ModuleIndex > 2)
                        Console.WriteLine($"note: modules {plan[k - 1].ModuleIndex + 1} to {plan[k].ModuleIndex - 1} hold no tensors: taken as the activation and modules that pass their input through at inference (Dropout); a LayerNorm without affine there needs --layout");
            Console.WriteLine($"wrote {dst}");
            return 0;
        });
        return cmd;
    }

    public static Command Export(Catalog catalog)
    {
        var model = new Option<string>("--model") { Description = "A backprop model file (safetensors)", Required = true };
        var onnx = new Option<string>("--onnx") { Description = "The ONNX file to write", Required = true };
        var opset = new Option<int>("--opset")
        {
            Description = $"ONNX opset of the default domain ({OnnxExport.MinOpset}–{OnnxExport.MaxOpset}; GELU is a single Gelu node from 20 on)",
            DefaultValueFactory = _ => OnnxExport.DefaultOpset,
        };
        var json = new Option<bool>("--json") { Description = "One JSON object on the last line" };
        var cmd = new Command("export", "Write a model as ONNX (input \"input\" [batch, in], output \"output\" [batch, out])") { model, onnx, opset, json };
        cmd.SetAction(r =>
        {
            int o = r.GetValue(opset);
            if (o < OnnxExport.MinOpset || o > OnnxExport.MaxOpset)
                throw new UsageException($"--opset {o}: supported opsets are {OnnxExport.MinOpset} to {OnnxExport.MaxOpset}");
            string src = r.GetValue(model)!;
            string dst = r.GetValue(onnx)!;
            if (string.IsNullOrWhiteSpace(dst)) throw new UsageException("--onnx: the file name is empty");
            var m = ModelFile.Load<double>(src, catalog);
            // a layer norm is ONNX's LayerNormalization, which older opsets lack: say which flag fixes it
            for (int i = 0; i < m.Network.Layers.Count; i++)
                if (m.Network.Layers[i] is LayerNormLayer<double> && o < LayerNormLayer<double>.LayerNormalizationOpset)
                    throw new UsageException($"--opset {o}: layers[{i}] is a layer norm, ONNX LayerNormalization, which needs opset {LayerNormLayer<double>.LayerNormalizationOpset} or later: give --opset {LayerNormLayer<double>.LayerNormalizationOpset}");
            OnnxExport.Write(dst, m.Network, o, m.LabelNames, m.Standardizer);
            long bytes = new FileInfo(dst).Length;
            if (r.GetValue(json))
            {
                Cli.WriteJsonLine(w =>
                {
                    w.WriteStartObject();
                    w.WriteString("onnx", dst);
                    w.WriteNumber("opset", o);
                    w.WriteNumber("ir_version", OnnxExport.IrVersionFor(o));
                    w.WriteNumber("inputs", m.Network.Inputs);
                    w.WriteNumber("outputs", m.Network.Outputs);
                    w.WriteBoolean("standardizer", m.Standardizer is not null);
                    w.WriteNumber("bytes", bytes);
                    w.WriteEndObject();
                });
                return 0;
            }
            Console.WriteLine($"wrote {dst}: ONNX opset {o} (IR {OnnxExport.IrVersionFor(o)}), {m.Network}{(m.Standardizer is null ? "" : ", standardization in the graph")}, {bytes} bytes");
            return 0;
        });
        return cmd;
    }
}
