using System.Buffers.Binary;
using System.Numerics;
using System.Reflection;
using System.Text.Json;
using Backprop.Data;
using Backprop.Interop.Onnx;
using Backprop.IO;
using Backprop.Nn;
using Google.Protobuf;

namespace Backprop.Interop;

/// <summary>
/// Exports a <see cref="Sequential{T}"/> as a standard ONNX model (a ModelProto in protobuf binary). The graph has one
/// input "input", float [batch, in] with a symbolic batch dimension, and one output "output", float [batch, out].
/// Each layer is a Gemm (transB = 1) on initializers layers.{i}.weight [out, in] and layers.{i}.bias [out], followed by
/// its activation in standard ONNX operators (opset 13 or later, default domain only). A model with a standardizer
/// gets (x − mean) / std in front, so the ONNX model takes the same raw features as <c>backprop predict</c>.
/// Weights are written as float32 whatever the precision of the network.
/// </summary>
public static class OnnxExport
{
    public const int DefaultOpset = 17;
    public const int MinOpset = 13;
    public const int MaxOpset = 22;
    public const string InputName = "input";
    public const string OutputName = "output";

    /// <summary>The IR version that goes with an opset of the default domain (ONNX's versioning table).</summary>
    public static int IrVersionFor(int opset) => opset switch
    {
        <= 14 => 7,
        <= 18 => 8,
        <= 20 => 9,
        _ => 10,
    };

    /// <summary>Writes the ONNX model to <paramref name="path"/> atomically.</summary>
    public static void Write<T>(string path, Sequential<T> net, int opset = DefaultOpset, IReadOnlyList<string>? labelNames = null, Standardizer? standardizer = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var model = Build(net, opset, labelNames, standardizer);
        AtomicFile.Write(path, s => model.WriteTo(s));
    }

    /// <summary>The ONNX model's bytes.</summary>
    public static byte[] Serialize<T>(Sequential<T> net, int opset = DefaultOpset, IReadOnlyList<string>? labelNames = null, Standardizer? standardizer = null)
        where T : unmanaged, IFloatingPointIeee754<T> => Build(net, opset, labelNames, standardizer).ToByteArray();

    internal static ModelProto Build<T>(Sequential<T> net, int opset, IReadOnlyList<string>? labelNames, Standardizer? standardizer)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(net);
        if (opset < MinOpset || opset > MaxOpset)
            throw new ArgumentException($"--opset {opset}: supported opsets are {MinOpset} to {MaxOpset}");
        if (standardizer is not null && standardizer.FeatureCount != net.Inputs)
            throw new ArgumentException($"the standardizer has {standardizer.FeatureCount} features but the network takes {net.Inputs}");

        var g = new GraphBuilder(opset);
        string x = InputName;
        if (standardizer is not null)
        {
            g.Initializer("standardizer.mean", standardizer.Mean, standardizer.FeatureCount);
            g.Initializer("standardizer.std", standardizer.Std, standardizer.FeatureCount);
            string centred = g.Node("Sub", [x, "standardizer.mean"], "standardizer.centred");
            x = g.Node("Div", [centred, "standardizer.std"], "standardizer.output");
        }
        for (int i = 0; i < net.Layers.Count; i++)
        {
            var layer = net.Layers[i];
            bool last = i == net.Layers.Count - 1;
            string w = $"layers.{i}.weight";
            g.Initializer(w, ToFloats(layer.Weight.Value), layer.Outputs, layer.Inputs);
            var gemmInputs = new List<string> { x, w };
            if (layer.Bias is { } b)
            {
                string bn = $"layers.{i}.bias";
                g.Initializer(bn, ToFloats(b.Value), layer.Outputs);
                gemmInputs.Add(bn);
            }
            bool identity = layer.Activation.IsIdentity;
            string z = g.Node("Gemm", gemmInputs, last && identity ? OutputName : $"layers.{i}.z", Attr("transB", 1));
            x = identity ? z : Activation(g, layer.Activation, z, last ? OutputName : $"layers.{i}.h", i);
        }

        var graph = g.Graph;
        graph.Name = "backprop_mlp";
        graph.Input.Add(FloatValue(InputName, net.Inputs));
        graph.Output.Add(FloatValue(OutputName, net.Outputs));
        var model = new ModelProto
        {
            IrVersion = IrVersionFor(opset),
            ProducerName = "backprop",
            ProducerVersion = typeof(OnnxExport).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "",
            Graph = graph,
            DocString = $"backprop MLP {net}",
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = opset });
        if (labelNames is not null)
            model.MetadataProps.Add(new StringStringEntryProto { Key = "label_names", Value = JsonSerializer.Serialize(labelNames) });
        return model;
    }

    /// <summary>Emits the nodes of <paramref name="act"/> applied to <paramref name="z"/>, the last one writing <paramref name="output"/>.</summary>
    private static string Activation<T>(GraphBuilder g, Activation<T> act, string z, string output, int layer) where T : unmanaged, IFloatingPointIeee754<T>
    {
        string p = $"layers.{layer}";
        switch (act)
        {
            case Sigmoid<T>: return g.Node("Sigmoid", [z], output);
            case Tanh<T>: return g.Node("Tanh", [z], output);
            case Relu<T>: return g.Node("Relu", [z], output);
            case LeakyRelu<T> lr: return g.Node("LeakyRelu", [z], output, Attr("alpha", (float)lr.Slope));
            case Elu<T> e: return g.Node("Elu", [z], output, Attr("alpha", (float)e.Alpha));
            case Softplus<T>: return g.Node("Softplus", [z], output);
            case Softmax<T>: return g.Node("Softmax", [z], output, Attr("axis", -1));
            case Silu<T>:
            {
                string s = g.Node("Sigmoid", [z], $"{p}.sigmoid");
                return g.Node("Mul", [z, s], output);
            }
            case Gelu<T> when g.Opset >= 20:
                return g.Node("Gelu", [z], output);
            case Gelu<T>:
            {
                // gelu(z) = z · 0.5 · (1 + erf(z / √2)), the exact form.
                string sqrt2 = g.Constant("const.sqrt2", MathF.Sqrt(2f));
                string one = g.Constant("const.one", 1f);
                string half = g.Constant("const.half", 0.5f);
                string scaled = g.Node("Div", [z, sqrt2], $"{p}.gelu_scaled");
                string erf = g.Node("Erf", [scaled], $"{p}.gelu_erf");
                string cdf2 = g.Node("Add", [erf, one], $"{p}.gelu_cdf2");
                string zc = g.Node("Mul", [z, cdf2], $"{p}.gelu_zcdf2");
                return g.Node("Mul", [zc, half], output);
            }
            default:
                throw new ArgumentException($"layers[{layer}]: activation '{act.Name}' has no ONNX translation");
        }
    }

    private static float[] ToFloats<T>(Tensor<T> t) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(float)) return System.Runtime.InteropServices.MemoryMarshal.Cast<T, float>(t.Span).ToArray();
        var r = new float[t.Length];
        for (int i = 0; i < r.Length; i++) r[i] = float.CreateTruncating(t.Data[i]);
        return r;
    }

    private static AttributeProto Attr(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    private static AttributeProto Attr(string name, float value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    private static ValueInfoProto FloatValue(string name, int features)
    {
        var shape = new TensorShapeProto();
        shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimParam = "batch" });
        shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = features });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } },
        };
    }

    private sealed class GraphBuilder(int opset)
    {
        private readonly HashSet<string> _constants = [];
        public GraphProto Graph { get; } = new();
        public int Opset { get; } = opset;

        public string Node(string op, IEnumerable<string> inputs, string output, params AttributeProto[] attributes)
        {
            var n = new NodeProto { OpType = op, Name = $"{output}/{op}" };
            n.Input.AddRange(inputs);
            n.Output.Add(output);
            n.Attribute.AddRange(attributes);
            Graph.Node.Add(n);
            return output;
        }

        public void Initializer(string name, float[] data, params int[] dims)
        {
            var raw = new byte[data.Length * 4];
            for (int i = 0; i < data.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(raw.AsSpan(i * 4), data[i]);
            var t = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(raw) };
            foreach (var d in dims) t.Dims.Add(d);
            Graph.Initializer.Add(t);
        }

        /// <summary>A scalar float initializer, added once however often it is asked for.</summary>
        public string Constant(string name, float value)
        {
            if (_constants.Add(name)) Initializer(name, [value]);
            return name;
        }
    }
}
