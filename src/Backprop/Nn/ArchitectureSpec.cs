using System.Globalization;
using System.Numerics;
using System.Text;
using Backprop.Ops;

namespace Backprop.Nn;

/// <summary>A spec string that does not describe a network; the message is one line that names the faulty token.</summary>
public sealed class ArchitectureSpecException(string message) : ArgumentException(message);

/// <summary>One layer of an <see cref="ArchitectureSpec"/>: its kind, output width, activation and settings (e.g. p).</summary>
public sealed record LayerPlan(string Kind, int Outputs, string Activation, IReadOnlyDictionary<string, double> Settings);

/// <summary>
/// A network written as one string, layer by layer: <c>784-512:relu:ln-256:relu:drop0.2-10</c>.
/// <list type="bullet">
/// <item>Blocks are separated by '-'. The first block is the input width; every other block starts with a width and
/// makes a dense layer of that many outputs (with a bias).</item>
/// <item>After the width come modifiers, separated by ':' and applied in order: an activation name (<c>relu</c>,
/// <c>tanh</c>, …) applies to the layer before it; <c>ln</c> (or <c>layernorm</c>) and <c>bn</c> (or <c>batchnorm</c>)
/// add a norm layer of the same width; <c>drop0.2</c> (or <c>dropout0.2</c>) adds a dropout layer with p = 0.2.</item>
/// <item>A layer without an activation is linear: <c>512:ln:relu</c> is dense → layer norm → ReLU (the norm before the
/// activation), <c>512:relu:ln</c> is dense with ReLU → layer norm. The last block gives the output (logits, say).</item>
/// <item>The input block may take norm and dropout modifiers too (<c>784:drop0.1-…</c> drops input features).</item>
/// </list>
/// <see cref="ToString"/> writes the canonical form (short names, activations only where not the identity), which a
/// network's spec (<see cref="Of{T}"/>) compares by.
/// </summary>
public sealed class ArchitectureSpec
{
    private ArchitectureSpec(int inputs, IReadOnlyList<LayerPlan> layers)
    {
        Inputs = inputs;
        Layers = layers;
    }

    /// <summary>The network's input width (features per sample).</summary>
    public int Inputs { get; }
    /// <summary>The layers in order, at least one; each reads the previous one's <see cref="LayerPlan.Outputs"/>.</summary>
    public IReadOnlyList<LayerPlan> Layers { get; }
    /// <summary>The network's output width: the last layer's.</summary>
    public int Outputs => Layers[^1].Outputs;

    /// <summary>The input width and every dense layer's width: the sizes <c>--layers</c> would give.</summary>
    public int[] DenseSizes => [Inputs, .. Layers.Where(l => l.Kind == DenseKind.KindName).Select(l => l.Outputs)];

    /// <summary>Whether every layer is dense (the network an MLP of <see cref="DenseSizes"/> would be, activations aside).</summary>
    public bool IsPlainMlp => Layers.All(l => l.Kind == DenseKind.KindName);

    private static readonly System.Collections.Immutable.ImmutableArray<(string Short, string Long, string Kind)> Norms =
        [("ln", "layernorm", LayerNormKind.KindName), ("bn", "batchnorm", BatchNormKind.KindName)];

    /// <summary>Reads a spec; names are looked up in <paramref name="catalog"/>. Throws <see cref="ArchitectureSpecException"/>.</summary>
    public static ArchitectureSpec Parse(string text, Catalog? catalog = null)
    {
        catalog ??= Catalog.Default;
        ArgumentNullException.ThrowIfNull(text);
        var blocks = text.Trim().Split('-');
        if (blocks.Length < 2)
            throw new ArchitectureSpecException($"needs an input width and at least one layer, e.g. 784-128:relu-10");
        var layers = new List<LayerPlan>();
        int width = 0, inputs = 0;
        for (int b = 0; b < blocks.Length; b++)
        {
            var tokens = blocks[b].Split(':');
            if (!int.TryParse(tokens[0], NumberStyles.None, CultureInfo.InvariantCulture, out int size) || size < 1)
                throw new ArchitectureSpecException(tokens[0].Length == 0
                    ? $"block {b + 1} is empty (blocks are separated by '-' and start with a width)"
                    : $"'{tokens[0]}' is not a width (a positive integer starts every block)");
            if (b == 0) width = inputs = size;
            else
            {
                layers.Add(new LayerPlan(DenseKind.KindName, size, "identity", Empty));
                width = size;
            }
            for (int t = 1; t < tokens.Length; t++)
            {
                string token = tokens[t];
                if (Norms.FirstOrDefault(n => n.Short == token || n.Long == token) is { Kind: not null } norm)
                {
                    layers.Add(new LayerPlan(norm.Kind, width, "identity", Empty));
                    continue;
                }
                if (DropoutP(token) is double p)
                {
                    if (!(p >= 0 && p < 1))
                        throw new ArchitectureSpecException($"dropout p = {token[(token.StartsWith("dropout", StringComparison.Ordinal) ? 7 : 4)..]} in '{blocks[b]}' must be in [0, 1)");
                    layers.Add(new LayerPlan(DropoutKind.KindName, width, "identity", new Dictionary<string, double> { ["p"] = p }));
                    continue;
                }
                if (catalog.Activations.Find(token) is { } activation)
                {
                    string name = activation.Name;
                    if (layers.Count == 0)
                        throw new ArchitectureSpecException($"activation '{token}' follows the input: it needs a layer before it");
                    var last = layers[^1];
                    var kind = catalog.Layers.Find(last.Kind);
                    if (kind is { TakesActivation: false })
                        throw new ArchitectureSpecException($"activation '{token}' in '{blocks[b]}' follows a {last.Kind} layer, which takes none");
                    if (last.Activation != "identity")
                        throw new ArchitectureSpecException($"activation '{token}' in '{blocks[b]}' follows another activation ({last.Activation})");
                    layers[^1] = last with { Activation = name };
                    continue;
                }
                throw new ArchitectureSpecException(
                    $"unknown token '{token}' in '{blocks[b]}' (expected an activation such as {string.Join(", ", catalog.Activations.HiddenNames.Where(n => n != "identity").Take(4))}, ln, bn or drop<p>)");
            }
        }
        return new ArchitectureSpec(inputs, layers);
    }

    private static readonly IReadOnlyDictionary<string, double> Empty = System.Collections.Immutable.ImmutableDictionary<string, double>.Empty;

    /// <summary>p of a "drop0.2" or "dropout0.2" token; null for another token.</summary>
    private static double? DropoutP(string token)
    {
        string? number = token.StartsWith("dropout", StringComparison.Ordinal) ? token[7..]
            : token.StartsWith("drop", StringComparison.Ordinal) ? token[4..] : null;
        if (number is null || number.Length == 0) return null;
        return double.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double p) ? p : double.NaN;
    }

    /// <summary>
    /// The MLP that <c>--layers</c>, <c>--activation</c>, <c>--norm</c> and <c>--dropout</c> describe: each hidden dense
    /// layer, then the norm (before the activation), then the activation, then dropout; the output layer is linear.
    /// </summary>
    public static ArchitectureSpec Mlp(IReadOnlyList<int> sizes, string activation, string? norm = null, double dropout = 0, Catalog? catalog = null)
    {
        if (sizes.Count < 2) throw new ArchitectureSpecException("a network needs at least an input and an output size");
        var sb = new StringBuilder().Append(sizes[0].ToString(CultureInfo.InvariantCulture));
        for (int i = 1; i < sizes.Count; i++)
        {
            sb.Append('-').Append(sizes[i].ToString(CultureInfo.InvariantCulture));
            if (i == sizes.Count - 1) break;
            if (norm is not null) sb.Append(':').Append(norm);
            sb.Append(':').Append(activation);
            if (dropout > 0) sb.Append(":drop").Append(dropout.ToString("R", CultureInfo.InvariantCulture));
        }
        return Parse(sb.ToString(), catalog);
    }

    /// <summary>The spec of an existing network (norm and dropout settings other than p at their values, not written).</summary>
    public static ArchitectureSpec Of<T>(Sequential<T> network) where T : unmanaged, IFloatingPointIeee754<T> =>
        new(network.Inputs, [.. network.Layers.Select(l => new LayerPlan(l.Kind, l.Outputs, l.Activation.Name,
            l.Kind == DropoutKind.KindName ? l.Settings : Empty))]);

    /// <summary>
    /// The layers, made by their kinds in <paramref name="catalog"/>, parameters at zero (scales at one): an initialiser
    /// or a loader fills them.
    /// </summary>
    public Sequential<T> Create<T>(Catalog? catalog = null) where T : unmanaged, IFloatingPointIeee754<T>
    {
        catalog ??= Catalog.Default;
        var layers = new List<ILayer<T>>();
        int width = Inputs;
        foreach (var plan in Layers)
        {
            var kind = catalog.Layers.Find(plan.Kind) ?? throw new ArchitectureSpecException($"unknown layer kind '{plan.Kind}'");
            var shape = new LayerShape(width, plan.Outputs, Bias: true) { Settings = plan.Settings };
            layers.Add(kind.Create(shape, catalog.Activations.Create<T>(plan.Activation)));
            width = plan.Outputs;
        }
        return new Sequential<T>(layers);
    }

    /// <summary>The canonical spec: e.g. "784-512:ln:relu:drop0.2-10".</summary>
    public override string ToString()
    {
        var sb = new StringBuilder().Append(Inputs.ToString(CultureInfo.InvariantCulture));
        foreach (var l in Layers)
        {
            if (l.Kind == DenseKind.KindName) sb.Append('-').Append(l.Outputs.ToString(CultureInfo.InvariantCulture));
            else if (l.Kind == DropoutKind.KindName)
                sb.Append(":drop").Append(l.Settings.GetValueOrDefault("p", DropoutKind.P.Default).ToString("R", CultureInfo.InvariantCulture));
            else sb.Append(':').Append(Norms.FirstOrDefault(n => n.Kind == l.Kind).Short ?? l.Kind);
            if (l.Activation != "identity") sb.Append(':').Append(l.Activation);
        }
        return sb.ToString();
    }
}
