using System.Buffers.Binary;
using System.Numerics;
using System.Reflection;
using Backprop.Data;
using Backprop.Interop.Onnx;
using Backprop.IO;
using Backprop.Nn;
using Google.Protobuf;
using Backprop.Core;
using Backprop.Ops;

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
    /// <summary>The opset written when none is asked for: 17, the first with LayerNormalization.</summary>
    public const int DefaultOpset = 17;
    /// <summary>The oldest opset an export can target: an older one is refused with <see cref="ArgumentException"/>.</summary>
    public const int MinOpset = 13;
    /// <summary>The newest opset an export can target: a newer one is refused with <see cref="ArgumentException"/>.</summary>
    public const int MaxOpset = 22;
    /// <summary>The name of the graph's one input, float [batch, in].</summary>
    public const string InputName = "input";
    /// <summary>The name of the graph's one output, float [batch, out].</summary>
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
            throw new ArgumentException($"opset {opset} is not supported: supported opsets are {MinOpset} to {MaxOpset}");
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
            bool last = i == net.Layers.Count - 1;
            try { x = net.Layers[i].ExportOnnx(g, x, $"layers.{i}", last ? OutputName : null); }
            catch (NotSupportedException e) { throw new NotSupportedException($"layers[{i}]: {e.Message}", e); }
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
            model.MetadataProps.Add(new StringStringEntryProto { Key = "label_names", Value = DataMetadata.StringsToJson(labelNames) });
        return model;
    }

    private static float[] ToFloats<T>(Tensor<T> t) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var src = t.Span;
        var r = new float[src.Length];
        for (int i = 0; i < r.Length; i++) r[i] = float.CreateTruncating(src[i]);
        return r;
    }

    private static AttributeProto Attr(OnnxAttribute a) => a.IntValue is long i
        ? new() { Name = a.Name, Type = AttributeProto.Types.AttributeType.Int, I = i }
        : new() { Name = a.Name, Type = AttributeProto.Types.AttributeType.Float, F = a.FloatValue ?? 0 };

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

    private sealed class GraphBuilder(int opset) : IOnnxGraph
    {
        private readonly HashSet<string> _constants = [];
        public GraphProto Graph { get; } = new();
        public int Opset { get; } = opset;

        public string Node(string op, IReadOnlyList<string> inputs, string output, params OnnxAttribute[] attributes)
        {
            var n = new NodeProto { OpType = op, Name = $"{output}/{op}" };
            n.Input.AddRange(inputs);
            n.Output.Add(output);
            n.Attribute.AddRange(attributes.Select(Attr));
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

        public string Initializer<T>(string name, Tensor<T> value) where T : unmanaged, IFloatingPointIeee754<T>
        {
            Initializer(name, ToFloats(value), value.ShapeArray);
            return name;
        }

        /// <summary>A scalar float initializer, added once however often it is asked for.</summary>
        public string Constant(string name, float value)
        {
            if (_constants.Add(name)) Initializer(name, [value]);
            return name;
        }
    }
}
