using System.Numerics;
using System.Text.Json;
using Backprop.Data;
using Backprop.IO;
using Backprop.Nn;

namespace Backprop.Training;

/// <summary>A network with what it needs to be used on new data: label names and input normalisation.</summary>
public sealed record Model<T>(Sequential<T> Network, string[] LabelNames, Standardizer? Standardizer, IReadOnlyDictionary<string, string> Metadata)
    where T : unmanaged, IFloatingPointIeee754<T>;

/// <summary>The architecture as stored in a model file's metadata.</summary>
public sealed record Architecture(int[] Sizes, string[] Activations, bool[] Bias);

/// <summary>
/// Models on disk as safetensors: tensors layers.{i}.weight and layers.{i}.bias, and the architecture,
/// activations, label names and normalisation as JSON strings in __metadata__. Every write is atomic.
/// </summary>
public static class ModelFile
{
    public const string FormatKey = "format";
    public const string FormatValue = "backprop-mlp";
    public const string ArchitectureKey = "architecture";

    public static Architecture ArchitectureOf<T>(Sequential<T> net) where T : unmanaged, IFloatingPointIeee754<T> => new(
        [net.Inputs, .. net.Layers.Select(l => l.Outputs)],
        net.Layers.Select(l => l.Activation.Name).ToArray(),
        net.Layers.Select(l => l.Bias is not null).ToArray());

    public static Dictionary<string, string> Metadata<T>(Sequential<T> net, IReadOnlyList<string>? labelNames, Standardizer? standardizer)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var meta = new Dictionary<string, string>
        {
            [FormatKey] = FormatValue,
            [ArchitectureKey] = JsonSerializer.Serialize(ArchitectureOf(net), JsonOptions),
            ["dtype"] = typeof(T) == typeof(float) ? "float32" : "float64",
        };
        if (labelNames is not null) DataMetadata.WriteLabelNames(meta, labelNames);
        standardizer?.WriteMetadata(meta);
        return meta;
    }

    public static readonly JsonSerializerOptions JsonOptions = ReadOnly(new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    });

    // Shared by every caller: locked now, rather than by its first use, so that no caller can change it for the others.
    private static JsonSerializerOptions ReadOnly(JsonSerializerOptions options)
    {
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }

    public static IEnumerable<SafeTensorEntry> Tensors<T>(Sequential<T> net) where T : unmanaged, IFloatingPointIeee754<T>
    {
        for (int i = 0; i < net.Layers.Count; i++)
        {
            yield return SafeTensorEntry.From($"layers.{i}.weight", net.Layers[i].Weight.Value);
            if (net.Layers[i].Bias is { } b) yield return SafeTensorEntry.From($"layers.{i}.bias", b.Value);
        }
    }

    public static void Save<T>(string path, Sequential<T> net, IReadOnlyList<string>? labelNames = null, Standardizer? standardizer = null,
        IEnumerable<SafeTensorEntry>? extraTensors = null, IReadOnlyDictionary<string, string>? extraMetadata = null)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var meta = Metadata(net, labelNames, standardizer);
        if (extraMetadata is not null) foreach (var (k, v) in extraMetadata) meta[k] = v;
        SafeTensorsFile.Write(path, Tensors(net).Concat(extraTensors ?? []), meta);
    }

    /// <summary>Loads a model; every fault is a <see cref="DataFormatException"/> naming the file and the field.</summary>
    public static Model<T> Load<T>(string path) where T : unmanaged, IFloatingPointIeee754<T> => FromFile<T>(SafeTensorsFile.Read(path));

    public static Model<T> FromFile<T>(SafeTensorsFile file) where T : unmanaged, IFloatingPointIeee754<T>
    {
        string src = file.Source;
        var meta = file.Metadata;
        if (!meta.TryGetValue(ArchitectureKey, out var archJson))
            throw new DataFormatException($"{src}: __metadata__.architecture is missing: not a backprop model (import PyTorch state dicts with `backprop import`)");
        Architecture? arch;
        try { arch = JsonSerializer.Deserialize<Architecture>(archJson, JsonOptions); }
        catch (JsonException e) { throw new DataFormatException($"{src}: __metadata__.architecture is not valid JSON: {e.Message.Split('\n')[0]}"); }
        if (arch?.Sizes is null || arch.Activations is null || arch.Bias is null)
            throw new DataFormatException($"{src}: __metadata__.architecture needs sizes, activations and bias");
        int layers = arch.Sizes.Length - 1;
        if (layers < 1) throw new DataFormatException($"{src}: __metadata__.architecture.sizes needs at least two sizes");
        if (arch.Activations.Length != layers || arch.Bias.Length != layers)
            throw new DataFormatException($"{src}: __metadata__.architecture has {layers} layers but {arch.Activations.Length} activations and {arch.Bias.Length} bias flags");
        var list = new List<DenseLayer<T>>();
        for (int i = 0; i < layers; i++)
        {
            var act = Activations.TryCreate<T>(arch.Activations[i])
                ?? throw new DataFormatException($"{src}: __metadata__.architecture.activations[{i}]: unknown activation '{arch.Activations[i]}'");
            string wName = $"layers.{i}.weight";
            if (!file.Contains(wName)) throw new DataFormatException($"{src}: tensor {wName} is missing");
            var w = file.GetTensor<T>(wName);
            if (w.Rank != 2 || w.Dim(0) != arch.Sizes[i + 1] || w.Dim(1) != arch.Sizes[i])
                throw new DataFormatException($"{src}: {wName} is {w.ShapeString} but the architecture says {arch.Sizes[i + 1]}×{arch.Sizes[i]}");
            Tensor<T>? b = null;
            if (arch.Bias[i])
            {
                string bName = $"layers.{i}.bias";
                if (!file.Contains(bName)) throw new DataFormatException($"{src}: tensor {bName} is missing");
                b = file.GetTensor<T>(bName);
                if (b.Rank != 1 || b.Length != arch.Sizes[i + 1])
                    throw new DataFormatException($"{src}: {bName} is {b.ShapeString} but the architecture says [{arch.Sizes[i + 1]}]");
            }
            list.Add(new DenseLayer<T>(w, b, act));
        }
        var labels = DataMetadata.ReadLabelNames(meta, src) ?? Enumerable.Range(0, arch.Sizes[^1]).Select(i => i.ToString()).ToArray();
        if (labels.Length != arch.Sizes[^1])
            throw new DataFormatException($"{src}: __metadata__.label_names has {labels.Length} names but the network has {arch.Sizes[^1]} outputs");
        var std = Standardizer.ReadMetadata(meta, src);
        if (std is not null && std.FeatureCount != arch.Sizes[0])
            throw new DataFormatException($"{src}: the standardizer has {std.FeatureCount} features but the network takes {arch.Sizes[0]}");
        return new Model<T>(new Sequential<T>(list), labels, std, meta);
    }
}
