using System.Globalization;
using System.Numerics;
using Backprop.IO;
using Backprop.Nn;
using Backprop.Core;
using Backprop.Ops;

namespace Backprop.Interop;

/// <summary>
/// One module of a PyTorch state dict that holds tensors: its index in the nn.Sequential, its module class as inferred
/// from its tensors ("Linear", "LayerNorm" or "BatchNorm1d"), its weight and bias keys (null where absent) and its widths.
/// </summary>
public sealed record TorchLayer(int ModuleIndex, string Module, string? WeightKey, string? BiasKey, int Inputs, int Outputs)
{
    /// <summary>PyTorch's nn.Linear: weight [out, in] and an optional bias [out].</summary>
    public const string Linear = "Linear";
    /// <summary>PyTorch's nn.LayerNorm over the features: weight and bias [features] (absent without the affine part).</summary>
    public const string LayerNorm = "LayerNorm";
    /// <summary>PyTorch's nn.BatchNorm1d: weight, bias, running_mean and running_var [features].</summary>
    public const string BatchNorm1d = "BatchNorm1d";
    /// <summary>PyTorch's nn.Dropout: no tensors.</summary>
    public const string Dropout = "Dropout";
}

/// <summary>
/// One layer of the network an import builds: the kind that builds it (by its <see cref="LayerKind.TorchModule"/>),
/// the state-dict module it is filled from (null for a module without tensors: a LayerNorm without its affine part,
/// a Dropout), its widths, its activation and its settings (dropout's p).
/// </summary>
public sealed record TorchImportLayer(string Module, TorchLayer? Source, int Inputs, int Outputs, bool Affine, string Activation, double? P = null)
{
    /// <summary>The module index in the nn.Sequential (−1 where unknown).</summary>
    public int ModuleIndex { get; init; } = Source?.ModuleIndex ?? -1;
}

/// <summary>
/// Imports a PyTorch <c>nn.Sequential</c> of <c>nn.Linear</c>, <c>nn.LayerNorm</c>, <c>nn.BatchNorm1d</c>,
/// <c>nn.Dropout</c> and parameter-free activations, saved as a safetensors state dict
/// (<c>safetensors.torch.save_file(model.state_dict(), ...)</c>). The keys are N.weight, N.bias, N.running_mean,
/// N.running_var and N.num_batches_tracked, where N is the module's index in the Sequential (modules without tensors
/// take indices too). Each module's class is inferred from its tensors: a 2-D weight is a Linear; running statistics
/// make a BatchNorm1d (with or without affine weight and bias); a 1-D weight and bias without them a LayerNorm. The
/// state dict holds no activations, no Dropout and no LayerNorm(elementwise_affine=False): they are given either as
/// one activation per hidden Linear (<see cref="ResolveActivations"/>) or as the whole module layout
/// (<see cref="ResolveLayout"/>). Eps and momentum are not in a state dict: PyTorch's defaults (1e-5, 0.1) are used.
/// Every fault in the file is a <see cref="DataFormatException"/> naming the file, the key and the fault; a bad
/// activation list or layout is an <see cref="ArgumentException"/>.
/// </summary>
public static class TorchImport
{
    /// <summary>The dtypes a module's float tensors may have.</summary>
    public static readonly System.Collections.Immutable.ImmutableArray<string> FloatDTypes = ["F32", "F64", "F16", "BF16"];

    private static readonly System.Collections.Immutable.ImmutableArray<string> KnownParams =
        ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"];

    /// <summary>Finds the modules with tensors, in module order, infers their class and checks names, dtypes, ranks and the chain of widths.</summary>
    public static IReadOnlyList<TorchLayer> Inspect(SafeTensorsFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        string src = file.Source;
        var modules = new SortedDictionary<int, Dictionary<string, string>>();
        foreach (var name in file.Names)
        {
            int dot = name.IndexOf('.');
            string idx = dot < 0 ? name : name[..dot];
            string param = dot < 0 ? "" : name[(dot + 1)..];
            if (idx.Length == 0 || idx.Length > 9 || !idx.All(char.IsAsciiDigit) || (idx.Length > 1 && idx[0] == '0') || !KnownParams.Contains(param))
                throw new DataFormatException(src,
                    $"key {DataFormatException.Quote(name)} is not a parameter of a Linear, LayerNorm or BatchNorm1d module of an nn.Sequential (expected N.weight, N.bias, N.running_mean, N.running_var or N.num_batches_tracked, N the module index)");
            int i = int.Parse(idx, NumberStyles.None, CultureInfo.InvariantCulture);
            var info = file.GetInfo(name);
            if (param == "num_batches_tracked")
            {
                if (info.Rank != 0 || (info.DType != "I64" && info.DType != "I32"))
                    throw new DataFormatException(src, $"key {DataFormatException.Quote(name)} is {info.DType} {Shape(info)}; num_batches_tracked is an integer scalar");
            }
            else if (!FloatDTypes.Contains(info.DType))
                throw new DataFormatException(src, $"key {DataFormatException.Quote(name)} has dtype {info.DType}; a Linear or norm parameter must be F32, F64, F16 or BF16");
            if (!modules.TryGetValue(i, out var keys)) modules[i] = keys = [];
            keys[param] = name;
        }
        if (file.Names.Count == 0) throw new DataFormatException(src, "the state dict holds no tensors");

        var layers = new List<TorchLayer>();
        foreach (var (i, keys) in modules)
        {
            var layer = Classify(file, i, keys);
            if (layers.Count > 0 && layers[^1].Outputs != layer.Inputs)
            {
                string what = layer.Module == TorchLayer.Linear ? "it takes" : "it normalises";
                string key = layer.WeightKey ?? keys.GetValueOrDefault("running_mean") ?? keys.Values.First();
                throw new DataFormatException(src,
                    $"key {DataFormatException.Quote(key)} has shape {Shape(file.GetInfo(key))}: {what} {layer.Inputs} inputs but {Describe(layers[^1])} gives {layers[^1].Outputs} outputs");
            }
            layers.Add(layer);
        }
        if (!layers.Any(l => l.Module == TorchLayer.Linear))
            throw new DataFormatException(src, "the state dict holds no 2-D N.weight tensor: no Linear layer");
        return layers;
    }

    private static string Describe(TorchLayer l) => l.WeightKey ?? $"{l.ModuleIndex}.running_mean";

    private static TorchLayer Classify(SafeTensorsFile file, int i, Dictionary<string, string> keys)
    {
        string src = file.Source;
        string? w = keys.GetValueOrDefault("weight"), b = keys.GetValueOrDefault("bias");
        string? mean = keys.GetValueOrDefault("running_mean"), var = keys.GetValueOrDefault("running_var"), count = keys.GetValueOrDefault("num_batches_tracked");
        if (w is not null && file.GetInfo(w).Rank == 2)
        {
            // a Linear: only weight and bias
            foreach (var k in new[] { mean, var, count })
                if (k is not null)
                    throw new DataFormatException(src, $"key {DataFormatException.Quote(k)} is not a Linear parameter, but {w} is 2-D, which makes module {i} a Linear");
            var wi = file.GetInfo(w);
            int outs = wi.Shape[0], ins = wi.Shape[1];
            if (outs == 0 || ins == 0)
                throw new DataFormatException(src, $"key {DataFormatException.Quote(w)} has shape {Shape(wi)}: a layer needs at least one input and one output");
            if (b is not null)
            {
                var bi = file.GetInfo(b);
                if (bi.Rank != 1 || bi.Shape[0] != outs)
                    throw new DataFormatException(src, $"key {DataFormatException.Quote(b)} has shape {Shape(bi)} but {w} is {Shape(wi)}: expected [{outs}]");
            }
            return new TorchLayer(i, TorchLayer.Linear, w, b, ins, outs);
        }
        if (w is not null && file.GetInfo(w).Rank != 1)
            throw new DataFormatException(src, $"key {DataFormatException.Quote(w)} has shape {Shape(file.GetInfo(w))}; a Linear weight is 2-D [out, in], a norm weight 1-D [features]");
        if (w is null && b is not null && mean is null)
            throw new DataFormatException(src, $"key {DataFormatException.Quote(b)} has no matching '{i}.weight'");
        if ((w is null) != (b is null))
            throw new DataFormatException(src,
                $"module {i} has {(w is null ? b : w)} but not {i}.{(w is null ? "weight" : "bias")}: a norm layer has both weight and bias or neither");
        string module;
        int features;
        if (mean is not null || var is not null)
        {
            if (mean is null || var is null)
                throw new DataFormatException(src, $"module {i} has {mean ?? var} but not {i}.{(mean is null ? "running_mean" : "running_var")}: a BatchNorm1d has both");
            module = TorchLayer.BatchNorm1d;
            features = Features(file, mean);
            Features(file, var, features);
        }
        else
        {
            if (count is not null)
                throw new DataFormatException(src, $"key {DataFormatException.Quote(count)} without {i}.running_mean and {i}.running_var");
            module = TorchLayer.LayerNorm;
            features = Features(file, w!);
        }
        if (w is not null)
        {
            Features(file, w, features);
            Features(file, b!, features);
        }
        return new TorchLayer(i, module, w, b, features, features);
    }

    private static int Features(SafeTensorsFile file, string key, int expected = -1)
    {
        var info = file.GetInfo(key);
        if (info.Rank != 1 || info.Shape[0] == 0 || (expected >= 0 && info.Shape[0] != expected))
            throw new DataFormatException(file.Source,
                $"key {DataFormatException.Quote(key)} has shape {Shape(info)}: expected {(expected >= 0 ? $"[{expected}]" : "one non-empty dimension [features]")}");
        return info.Shape[0];
    }

    /// <summary>
    /// The layers from a comma-separated list of hidden activations: exactly one per hidden Linear, or a single name for
    /// all of them. A hidden Linear's activation follows the last norm module after it (Linear, BatchNorm1d, ReLU); the
    /// output gets the identity. Modules without tensors between a Linear and its norm modules cannot be told apart
    /// (an activation, a Dropout or a LayerNorm without affine): that needs <see cref="ResolveLayout"/>. Dropout after an
    /// activation is left out (it is the identity in evaluation). An empty or null list is allowed only when there is
    /// no hidden layer.
    /// </summary>
    public static IReadOnlyList<TorchImportLayer> ResolveActivations(string? spec, IReadOnlyList<TorchLayer> layers, string source, ActivationRegistry? activations = null)
    {
        ArgumentNullException.ThrowIfNull(layers);
        activations ??= ActivationRegistry.Default;
        var linears = layers.Where(l => l.Module == TorchLayer.Linear).ToList();
        int hidden = linears.Count - 1;
        var given = string.IsNullOrWhiteSpace(spec) ? [] : spec.Split(',').Select(s => s.Trim()).ToArray();
        string modules = string.Join(", ", linears.Select(l => l.ModuleIndex));
        if (given.Length == 0 && hidden > 0)
            throw new ArgumentException($"{source}: {linears.Count} Linear layers (modules {modules}): the activation list must name {hidden} hidden activation{(hidden == 1 ? "" : "s")}");
        for (int k = 0; k < given.Length; k++)
            if (given[k].Length == 0 || activations.Find(given[k]) is null)
                throw new ArgumentException($"{source}: activation entry {k + 1} '{given[k]}' is not an activation (known: {string.Join(", ", activations.Names)})");
        string[] acts;
        if (given.Length == hidden) acts = given;
        else if (given.Length == 1 && hidden > 1) acts = Enumerable.Repeat(given[0], hidden).ToArray();
        else
            throw new ArgumentException(
                $"{source}: the activation list has {given.Length} entr{(given.Length == 1 ? "y" : "ies")} but the state dict has {linears.Count} Linear layers (modules {modules}), so {hidden} hidden activation{(hidden == 1 ? " is" : "s are")} needed (or one for all); the output layer is always identity");
        if (layers[0].Module != TorchLayer.Linear)
            throw new ArgumentException($"{source}: module {layers[0].ModuleIndex} is a {layers[0].Module} before the first Linear: describe the modules with a layout");
        var result = new List<TorchImportLayer>();
        int block = -1;
        for (int j = 0; j < layers.Count; j++)
        {
            var l = layers[j];
            if (l.Module == TorchLayer.Linear) block++;
            else if (l.ModuleIndex != layers[j - 1].ModuleIndex + 1)
                throw new ArgumentException(
                    $"{source}: modules {layers[j - 1].ModuleIndex} and {l.ModuleIndex} have {(l.ModuleIndex - layers[j - 1].ModuleIndex == 2 ? "a module" : "modules")} without tensors between them (an activation, a Dropout or a LayerNorm without affine?): give the whole layout instead of the activation list");
            bool lastOfBlock = j + 1 == layers.Count || layers[j + 1].Module == TorchLayer.Linear;
            string act = lastOfBlock && block < hidden ? activations.Find(acts[block])!.Name : "identity";
            // adjacent module indices mean nothing sits between this layer and the next Linear
            if (lastOfBlock && j + 1 < layers.Count && layers[j + 1].ModuleIndex == l.ModuleIndex + 1 && !activations.Create<double>(act).IsIdentity)
                throw new ArgumentException(
                    $"{source}: modules {l.ModuleIndex} and {layers[j + 1].ModuleIndex} are adjacent, so no activation sits between them, but the activation list gives '{acts[block]}' (use identity)");
            result.Add(new TorchImportLayer(l.Module, l, l.Inputs, l.Outputs, l.WeightKey is not null, act));
        }
        return result;
    }

    /// <summary>
    /// The layers from the whole module layout of the nn.Sequential, comma-separated, one token per module in order:
    /// <c>linear</c>, <c>layernorm</c>, <c>batchnorm</c>, <c>dropout</c> or <c>dropout:P</c>, or an activation name.
    /// A module with tensors must be what its tensors say; <c>layernorm</c> at a module without tensors is a LayerNorm
    /// without affine. An activation follows the layer before it.
    /// </summary>
    public static IReadOnlyList<TorchImportLayer> ResolveLayout(string spec, IReadOnlyList<TorchLayer> layers, string source, ActivationRegistry? activations = null)
    {
        ArgumentNullException.ThrowIfNull(layers);
        activations ??= ActivationRegistry.Default;
        var tokens = (spec ?? "").Split(',').Select(s => s.Trim()).ToArray();
        var byIndex = layers.ToDictionary(l => l.ModuleIndex);
        int needed = layers[^1].ModuleIndex + 1;
        if (tokens.Length < needed)
            throw new ArgumentException($"{source}: the layout names {tokens.Length} module{(tokens.Length == 1 ? "" : "s")} but the state dict has tensors for module {needed - 1}: name every module of the Sequential, 0 to {needed - 1} at least");
        var result = new List<TorchImportLayer>();
        int width = layers[0].Inputs;
        for (int i = 0; i < tokens.Length; i++)
        {
            string t = tokens[i].ToLowerInvariant();
            string Where() => $"{source}: layout entry {i + 1} (module {i}) '{tokens[i]}'";
            byIndex.TryGetValue(i, out var l);
            string? module = t switch
            {
                "linear" => TorchLayer.Linear,
                "layernorm" => TorchLayer.LayerNorm,
                "batchnorm" or "batchnorm1d" => TorchLayer.BatchNorm1d,
                _ when t == "dropout" || t.StartsWith("dropout:", StringComparison.Ordinal) => TorchLayer.Dropout,
                _ => null,
            };
            if (module is null)
            {
                var act = t.Length == 0 ? null : activations.Find(t);
                if (act is null)
                    throw new ArgumentException($"{Where()} is not a module (known: linear, layernorm, batchnorm, dropout, dropout:P, or an activation: {string.Join(", ", activations.Names)})");
                if (l is not null)
                    throw new ArgumentException($"{Where()}: the state dict has tensors for module {i} ({l.Module}), so it is not an activation");
                if (result.Count == 0 || result[^1].Module == TorchLayer.Dropout || result[^1].Activation != "identity")
                    throw new ArgumentException($"{Where()}: an activation must follow a linear or norm module that has no activation yet");
                result[^1] = result[^1] with { Activation = act.Name };
                continue;
            }
            if (l is not null && l.Module != module)
                throw new ArgumentException($"{Where()}: the state dict's tensors make module {i} a {l.Module}, not a {module}");
            if (l is null && module != TorchLayer.Dropout && module != TorchLayer.LayerNorm)
                throw new ArgumentException($"{Where()}: the state dict has no tensors for module {i}, but a {module} has them");
            if (module == TorchLayer.Dropout)
            {
                double p = 0.5;
                if (t.Length > "dropout".Length
                    && (!double.TryParse(t["dropout:".Length..], NumberStyles.Float, CultureInfo.InvariantCulture, out p) || !(p >= 0 && p < 1)))
                    throw new ArgumentException($"{Where()}: p must be a number in [0, 1)");
                result.Add(new TorchImportLayer(module, null, width, width, false, "identity", p) { ModuleIndex = i });
                continue;
            }
            if (l is null)
            {
                result.Add(new TorchImportLayer(module, null, width, width, false, "identity") { ModuleIndex = i });
                continue;
            }
            result.Add(new TorchImportLayer(module, l, l.Inputs, l.Outputs, l.WeightKey is not null, "identity"));
            width = l.Outputs;
        }
        return result;
    }

    /// <summary>Builds the network from a state dict and the activation of every tensor module (one per entry of <see cref="Inspect"/>).</summary>
    public static Sequential<T> Import<T>(SafeTensorsFile file, IReadOnlyList<string> activations, Catalog? catalog = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(activations);
        var layers = Inspect(file);
        if (activations.Count != layers.Count)
            throw new ArgumentException($"{file.Source} has {layers.Count} modules with tensors but {activations.Count} activations were given");
        return Import<T>(file, layers.Select((l, k) => new TorchImportLayer(l.Module, l, l.Inputs, l.Outputs, l.WeightKey is not null, activations[k])).ToList(), catalog);
    }

    /// <summary>Builds the network from a state dict and its layers (as <see cref="ResolveActivations"/> or <see cref="ResolveLayout"/> give them).</summary>
    public static Sequential<T> Import<T>(SafeTensorsFile file, IReadOnlyList<TorchImportLayer> layers, Catalog? catalog = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(layers);
        catalog ??= Catalog.Default;
        var list = new List<ILayer<T>>(layers.Count);
        foreach (var l in layers)
        {
            // the layer kind that imports the PyTorch module builds each layer; its tensors are filled from N.{name}
            var kind = catalog.Layers.ForTorchModule(l.Module)
                ?? throw new ArgumentException($"no layer kind imports PyTorch's nn.{l.Module}");
            var settings = l.P is double p ? new Dictionary<string, double> { ["p"] = p } : null;
            var shape = new LayerShape(l.Inputs, l.Outputs, l.Module == TorchLayer.Linear ? l.Source?.BiasKey is not null : l.Affine) { Settings = settings };
            var layer = kind.Create(shape, catalog.Activations.Create<T>(l.Activation));
            foreach (var param in layer.Parameters) Fill(file, $"{l.ModuleIndex}.{param.Name}", param.Value.Value);
            foreach (var b in layer.Buffers) Fill(file, $"{l.ModuleIndex}.{b.Name}", b.Value);
            list.Add(layer);
        }
        return new Sequential<T>(list);
    }

    private static void Fill<T>(SafeTensorsFile file, string key, Tensor<T> target) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var t = file.GetTensor<T>(key);
        CheckFinite(file.Source, key, t);
        t.Span.CopyTo(target.Span);
    }

    /// <summary>The PyTorch module class of a Linear.</summary>
    public const string LinearModule = TorchLayer.Linear;

    /// <summary>Reads a state dict and builds the network; <paramref name="activationSpec"/> as for <see cref="ResolveActivations"/>.</summary>
    public static Sequential<T> Import<T>(string path, string? activationSpec, Catalog? catalog = null) where T : unmanaged, IFloatingPointIeee754<T>
    {
        catalog ??= Catalog.Default;
        var file = SafeTensorsFile.Read(path);
        return Import<T>(file, ResolveActivations(activationSpec, Inspect(file), path, catalog.Activations), catalog);
    }

    /// <summary>Reads a state dict and builds the network from its whole module layout (<see cref="ResolveLayout"/>).</summary>
    public static Sequential<T> ImportLayout<T>(string path, string layout, Catalog? catalog = null) where T : unmanaged, IFloatingPointIeee754<T>
    {
        catalog ??= Catalog.Default;
        var file = SafeTensorsFile.Read(path);
        return Import<T>(file, ResolveLayout(layout, Inspect(file), path, catalog.Activations), catalog);
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
