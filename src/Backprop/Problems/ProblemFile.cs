using System.Globalization;
using System.Text;
using System.Text.Json;
using Backprop.Core;
using Backprop.Nn;
using Backprop.Ops;

namespace Backprop.Problems;

/// <summary>A problem file that does not describe a valid problem. The message is one line naming the field and the fault.</summary>
/// <remarks>Values quoted from the file (an activation name holding "\n", say) must not break the line.</remarks>
public sealed class ProblemFormatException(string message) : Exception(Backprop.IO.DataFormatException.OneLine(message));

/// <summary>A tensor of a layer in a problem: its name in the layer (weight, bias, …), its shape and its values, row-major.</summary>
public sealed record TensorSpec(string Name, int[] Shape, double[] Values)
{
    /// <summary>A rows × columns tensor from rows of equal length (the shape is taken from row 0).</summary>
    public static TensorSpec Matrix(string name, double[][] rows) => new(name, [rows.Length, rows[0].Length], [.. rows.SelectMany(r => r)]);
    /// <summary>A vector tensor holding <paramref name="values"/> (not copied).</summary>
    public static TensorSpec Vector(string name, double[] values) => new(name, [values.Length], values);
}

/// <summary>
/// One layer of a problem: its kind (a <see cref="LayerKindRegistry"/> name), sizes, activation, and its parameters and
/// buffers by name (a dense layer's weight, out × in, and bias).
/// </summary>
/// <param name="Kind">The layer kind's registry name ("dense", "layernorm", …).</param>
/// <param name="Inputs">Features in.</param>
/// <param name="Outputs">Features out.</param>
/// <param name="Activation">The activation's registry name.</param>
/// <param name="Tensors">The layer's parameters and buffers by name, in the kind's shapes.</param>
public sealed record LayerSpec(string Kind, int Inputs, int Outputs, string Activation, IReadOnlyList<TensorSpec> Tensors)
{
    /// <summary>The values of the kind's number and flag settings given in the file (eps, momentum, training, p).</summary>
    public IReadOnlyDictionary<string, double> Settings { get; init; } = new Dictionary<string, double>();

    /// <summary>The kind's batch × features settings given in the file (dropout's mask).</summary>
    public IReadOnlyDictionary<string, double[][]> Matrices { get; init; } = new Dictionary<string, double[][]>();

    /// <summary>A dense layer of the given weight (out × in rows) and optional bias (out), with the named activation.</summary>
    public static LayerSpec Dense(double[][] weight, double[]? bias, string activation) =>
        new(DenseKind.KindName, weight[0].Length, weight.Length, activation,
            bias is null ? [TensorSpec.Matrix("weight", weight)] : [TensorSpec.Matrix("weight", weight), TensorSpec.Vector("bias", bias)]);

    /// <summary>Whether the layer has a tensor named "bias".</summary>
    public bool HasBias => Tensors.Any(t => t.Name == "bias");
}

/// <summary>A problem as written in the file, validated, in float64.</summary>
/// <param name="Name">The problem's name: the file name without extension.</param>
/// <param name="Layers">The layers, input to output; each layer's inputs match the previous layer's outputs.</param>
/// <param name="Input">The batch, one row of features per sample (rows × the first layer's inputs).</param>
/// <param name="Loss">The loss kind; "none" makes the objective the sum of all outputs.</param>
/// <param name="Reduction">Mean (the file's default) or sum over the loss's terms.</param>
/// <param name="Target">Rows × outputs target values, for a loss that takes values; null otherwise.</param>
/// <param name="ClassTargets">One class index per row, for a loss that takes class indices; null otherwise.</param>
/// <param name="Expected">The file's "expected" answers, kept as JSON for the caller to compare with; null when the file has none.</param>
public sealed record ProblemSpec(
    string Name,
    IReadOnlyList<LayerSpec> Layers,
    double[][] Input,
    LossKind Loss,
    Reduction Reduction,
    double[][]? Target,
    int[]? ClassTargets,
    JsonElement? Expected)
{
    /// <summary>The loss's extra numbers (huber's delta, class weights, pos_weight); defaults where the file gives none.</summary>
    public LossSettings LossSettings { get; init; } = LossSettings.Default;

    /// <summary>The number of rows (samples) of the input batch.</summary>
    public int BatchSize => Input.Length;
    /// <summary>The width of the network's output: the last layer's outputs.</summary>
    public int Outputs => Layers[^1].Outputs;

    /// <summary>
    /// The same problem with every number rounded to <typeparamref name="T"/>: a float64 reference that differentiates
    /// exactly the function a <typeparamref name="T"/> network computes.
    /// </summary>
    public ProblemSpec RoundedTo<T>() where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        if (typeof(T) == typeof(double)) return this;
        static double R(double v) => double.CreateTruncating(T.CreateTruncating(v));
        static double[] V(double[] v) => v.Select(R).ToArray();
        static double[][] M(double[][] m) => m.Select(V).ToArray();
        return this with
        {
            Layers = Layers.Select(l => l with { Tensors = [.. l.Tensors.Select(t => t with { Values = V(t.Values) })] }).ToList(),
            Input = M(Input),
            Target = Target is null ? null : M(Target),
        };
    }
}

/// <summary>Reads and validates problem files (the format of shared/README.md).</summary>
public static class ProblemFile
{
    /// <summary>Reads and validates the problem file at <paramref name="path"/>; the problem is named after the file (without extension).</summary>
    /// <param name="path">The JSON problem file.</param>
    /// <param name="catalog">The registries that activation, loss and layer names are looked up in; the built-ins when null.</param>
    /// <exception cref="ProblemFormatException">The file is missing or unreadable, or does not describe a valid problem; the message starts with the path.</exception>
    public static ProblemSpec Load(string path, Catalog? catalog = null)
    {
        string text;
        try
        {
            text = ReadText(path);
        }
        catch (FileNotFoundException) { throw new ProblemFormatException($"{path}: no such file"); }
        catch (DirectoryNotFoundException) { throw new ProblemFormatException($"{path}: no such file"); }
        catch (UnauthorizedAccessException) { throw new ProblemFormatException($"{path}: permission denied"); }
        catch (IOException e) { throw new ProblemFormatException($"{path}: cannot read: {e.Message}"); }
        try
        {
            return Parse(text, Path.GetFileNameWithoutExtension(path), catalog);
        }
        catch (ProblemFormatException e)
        {
            throw new ProblemFormatException($"{path}: {e.Message}");
        }
    }

    /// <summary>
    /// The text <see cref="File.ReadAllText(string)"/> returns, read in one piece when the file is UTF-8 (with or without a
    /// byte order mark): File.ReadAllText grows a StringBuilder through a StreamReader, a dozen page faults of a Native
    /// AOT start at 11 µs each on this project's VM. A UTF-16 or UTF-32 byte order mark still goes to File.ReadAllText.
    /// </summary>
    private static string ReadText(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        ReadOnlySpan<byte> b = bytes;
        if (b.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF])) return Encoding.UTF8.GetString(b[3..]);
        if (b.StartsWith((ReadOnlySpan<byte>)[0xFE, 0xFF]) || b.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xFE]) || b.StartsWith((ReadOnlySpan<byte>)[0, 0, 0xFE, 0xFF]))
            return File.ReadAllText(path);
        return Encoding.UTF8.GetString(b);
    }

    /// <summary>Parses and validates a problem; activation and loss names are looked up in <paramref name="catalog"/> (default: the built-ins).</summary>
    public static ProblemSpec Parse(string json, string defaultName = "problem", Catalog? catalog = null)
    {
        catalog ??= Catalog.Default;
        JsonDocument doc;
        try
        {
            // from our own UTF-8 copy: JsonDocument.Parse(string) rents its copy from the shared ArrayPool in the size
            // bucket of its metadata, and returning the second of the two runs .NET's processor-number speed check
            // (ProcessorIdCache), 0.5 ms of a Native AOT `backprop grad` (perf, Zen 5 VM). A lone surrogate throws, as
            // there (EncoderFallbackException is an ArgumentException).
            var utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
            doc = JsonDocument.Parse(utf8.GetBytes(QuoteNonFiniteLiterals(json)), new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            string where = e.LineNumber is long line ? $" at line {line + 1}, byte {e.BytePositionInLine + 1}" : "";
            string why = string.IsNullOrWhiteSpace(json) ? "the file is empty" : FirstSentence(e.Message);
            throw new ProblemFormatException($"invalid JSON{where}: {why}");
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new ProblemFormatException("the top level must be a JSON object");

            string name = root.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : defaultName;

            if (!root.TryGetProperty("layers", out var layersEl)) throw new ProblemFormatException("layers: missing");
            if (layersEl.ValueKind != JsonValueKind.Array) throw new ProblemFormatException("layers: must be an array of layers");
            if (layersEl.GetArrayLength() == 0) throw new ProblemFormatException("layers: the network is empty");

            var layers = new List<LayerSpec>();
            int i = 0;
            foreach (var le in layersEl.EnumerateArray())
            {
                string f = $"layers[{i}]";
                if (le.ValueKind != JsonValueKind.Object) throw new ProblemFormatException($"{f}: must be an object with weight and activation");
                string kind = DenseKind.KindName;
                if (le.TryGetProperty("type", out var k))
                {
                    if (k.ValueKind != JsonValueKind.String) throw new ProblemFormatException($"{f}.type: must be a string");
                    kind = k.GetString()!;
                    if (catalog.Layers.Find(kind) is null)
                        throw new ProblemFormatException($"{f}.type: unknown layer type '{kind}' (known: {string.Join(", ", catalog.Layers.Names)})");
                }
                string act = "identity";
                if (le.TryGetProperty("activation", out var a))
                {
                    if (a.ValueKind != JsonValueKind.String) throw new ProblemFormatException($"{f}.activation: must be a string");
                    act = a.GetString()!;
                    // files use canonical names only: the aliases (linear, none) are for people typing options
                    if (!catalog.Activations.IsCanonical(act))
                        throw new ProblemFormatException($"{f}.activation: unknown activation '{act}' (known: {string.Join(", ", catalog.Activations.Names)})");
                }
                if (kind != DenseKind.KindName)
                {
                    layers.Add(OtherLayer(le, f, catalog.Layers.Find(kind)!, catalog.Activations.Create<double>(act),
                        i == 0 ? InputFeatures(root) : layers[i - 1].Outputs, InputRows(root)));
                    i++;
                    continue;
                }
                if (!le.TryGetProperty("weight", out var w)) throw new ProblemFormatException($"{f}.weight: missing");
                var weight = Matrix(w, $"{f}.weight");
                double[]? bias = null;
                if (le.TryGetProperty("bias", out var b) && b.ValueKind != JsonValueKind.Null)
                {
                    bias = Vector(b, $"{f}.bias");
                    if (bias.Length != weight.Length)
                        throw new ProblemFormatException($"{f}.bias has {bias.Length} values but {f}.weight is {weight.Length}×{weight[0].Length}: expected {weight.Length}");
                }
                if (i > 0)
                {
                    int prevOut = layers[i - 1].Outputs;
                    if (weight[0].Length != prevOut)
                        throw new ProblemFormatException($"{f}.weight is {weight.Length}×{weight[0].Length} but layers[{i - 1}] gives {prevOut} outputs");
                }
                layers.Add(LayerSpec.Dense(weight, bias, act));
                i++;
            }

            if (!root.TryGetProperty("input", out var inEl)) throw new ProblemFormatException("input: missing");
            var input = Matrix(inEl, "input");
            int inFeatures = layers[0].Inputs;
            if (input[0].Length != inFeatures)
                throw new ProblemFormatException(layers[0].Kind == DenseKind.KindName
                    ? $"input is {input.Length}×{input[0].Length} but layers[0].weight is {layers[0].Outputs}×{inFeatures}: expected {inFeatures} features per row"
                    : $"input is {input.Length}×{input[0].Length} but layers[0] takes {inFeatures} features per row");

            LossKind loss = LossKind.None;
            if (root.TryGetProperty("loss", out var lossEl) && lossEl.ValueKind != JsonValueKind.Null)
            {
                if (lossEl.ValueKind != JsonValueKind.String) throw new ProblemFormatException("loss: must be a string");
                string lossName = lossEl.GetString()!;
                loss = catalog.Losses.Find(lossName)
                    ?? throw new ProblemFormatException($"loss: unknown loss '{lossName}' (known: {string.Join(", ", catalog.Losses.Names)})");
            }

            Reduction reduction = Reduction.Mean;
            if (root.TryGetProperty("reduction", out var redEl) && redEl.ValueKind != JsonValueKind.Null)
            {
                if (redEl.ValueKind != JsonValueKind.String) throw new ProblemFormatException("reduction: must be a string");
                reduction = redEl.GetString() switch
                {
                    "mean" => Reduction.Mean,
                    "sum" => Reduction.Sum,
                    var s => throw new ProblemFormatException($"reduction: unknown reduction '{s}' (known: mean, sum)"),
                };
            }

            int batch = input.Length, outputs = layers[^1].Outputs;
            double[][]? target = null;
            int[]? classes = null;
            if (loss.Target != LossTarget.None)
            {
                if (!root.TryGetProperty("target", out var tEl) || tEl.ValueKind == JsonValueKind.Null)
                    throw new ProblemFormatException($"target: missing (loss {loss.Name} needs one)");
                if (loss.Target == LossTarget.ClassIndices)
                {
                    classes = ClassIndices(tEl, batch, outputs);
                }
                else
                {
                    target = Matrix(tEl, "target");
                    if (target.Length != batch || target[0].Length != outputs)
                        throw new ProblemFormatException($"target is {target.Length}×{target[0].Length} but the network gives {batch}×{outputs} outputs");
                }
            }

            var lossSettings = LossSettingsOf(root, loss, outputs);
            JsonElement? expected = root.TryGetProperty("expected", out var ex) ? ex.Clone() : null;
            return new ProblemSpec(name, layers, input, loss, reduction, target, classes, expected) { LossSettings = lossSettings };
        }
    }

    /// <summary>
    /// A layer of another kind: made by its kind for <paramref name="inputs"/> inputs and "outputs" outputs (default: as
    /// many as inputs), with the kind's settings read from the fields of their names, then each of its parameters and
    /// buffers read from the field of its name, in its shape.
    /// </summary>
    private static LayerSpec OtherLayer(JsonElement le, string f, LayerKind kind, Activation<double> activation, int inputs, int batch)
    {
        if (!kind.TakesActivation && !activation.IsIdentity)
            throw new ProblemFormatException($"{f}.activation: a {kind.Name} layer takes no activation");
        int outputs = inputs;
        if (le.TryGetProperty("outputs", out var o))
        {
            double d = Number(o, $"{f}.outputs");
            if (d != Math.Floor(d) || d < 1 || d > int.MaxValue) throw new ProblemFormatException($"{f}.outputs = {o.GetRawText()} is not a positive integer");
            outputs = (int)d;
        }
        var settings = new Dictionary<string, double>();
        var matrices = new Dictionary<string, double[][]>();
        foreach (var setting in kind.Settings)
        {
            if (!le.TryGetProperty(setting.Name, out var v)) continue;
            string field = $"{f}.{setting.Name}";
            switch (setting.Type)
            {
                case LayerSettingType.Flag:
                    if (v.ValueKind is not (JsonValueKind.True or JsonValueKind.False)) throw new ProblemFormatException($"{field}: must be true or false");
                    settings[setting.Name] = v.GetBoolean() ? 1 : 0;
                    break;
                case LayerSettingType.BatchMatrix:
                    var m = Matrix(v, field);
                    if (m.Length != batch || m[0].Length != inputs)
                        throw new ProblemFormatException($"{field} is {m.Length}×{m[0].Length} but the layer sees a batch of {batch}×{inputs}");
                    matrices[setting.Name] = m;
                    break;
                default:
                    if (v.ValueKind == JsonValueKind.Null)
                        throw new ProblemFormatException($"{field}: must be a number (null is not supported)");
                    settings[setting.Name] = Number(v, field);
                    break;
            }
        }
        bool hasWeight = le.TryGetProperty("weight", out var wEl) && wEl.ValueKind != JsonValueKind.Null;
        bool bias = le.TryGetProperty("bias", out var b) && b.ValueKind != JsonValueKind.Null;
        if (kind.AffinePair && hasWeight != bias)
            throw new ProblemFormatException($"{f}: a {kind.Name} layer takes weight and bias together, or neither (it has only {(hasWeight ? "weight" : "bias")})");
        var shape = new LayerShape(inputs, outputs, kind.AffinePair ? hasWeight : bias)
        {
            Settings = settings,
            Matrices = matrices.ToDictionary(kv => kv.Key, kv => Tensor<double>.FromRows(kv.Value)),
        };
        Backprop.Nn.ILayer<double> layer;
        try { layer = kind.Create(shape, activation); }
        catch (ArgumentException e) { throw new ProblemFormatException($"{f} ({kind.Name} {inputs}→{outputs}): {e.Message}"); }
        var tensors = new List<TensorSpec>();
        foreach (var (name, tshape) in layer.Parameters.Select(p => (p.Name, p.Value.Value.ShapeArray))
                     .Concat(layer.Buffers.Select(q => (q.Name, q.Value.ShapeArray))))
        {
            if (!le.TryGetProperty(name, out var t)) throw new ProblemFormatException($"{f}.{name}: missing");
            var spec = tshape.Length == 2 ? TensorSpec.Matrix(name, Matrix(t, $"{f}.{name}")) : TensorSpec.Vector(name, Vector(t, $"{f}.{name}"));
            if (!spec.Shape.SequenceEqual(tshape))
                throw new ProblemFormatException($"{f}.{name} is [{string.Join("×", spec.Shape)}] but a {kind.Name} layer {inputs}→{outputs} needs [{string.Join("×", tshape)}]");
            tensors.Add(spec);
        }
        return new LayerSpec(kind.Name, inputs, outputs, activation.Name, tensors) { Settings = settings, Matrices = matrices };
    }

    /// <summary>The number of rows of the input (the batch), which per-batch settings such as a mask must match.</summary>
    private static int InputRows(JsonElement root)
    {
        if (!root.TryGetProperty("input", out var inEl)) throw new ProblemFormatException("input: missing");
        return Matrix(inEl, "input").Length;
    }

    /// <summary>The number of features per row of the input, for a first layer whose size the file does not spell out.</summary>
    private static int InputFeatures(JsonElement root)
    {
        if (!root.TryGetProperty("input", out var inEl)) throw new ProblemFormatException("input: missing");
        return Matrix(inEl, "input")[0].Length;
    }

    /// <summary>
    /// The loss's extra fields beside "loss" (FORMAT.md): huber's delta, cross-entropy's class_weights, BCE's pos_weight,
    /// each read only for a loss that takes it, and refused for one that does not.
    /// </summary>
    private static LossSettings LossSettingsOf(JsonElement root, LossKind loss, int outputs)
    {
        var settings = LossSettings.Default;
        foreach (var field in new[] { "delta", "class_weights", "pos_weight" })
        {
            if (!root.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null) continue;
            if (!loss.SettingNames.Contains(field))
                throw new ProblemFormatException($"{field}: loss {loss.Name} takes no {field}");
            if (field == "delta")
            {
                double d = Number(v, field);
                if (d <= 0) throw new ProblemFormatException($"delta = {v.GetRawText()} must be positive");
                settings = settings with { HuberDelta = d };
                continue;
            }
            var w = Vector(v, field);
            if (w.Length != outputs) throw new ProblemFormatException($"{field} has {w.Length} values but the network gives {outputs} outputs");
            for (int j = 0; j < w.Length; j++)
                if (w[j] < 0) throw new ProblemFormatException($"{field}[{j}] = {w[j].ToString(CultureInfo.InvariantCulture)} is negative");
            settings = field == "class_weights" ? settings with { ClassWeights = w } : settings with { PosWeight = w };
        }
        return settings;
    }

    private static int[] ClassIndices(JsonElement el, int batch, int classes)
    {
        if (el.ValueKind != JsonValueKind.Array) throw new ProblemFormatException("target: must be an array of class indices, one per input row");
        int n = el.GetArrayLength();
        if (n != batch) throw new ProblemFormatException($"target has {n} class indices but the input has {batch} rows");
        var r = new int[n];
        int i = 0;
        foreach (var v in el.EnumerateArray())
        {
            double d = Number(v, $"target[{i}]");
            if (d != Math.Floor(d)) throw new ProblemFormatException($"target[{i}] = {d.ToString(CultureInfo.InvariantCulture)} is not a class index (an integer)");
            if (d < 0 || d >= classes)
                throw new ProblemFormatException($"target[{i}] = {d.ToString(CultureInfo.InvariantCulture)} is out of range: the network gives {classes} classes (0..{classes - 1})");
            r[i++] = (int)d;
        }
        return r;
    }

    private static double[][] Matrix(JsonElement el, string field)
    {
        if (el.ValueKind != JsonValueKind.Array) throw new ProblemFormatException($"{field}: must be a matrix (an array of rows)");
        int rows = el.GetArrayLength();
        if (rows == 0) throw new ProblemFormatException($"{field}: is empty");
        var m = new double[rows][];
        int i = 0, cols = -1;
        foreach (var row in el.EnumerateArray())
        {
            if (row.ValueKind != JsonValueKind.Array) throw new ProblemFormatException($"{field}[{i}]: must be an array of numbers (a row)");
            var v = Vector(row, $"{field}[{i}]");
            if (cols < 0) cols = v.Length;
            else if (v.Length != cols) throw new ProblemFormatException($"{field} is ragged: row {i} has {v.Length} values but row 0 has {cols}");
            m[i++] = v;
        }
        if (cols == 0) throw new ProblemFormatException($"{field}: rows are empty");
        return m;
    }

    private static double[] Vector(JsonElement el, string field)
    {
        if (el.ValueKind != JsonValueKind.Array) throw new ProblemFormatException($"{field}: must be an array of numbers");
        var v = new double[el.GetArrayLength()];
        int j = 0;
        foreach (var x in el.EnumerateArray())
        {
            v[j] = Number(x, $"{field}[{j}]");
            j++;
        }
        return v;
    }

    private static double Number(JsonElement x, string field)
    {
        if (x.ValueKind == JsonValueKind.String && x.GetString() is "NaN" or "Infinity" or "-Infinity")
            throw new ProblemFormatException($"{field} is {x.GetString()}: numbers must be finite");
        if (x.ValueKind != JsonValueKind.Number) throw new ProblemFormatException($"{field}: must be a number, not {Describe(x)}");
        if (!x.TryGetDouble(out double d) || !double.IsFinite(d))
            throw new ProblemFormatException($"{field} = {x.GetRawText()} is not a finite number");
        return d;
    }

    private static string Describe(JsonElement x) => x.ValueKind switch
    {
        JsonValueKind.String => $"the string \"{Truncate(x.GetString()!)}\"",
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => x.ValueKind.ToString(),
    };

    private static string Truncate(string s) => s.Length > 20 ? s[..20] + "…" : s;

    private static string FirstSentence(string message)
    {
        var line = message.Split('\n')[0].Trim();
        // System.Text.Json appends where it stopped ("Path: $ | LineNumber: 0 | BytePositionInLine: 0."), which the
        // message already says as a line and byte counted from 1
        foreach (var tail in new[] { " Path:", " LineNumber:" })
        {
            int cut = line.IndexOf(tail, StringComparison.Ordinal);
            if (cut > 0) line = line[..cut];
        }
        return line.TrimEnd('.');
    }

    /// <summary>
    /// Python's json module writes NaN and ±Infinity as bare words, which are not JSON. Quote them so that the
    /// reader can name the field that holds one instead of failing on the whole file.
    /// </summary>
    internal static string QuoteNonFiniteLiterals(string json)
    {
        if (!json.Contains("NaN", StringComparison.Ordinal) && !json.Contains("Infinity", StringComparison.Ordinal)) return json;
        var sb = new StringBuilder(json.Length + 16);
        bool inString = false;
        for (int i = 0; i < json.Length; i++)
        {
            char c = json[i];
            if (inString)
            {
                sb.Append(c);
                if (c == '\\' && i + 1 < json.Length) sb.Append(json[++i]);
                else if (c == '"') inString = false;
                continue;
            }
            if (c == '"') { inString = true; sb.Append(c); continue; }
            string? word = Match(json, i, "-Infinity") ?? Match(json, i, "Infinity") ?? Match(json, i, "NaN");
            if (word is not null)
            {
                sb.Append('"').Append(word).Append('"');
                i += word.Length - 1;
                continue;
            }
            sb.Append(c);
        }
        return sb.ToString();
    }

    private static string? Match(string s, int i, string word) =>
        string.CompareOrdinal(s, i, word, 0, word.Length) == 0 ? word : null;
}
