using System.Globalization;
using System.Numerics;
using Backprop.IO;
using Backprop.Nn;
using Backprop.Core;
using Backprop.Ops;

namespace Backprop.Interop;

/// <summary>One nn.Linear found in a PyTorch state dict: its module index and tensor names.</summary>
public sealed record TorchLinear(int ModuleIndex, string WeightKey, string? BiasKey, int Inputs, int Outputs);

/// <summary>
/// Imports a PyTorch <c>nn.Sequential</c> of <c>nn.Linear</c> layers and parameter-free activations, saved as a
/// safetensors state dict (<c>safetensors.torch.save_file(model.state_dict(), ...)</c>). The keys are
/// <c>N.weight</c> [out × in] and optionally <c>N.bias</c> [out], where N is the module's index in the Sequential
/// (activation modules take indices too, so a 3-layer MLP has 0, 2 and 4). The state dict holds no activations:
/// they are given by name, one per hidden layer; the output layer is the identity (logits).
/// Every fault in the file is a <see cref="DataFormatException"/> naming the file, the key and the fault; a bad
/// activation list is an <see cref="ArgumentException"/>.
/// </summary>
public static class TorchImport
{
    /// <summary>The dtypes a Linear's tensors may have.</summary>
    public static readonly System.Collections.Immutable.ImmutableArray<string> FloatDTypes = ["F32", "F64", "F16", "BF16"];

    /// <summary>Finds the Linear layers of a state dict, in module order, and checks names, dtypes, ranks and the chain of shapes.</summary>
    public static IReadOnlyList<TorchLinear> Inspect(SafeTensorsFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        string src = file.Source;
        var weights = new SortedDictionary<int, string>();
        var biases = new SortedDictionary<int, string>();
        foreach (var name in file.Names)
        {
            int dot = name.IndexOf('.');
            string idx = dot < 0 ? name : name[..dot];
            string param = dot < 0 ? "" : name[(dot + 1)..];
            if (idx.Length == 0 || idx.Length > 9 || !idx.All(char.IsAsciiDigit) || (idx.Length > 1 && idx[0] == '0') || (param != "weight" && param != "bias"))
                throw new DataFormatException(src,
                    $"key {DataFormatException.Quote(name)} is not a Linear parameter of an nn.Sequential (expected N.weight or N.bias, N the module index)");
            int i = int.Parse(idx, NumberStyles.None, CultureInfo.InvariantCulture);
            var info = file.GetInfo(name);
            if (!FloatDTypes.Contains(info.DType))
                throw new DataFormatException(src, $"key {DataFormatException.Quote(name)} has dtype {info.DType}; a Linear parameter must be F32, F64, F16 or BF16");
            (param == "weight" ? weights : biases)[i] = name;
        }
        if (weights.Count == 0)
            throw new DataFormatException(src, file.Names.Count == 0 ? "the state dict holds no tensors" : "the state dict holds no N.weight tensor: no Linear layer");
        foreach (var (i, b) in biases)
            if (!weights.ContainsKey(i))
                throw new DataFormatException(src, $"key {DataFormatException.Quote(b)} has no matching '{i}.weight'");

        var layers = new List<TorchLinear>();
        foreach (var (i, w) in weights)
        {
            var wi = file.GetInfo(w);
            if (wi.Rank != 2)
                throw new DataFormatException(src, $"key {DataFormatException.Quote(w)} has shape {Shape(wi)}; a Linear weight is 2-D [out, in]");
            int outs = wi.Shape[0], ins = wi.Shape[1];
            if (outs == 0 || ins == 0)
                throw new DataFormatException(src, $"key {DataFormatException.Quote(w)} has shape {Shape(wi)}: a layer needs at least one input and one output");
            string? b = biases.GetValueOrDefault(i);
            if (b is not null)
            {
                var bi = file.GetInfo(b);
                if (bi.Rank != 1 || bi.Shape[0] != outs)
                    throw new DataFormatException(src, $"key {DataFormatException.Quote(b)} has shape {Shape(bi)} but {w} is {Shape(wi)}: expected [{outs}]");
            }
            if (layers.Count > 0 && layers[^1].Outputs != ins)
                throw new DataFormatException(src,
                    $"key {DataFormatException.Quote(w)} has shape {Shape(wi)}: it takes {ins} inputs but {layers[^1].WeightKey} gives {layers[^1].Outputs} outputs");
            layers.Add(new TorchLinear(i, w, b, ins, outs));
        }
        return layers;
    }

    /// <summary>
    /// The activation of every layer from a comma-separated list of hidden activations: exactly one per hidden layer,
    /// or a single name for all of them; the output layer gets the identity. An empty or null list is allowed only
    /// when there is no hidden layer.
    /// </summary>
    public static string[] ResolveActivations(string? spec, IReadOnlyList<TorchLinear> layers, string source, ActivationRegistry? activations = null)
    {
        ArgumentNullException.ThrowIfNull(layers);
        activations ??= ActivationRegistry.Default;
        int hidden = layers.Count - 1;
        var given = string.IsNullOrWhiteSpace(spec) ? [] : spec.Split(',').Select(s => s.Trim()).ToArray();
        string modules = string.Join(", ", layers.Select(l => l.ModuleIndex));
        if (given.Length == 0 && hidden > 0)
            throw new ArgumentException($"{source}: {layers.Count} Linear layers (modules {modules}): the activation list must name {hidden} hidden activation{(hidden == 1 ? "" : "s")}");
        for (int k = 0; k < given.Length; k++)
            if (given[k].Length == 0 || activations.Find(given[k]) is null)
                throw new ArgumentException($"{source}: activation entry {k + 1} '{given[k]}' is not an activation (known: {string.Join(", ", activations.Names)})");
        string[] acts;
        if (given.Length == hidden) acts = given;
        else if (given.Length == 1 && hidden > 1) acts = Enumerable.Repeat(given[0], hidden).ToArray();
        else
            throw new ArgumentException(
                $"{source}: the activation list has {given.Length} entr{(given.Length == 1 ? "y" : "ies")} but the state dict has {layers.Count} Linear layers (modules {modules}), so {hidden} hidden activation{(hidden == 1 ? " is" : "s are")} needed (or one for all); the output layer is always identity");
        for (int k = 0; k < hidden; k++)
        {
            // Adjacent module indices mean nothing sits between the two Linear modules.
            if (layers[k + 1].ModuleIndex == layers[k].ModuleIndex + 1 && !activations.Create<double>(acts[k]).IsIdentity)
                throw new ArgumentException(
                    $"{source}: modules {layers[k].ModuleIndex} and {layers[k + 1].ModuleIndex} are adjacent Linear layers, so no activation sits between them, but the activation list gives '{acts[k]}' (use identity)");
        }
        return [.. acts.Select(a => activations.Find(a)!.Name), "identity"];
    }

    /// <summary>Builds the network from a state dict and the activation of every layer (as <see cref="ResolveActivations"/> gives them).</summary>
    public static Sequential<T> Import<T>(SafeTensorsFile file, IReadOnlyList<string> activations, Catalog? catalog = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(activations);
        catalog ??= Catalog.Default;
        var layers = Inspect(file);
        if (activations.Count != layers.Count)
            throw new ArgumentException($"{file.Source} has {layers.Count} Linear layers but {activations.Count} activations were given");
        // the layer kind that imports nn.Linear builds each layer; its parameters are filled from N.{name}
        var kind = catalog.Layers.ForTorchModule(LinearModule)
            ?? throw new ArgumentException($"no layer kind imports PyTorch's nn.{LinearModule}");
        var list = new List<ILayer<T>>(layers.Count);
        for (int k = 0; k < layers.Count; k++)
        {
            var l = layers[k];
            var layer = kind.Create(new LayerShape(l.Inputs, l.Outputs, l.BiasKey is not null), catalog.Activations.Create<T>(activations[k]));
            foreach (var p in layer.Parameters)
            {
                string key = $"{l.ModuleIndex}.{p.Name}";
                var t = file.GetTensor<T>(key);
                CheckFinite(file.Source, key, t);
                t.Span.CopyTo(p.Value.Value.Span);
            }
            list.Add(layer);
        }
        return new Sequential<T>(list);
    }

    /// <summary>The PyTorch module class whose state-dict entries <see cref="Inspect"/> recognises.</summary>
    public const string LinearModule = "Linear";

    /// <summary>Reads a state dict and builds the network; <paramref name="activationSpec"/> as for <see cref="ResolveActivations"/>.</summary>
    public static Sequential<T> Import<T>(string path, string? activationSpec, Catalog? catalog = null) where T : unmanaged, IFloatingPointIeee754<T>
    {
        catalog ??= Catalog.Default;
        var file = SafeTensorsFile.Read(path);
        var acts = ResolveActivations(activationSpec, Inspect(file), path, catalog.Activations);
        return Import<T>(file, acts, catalog);
    }

    private static void CheckFinite<T>(string src, string key, Tensor<T> t) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var d = t.Span;
        for (int i = 0; i < d.Length; i++)
            if (!T.IsFinite(d[i]))
                throw new DataFormatException(src, $"key {DataFormatException.Quote(key)} holds {d[i]} at flat index {i}: weights must be finite");
    }

    private static string Shape(SafeTensorInfo i) => $"[{string.Join(", ", i.ShapeArray)}]";
}
