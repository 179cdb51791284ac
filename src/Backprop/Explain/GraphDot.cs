using System.Globalization;
using System.Numerics;
using System.Text;
using Backprop.Autodiff;

namespace Backprop.Explain;

/// <summary>A recorded graph as Graphviz DOT: leaves and op outputs with names, formulas, shapes and gradient norms.</summary>
public static class GraphDot
{
    /// <summary>
    /// The graph of <paramref name="tape"/>. Gradient norms are those of the last backward pass (run it first);
    /// nodes it did not reach show none.
    /// </summary>
    public static string Write<T>(Tape<T> tape, string title = "backprop", Func<Var<T>, string?>? nameOf = null) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var ids = new Dictionary<Var<T>, string>(ReferenceEqualityComparer.Instance);
        var sb = new StringBuilder();
        sb.AppendLine($"digraph \"{Escape(title)}\" {{");
        sb.AppendLine("  rankdir=LR;");
        sb.AppendLine("  node [fontname=\"Helvetica\", fontsize=10];");
        foreach (var leaf in tape.Leaves)
        {
            string id = ids[leaf] = $"v{ids.Count}";
            string kind = leaf.RequiresGrad ? "leaf" : "constant";
            sb.AppendLine($"  {id} [shape=ellipse, style=filled, fillcolor=\"{(leaf.RequiresGrad ? "#dbeafe" : "#eeeeee")}\", label=\"{Escape(Label(leaf, nameOf?.Invoke(leaf) ?? leaf.Name, kind, null))}\"];");
        }
        foreach (var node in tape.Nodes)
        {
            string id = ids[node] = $"v{ids.Count}";
            sb.AppendLine($"  {id} [shape=box, style=rounded, label=\"{Escape(Label(node, nameOf?.Invoke(node) ?? node.Name, node.Op!.Name, node.Op.Formula))}\"];");
            for (int i = 0; i < node.Inputs.Count; i++)
            {
                var input = node.Inputs[i];
                if (!ids.TryGetValue(input, out var from)) continue;
                string edge = i < node.Op!.InputNames.Count ? node.Op.InputNames[i] : "";
                sb.AppendLine($"  {from} -> {id} [label=\"{Escape(edge)}\"];");
            }
        }
        sb.AppendLine("}");
        return sb.ToString();
    }

    private static string Label<T>(Var<T> v, string? name, string kind, string? formula) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var lines = new List<string> { $"{name ?? kind} ({kind})" };
        if (formula is not null) lines.Add(formula);
        lines.Add(v.ShapeString);
        if (v.HasGrad) lines.Add($"‖grad‖ = {v.Grad.FrobeniusNorm().ToString("G4", CultureInfo.InvariantCulture)}");
        return string.Join("\n", lines);
    }

    private static string Escape(string s) => s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);
}
