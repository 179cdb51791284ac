using System.Numerics;
using System.Text.Json;
using Backprop.Data;
using Backprop.IO;
using Backprop.Nn;
using Backprop.Core;

namespace Backprop.Training;

/// <summary>What a model file holds (<see cref="ModelFile.Load{T}"/>): a network with what it needs to be used on new data, label names, input normalisation and the recorded metadata.</summary>
public sealed record SavedModel<T>(Sequential<T> Network, string[] LabelNames, Standardizer? Standardizer, IReadOnlyDictionary<string, string> Metadata)
    where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The CSV feature columns the network was trained on, in input order (<see cref="ModelFile.FeatureNamesKey"/>);
    /// null for a model that records none (trained on MNIST, or saved before names were recorded): its inputs are taken by position.</summary>
    public string[]? FeatureNames { get; init; }
}

/// <summary>
/// The architecture as stored in a model file's metadata: sizes, each layer's activation and bias flag, and, only when
/// some layer is not dense, each layer's kind (absent for a dense network, so its files are as they always were).
/// </summary>
public sealed record Architecture(int[] Sizes, string[] Activations, bool[] Bias)
{
    /// <summary>Each layer's kind (<see cref="LayerKindRegistry"/> name); null when every layer is dense.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string[]? Kinds { get; init; }

    /// <summary>
    /// Each layer's saved settings (eps, momentum, p) by name (<see cref="ILayer{T}.Settings"/>); absent when no layer
    /// has any (a dense network), so such files are as they always were. A missing entry takes the kind's default.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public Dictionary<string, double>[]? Settings { get; init; }
}

/// <summary>
/// Models on disk as safetensors: each layer's parameters and buffers as tensors layers.{i}.{name} (a dense layer's
/// layers.{i}.weight and layers.{i}.bias), and the architecture, activations, label names and normalisation as JSON
/// strings in __metadata__. Layers are rebuilt by their kind (<see cref="LayerKindRegistry"/>) and filled by name.
/// Every write is atomic.
/// </summary>
public static class ModelFile
{
    /// <summary>The metadata key that marks a file as a backprop model.</summary>
    public const string FormatKey = "format";
    /// <summary>The value of <see cref="FormatKey"/> in a backprop model file in every model file this library writes, whatever its layers.</summary>
    public const string FormatValue = "backprop-mlp";
    /// <summary>The metadata key of the <see cref="Training.Architecture"/>, as JSON.</summary>
    public const string ArchitectureKey = "architecture";
    /// <summary>The metadata key of the CSV feature column names the network was trained on, in input order, as a JSON array of strings.</summary>
    public const string FeatureNamesKey = "feature_names";

    /// <summary>The architecture record of <paramref name="net"/>, as a model file stores it.</summary>
    public static Architecture ArchitectureOf<T>(Sequential<T> net) where T : unmanaged, IFloatingPointIeee754<T> => new(
        [net.Inputs, .. net.Layers.Select(l => l.Outputs)],
        net.Layers.Select(l => l.Activation.Name).ToArray(),
        net.Layers.Select(l => l.Parameter("bias") is not null).ToArray())
    {
        Kinds = net.Layers.All(l => l.Kind == DenseKind.KindName) ? null : net.Layers.Select(l => l.Kind).ToArray(),
        Settings = net.Layers.All(l => l.Settings.Count == 0) ? null
            : net.Layers.Select(l => new Dictionary<string, double>(l.Settings.OrderBy(kv => kv.Key, StringComparer.Ordinal))).ToArray(),
    };

    /// <summary>The __metadata__ entries of a model file for <paramref name="net"/>: the format marker, the architecture,
    /// the dtype, and the label names, input standardisation and feature column names when given.</summary>
    /// <param name="net">The network.</param>
    /// <param name="labelNames">The class or target names, in output order; null: none recorded.</param>
    /// <param name="standardizer">The input standardisation the network was trained behind; null: none.</param>
    /// <param name="featureNames">The CSV feature columns the network was trained on, in input order; null: none recorded (inputs by position).</param>
    public static Dictionary<string, string> Metadata<T>(Sequential<T> net, IReadOnlyList<string>? labelNames, Standardizer? standardizer,
        IReadOnlyList<string>? featureNames = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var meta = new Dictionary<string, string>
        {
            [FormatKey] = FormatValue,
            [ArchitectureKey] = JsonSerializer.Serialize(ArchitectureOf(net), TrainingJsonContext.Default.Architecture),
            [DTypeKey] = typeof(T) == typeof(float) ? "float32" : "float64",
        };
        if (labelNames is not null) DataMetadata.WriteLabelNames(meta, labelNames);
        standardizer?.WriteMetadata(meta);
        if (featureNames is not null)
        {
            if (featureNames.Count != net.Inputs)
                throw new ArgumentException($"{featureNames.Count} feature names but the network takes {net.Inputs} inputs", nameof(featureNames));
            DataMetadata.WriteLabelNames(meta, featureNames, FeatureNamesKey);
        }
        return meta;
    }

    /// <summary>
    /// snake_case names, NaN and ±Infinity as named literals; read-only, so that no caller can change it for all. It
    /// resolves the types of model files and checkpoints only (<see cref="TrainingJsonContext"/>, generated at compile
    /// time: no reflection, so trimmed and Native AOT builds read and write the same files).
    /// </summary>
    public static JsonSerializerOptions JsonOptions { get; } = ReadOnly(TrainingJsonContext.Default.Options);

    private static JsonSerializerOptions ReadOnly(JsonSerializerOptions options)
    {
        options.MakeReadOnly();
        return options;
    }

    /// <summary>Every layer's parameters, then its buffers, as layers.{i}.{name}.</summary>
    public static IEnumerable<SafeTensorEntry> Tensors<T>(Sequential<T> net) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = 0; i < net.Layers.Count; i++)
        {
            foreach (var p in net.Layers[i].Parameters) yield return SafeTensorEntry.From($"layers.{i}.{p.Name}", p.Value.Value);
            foreach (var b in net.Layers[i].Buffers) yield return SafeTensorEntry.From($"layers.{i}.{b.Name}", b.Value);
        }
    }

    /// <summary>Writes <paramref name="net"/> as a model file at <paramref name="path"/>, atomically (a failed write leaves an existing file intact).</summary>
    /// <param name="path">The destination .safetensors file; its directory must exist.</param>
    /// <param name="net">The network whose parameters and buffers are written, in its element type.</param>
    /// <param name="labelNames">The class or target names, in output order; null: none recorded.</param>
    /// <param name="standardizer">The input standardisation the network was trained behind; null: none.</param>
    /// <param name="extraTensors">More tensors to write beside the layers' (e.g. a checkpoint's optimizer state).</param>
    /// <param name="extraMetadata">More metadata entries; a key that is also a model entry overrides it.</param>
    /// <param name="featureNames">The CSV feature columns the network was trained on, in input order, so that data is matched
    /// to its inputs by name; null: none recorded (inputs by position).</param>
    public static void Save<T>(string path, Sequential<T> net, IReadOnlyList<string>? labelNames = null, Standardizer? standardizer = null,
        IEnumerable<SafeTensorEntry>? extraTensors = null, IReadOnlyDictionary<string, string>? extraMetadata = null, IReadOnlyList<string>? featureNames = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var meta = Metadata(net, labelNames, standardizer, featureNames);
        if (extraMetadata is not null) foreach (var (k, v) in extraMetadata) meta[k] = v;
        SafeTensorsFile.Write(path, Tensors(net).Concat(extraTensors ?? []), meta);
    }

    /// <summary>The metadata key of the precision a model file was saved in: "float32" or "float64".</summary>
    public const string DTypeKey = "dtype";

    /// <summary>
    /// Whether a model file holds a float64 model: its <c>__metadata__.dtype</c> (<see cref="DTypeKey"/>) says so, or, in
    /// a file that records none (written by another tool), its tensors are F64. Running such a model in float32 would
    /// round every weight; the CLI's evaluate, predict and bench infer read the answer to run it as it was trained.
    /// </summary>
    /// <exception cref="DataFormatException">The recorded dtype is neither float32 nor float64.</exception>
    public static bool IsFloat64(SafeTensorsFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        if (file.Metadata.TryGetValue(DTypeKey, out var dtype))
            return dtype switch
            {
                "float64" => true,
                "float32" => false,
                _ => throw new DataFormatException($"{file.Source}: __metadata__.{DTypeKey} is '{dtype}', not float32 or float64"),
            };
        return file.Tensors.Count > 0 && file.Tensors.All(t => t.DType == "F64");
    }

    /// <summary>Loads a model; every fault is a <see cref="DataFormatException"/> naming the file and the field.</summary>
    public static SavedModel<T> Load<T>(string path, Catalog? catalog = null) where T : unmanaged, IFloatingPointIeee754<T> =>
        FromFile<T>(SafeTensorsFile.Read(path), catalog);

    /// <summary>Rebuilds the model in an already read safetensors file: the layers by kind from the architecture, filled
    /// by tensor name, with the label names and standardisation from the metadata.</summary>
    /// <param name="file">The parsed file; its <see cref="SafeTensorsFile.Source"/> names it in messages.</param>
    /// <param name="catalog">The activations, losses and layer kinds names resolve against; null: <see cref="Catalog.Default"/>.</param>
    /// <exception cref="DataFormatException">The metadata is missing or inconsistent, or a tensor is missing or of the wrong shape.</exception>
    public static SavedModel<T> FromFile<T>(SafeTensorsFile file, Catalog? catalog = null) where T : unmanaged, IFloatingPointIeee754<T>
    {
        catalog ??= Catalog.Default;
        string src = file.Source;
        var meta = file.Metadata;
        if (!meta.TryGetValue(ArchitectureKey, out var archJson))
            throw new DataFormatException($"{src}: __metadata__.architecture is missing: not a backprop model (a PyTorch state dict must be imported first)");
        Architecture? arch;
        try { arch = JsonSerializer.Deserialize(archJson, TrainingJsonContext.Default.Architecture); }
        catch (JsonException e) { throw new DataFormatException($"{src}: __metadata__.architecture is not valid JSON: {e.Message.Split('\n')[0]}"); }
        if (arch?.Sizes is null || arch.Activations is null || arch.Bias is null)
            throw new DataFormatException($"{src}: __metadata__.architecture needs sizes, activations and bias");
        int layers = arch.Sizes.Length - 1;
        if (layers < 1) throw new DataFormatException($"{src}: __metadata__.architecture.sizes needs at least two sizes");
        if (arch.Activations.Length != layers || arch.Bias.Length != layers)
            throw new DataFormatException($"{src}: __metadata__.architecture has {layers} layers but {arch.Activations.Length} activations and {arch.Bias.Length} bias flags");
        if (arch.Kinds is not null && arch.Kinds.Length != layers)
            throw new DataFormatException($"{src}: __metadata__.architecture has {layers} layers but {arch.Kinds.Length} kinds");
        if (arch.Settings is not null && arch.Settings.Length != layers)
            throw new DataFormatException($"{src}: __metadata__.architecture has {layers} layers but {arch.Settings.Length} settings entries");
        var list = new List<ILayer<T>>();
        for (int i = 0; i < layers; i++)
        {
            string kindName = arch.Kinds?[i] ?? DenseKind.KindName;
            var kind = catalog.Layers.Find(kindName)
                ?? throw new DataFormatException($"{src}: __metadata__.architecture.kinds[{i}]: unknown layer kind '{kindName}' (known: {string.Join(", ", catalog.Layers.Names)})");
            var act = catalog.Activations.TryCreate<T>(arch.Activations[i])
                ?? throw new DataFormatException($"{src}: __metadata__.architecture.activations[{i}]: unknown activation '{arch.Activations[i]}'");
            var settings = arch.Settings?[i];
            if (settings is not null)
                foreach (var name in settings.Keys)
                    if (!kind.Settings.Any(s => s.Saved && s.Name == name))
                        throw new DataFormatException($"{src}: __metadata__.architecture.settings[{i}]: a {kindName} layer has no saved setting '{name}'");
            ILayer<T> layer;
            try { layer = kind.Create(new LayerShape(arch.Sizes[i], arch.Sizes[i + 1], arch.Bias[i]) { Settings = settings }, act); }
            catch (Exception e) when (e is ArgumentException or ShapeMismatchException)
            {
                throw new DataFormatException($"{src}: layers[{i}] ({kindName} {arch.Sizes[i]}→{arch.Sizes[i + 1]}): {e.Message}");
            }
            foreach (var p in layer.Parameters) Fill(file, $"layers.{i}.{p.Name}", p.Value.Value);
            foreach (var b in layer.Buffers) Fill(file, $"layers.{i}.{b.Name}", b.Value);
            list.Add(layer);
        }
        var labels = DataMetadata.ReadLabelNames(meta, src) ?? Enumerable.Range(0, arch.Sizes[^1]).Select(i => i.ToString()).ToArray();
        if (labels.Length != arch.Sizes[^1])
            throw new DataFormatException($"{src}: __metadata__.label_names has {labels.Length} names but the network has {arch.Sizes[^1]} outputs");
        var std = Standardizer.ReadMetadata(meta, src);
        if (std is not null && std.FeatureCount != arch.Sizes[0])
            throw new DataFormatException($"{src}: the standardizer has {std.FeatureCount} features but the network takes {arch.Sizes[0]}");
        var features = DataMetadata.ReadLabelNames(meta, src, FeatureNamesKey);
        if (features is not null && features.Length != arch.Sizes[0])
            throw new DataFormatException($"{src}: __metadata__.{FeatureNamesKey} has {features.Length} names but the network takes {arch.Sizes[0]} inputs");
        return new SavedModel<T>(new Sequential<T>(list), labels, std, meta) { FeatureNames = features };
    }

    /// <summary>Copies the file's tensor <paramref name="name"/> into <paramref name="target"/>, which gives the shape the architecture implies.</summary>
    private static void Fill<T>(SafeTensorsFile file, string name, Tensor<T> target) where T : unmanaged, IFloatingPointIeee754<T>
    {
        string src = file.Source;
        if (!file.Contains(name)) throw new DataFormatException($"{src}: tensor {name} is missing");
        var t = file.GetTensor<T>(name);
        if (!t.SameShape(target.Shape))
        {
            string expected = target.Rank == 2 ? $"{target.Dim(0)}×{target.Dim(1)}" : target.ShapeString;
            throw new DataFormatException($"{src}: {name} is {t.ShapeString} but the architecture says {expected}");
        }
        t.Span.CopyTo(target.Span);
    }
}
