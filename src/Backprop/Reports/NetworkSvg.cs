using System.Globalization;
using System.Text;
using Backprop.Explain;

namespace Backprop.Reports;

/// <summary>
/// The network as inline SVG, coloured by one backward pass: every unit by the mean |δ| over the batch, every weight's
/// edge (colour and width) by |∂L/∂W|, on log scales shared by the whole network. The layers the asked gradient's
/// backward pass goes through lie on a highlighted band; the edges of the asked layer are orange. Networks with more
/// than <see cref="MaxUnitsDrawn"/> units in a layer are drawn as blocks with their sizes, joined by bands as wide as
/// ‖∂L/∂W‖ is large.
/// </summary>
public static class NetworkSvg
{
    /// <summary>The widest layer drawn unit by unit: a network with a wider layer is drawn as blocks.</summary>
    public const int MaxUnitsDrawn = 16;

    private static string F(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);
    private static string E(string s) => Html.Escape(s);

    /// <summary>The drawing of <paramref name="g"/> as an inline &lt;svg&gt; element.</summary>
    /// <param name="g">One backward pass's gradients, layer by layer.</param>
    /// <param name="id">The element's id, unique within the page.</param>
    public static string Draw(NetworkGradients g, string id = "network")
    {
        var widths = new[] { g.Inputs }.Concat(g.Layers.Select(l => l.Outputs)).ToArray();
        return widths.Max() <= MaxUnitsDrawn ? Units(g, widths, id) : Blocks(g, widths, id);
    }

    private static (double Lo, double Hi) LogRange(IEnumerable<double> values)
    {
        var pos = values.Where(v => v > 0 && double.IsFinite(v)).ToList();
        if (pos.Count == 0) return (0, 1);
        double lo = Math.Log10(pos.Min()), hi = Math.Log10(pos.Max());
        return hi - lo < 1e-9 ? (lo - 0.5, hi + 0.5) : (lo, hi);
    }

    private static double T(double v, (double Lo, double Hi) r) => v > 0 ? (Math.Log10(v) - r.Lo) / (r.Hi - r.Lo) : 0;

    private static string ColumnTitle(NetworkGradients g, int col) => col == 0 ? "x (input)" : $"layer {col}";

    private static string ColumnSubtitle(NetworkGradients g, int col)
    {
        if (col == 0) return $"{g.Inputs} inputs";
        var l = g.Layers[col - 1];
        return l.Kind == "dense" ? $"{l.Outputs} {l.Activation}" : $"{l.Outputs} {l.Kind}";
    }

    private static void Header(StringBuilder sb, int w, int h, string id, string title)
    {
        sb.Append($"<svg id=\"{id}\" class=\"network\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{E(title)}\">");
        sb.Append($"<title>{E(title)}</title>");
    }

    private static void Legend(StringBuilder sb, double y, (double Lo, double Hi) edges, (double Lo, double Hi) units, bool blocks, bool asked)
    {
        Svg.RampLegend(sb, 20, y, blocks ? "‖∂L/∂W‖ (band width too)" : "|∂L/∂W| (edge width too)", Math.Pow(10, edges.Lo), Math.Pow(10, edges.Hi), accent: false);
        Svg.RampLegend(sb, asked ? 320 : 170, y, blocks ? "mean |δ| of the layer's units" : "|δ| per unit (mean over batch)", Math.Pow(10, units.Lo), Math.Pow(10, units.Hi), accent: false);
        if (!asked) return;
        Svg.RampLegend(sb, 170, y, "same, in the asked layer", Math.Pow(10, edges.Lo), Math.Pow(10, edges.Hi), accent: true);
        sb.Append($"<rect x=\"470\" y=\"{F(y - 2)}\" width=\"22\" height=\"12\" rx=\"3\" fill=\"#ffe8cc\" stroke=\"#f08c00\" stroke-dasharray=\"3 2\"/>");
        sb.Append($"<text x=\"498\" y=\"{F(y + 8)}\" class=\"small\">the asked gradient's path</text>");
    }

    private static void PathBands(StringBuilder sb, NetworkGradients g, Func<int, double> colX, double top, double bottom)
    {
        foreach (var l in g.Layers.Where(l => l.OnPath))
        {
            double x0 = colX(l.Layer - 1) - 16, x1 = colX(l.Layer) + 16;
            sb.Append($"<rect class=\"path\" x=\"{F(x0)}\" y=\"{F(top)}\" width=\"{F(x1 - x0)}\" height=\"{F(bottom - top)}\" rx=\"10\" fill=\"#ffe8cc\" fill-opacity=\"0.55\" stroke=\"#f08c00\" stroke-dasharray=\"4 3\" stroke-opacity=\"0.6\"/>");
        }
    }

    private static string Units(NetworkGradients g, int[] widths, string id)
    {
        int cols = widths.Length, maxUnits = widths.Max();
        const int W = 640, left = 60, right = 60, top = 50, pitch = 26;
        int h = top + maxUnits * pitch + 20, H = h + 60;
        double ColX(int c) => cols == 1 ? W / 2.0 : left + (W - left - right) * c / (double)(cols - 1);
        double UnitY(int c, int i) => top + (maxUnits - widths[c]) * pitch / 2.0 + pitch * (i + 0.5);
        var edges = LogRange(g.Layers.Where(l => l.WeightGradient is not null).SelectMany(l => l.WeightGradient!.Data.ToArray()));
        var units = LogRange(g.InputDelta.Concat(g.Layers.SelectMany(l => l.UnitDelta)));
        var sb = new StringBuilder();
        Header(sb, W, H, id, $"the network, coloured by the gradients of {(g.Wrt.Length > 0 ? g.Wrt : "the objective")}");
        PathBands(sb, g, ColX, top - 8, h);
        foreach (var l in g.Layers)
        {
            int c = l.Layer;
            if (l.WeightGradient is { } wg && wg.Rows == widths[c] && wg.Cols == widths[c - 1])
            {
                for (int i = 0; i < wg.Rows; i++)
                    for (int j = 0; j < wg.Cols; j++)
                    {
                        double v = wg.Data[i * wg.Cols + j], t = T(v, edges);
                        sb.Append($"<line x1=\"{F(ColX(c - 1))}\" y1=\"{F(UnitY(c - 1, j))}\" x2=\"{F(ColX(c))}\" y2=\"{F(UnitY(c, i))}\" stroke=\"{Svg.Ramp(0.15 + 0.85 * t, l.Target)}\" stroke-width=\"{F(0.6 + 3.4 * t)}\" stroke-opacity=\"{F(0.35 + 0.65 * t)}\">" +
                            $"<title>layer {c}: |∂L/∂W[{i},{j}]| = {Html.Sci(v)}</title></line>");
                    }
            }
            else
            {
                // no weight (dropout, a norm layer): unit to unit
                for (int i = 0; i < Math.Min(widths[c], widths[c - 1]); i++)
                    sb.Append($"<line x1=\"{F(ColX(c - 1))}\" y1=\"{F(UnitY(c - 1, i))}\" x2=\"{F(ColX(c))}\" y2=\"{F(UnitY(c, i))}\" stroke=\"#adb5bd\" stroke-dasharray=\"3 3\"/>");
            }
        }
        for (int c = 0; c < cols; c++)
        {
            var delta = c == 0 ? g.InputDelta : g.Layers[c - 1].UnitDelta;
            for (int i = 0; i < widths[c]; i++)
            {
                double v = i < delta.Length ? delta[i] : 0;
                sb.Append($"<circle cx=\"{F(ColX(c))}\" cy=\"{F(UnitY(c, i))}\" r=\"9\" fill=\"{Svg.Ramp(T(v, units))}\" stroke=\"#495057\" stroke-width=\"1\">" +
                    $"<title>{(c == 0 ? $"x[{i}]: mean |∂L/∂x|" : $"layer {c} unit {i}: mean |δ|")} = {Html.Sci(v)}</title></circle>");
            }
            sb.Append($"<text x=\"{F(ColX(c))}\" y=\"18\" text-anchor=\"middle\" font-weight=\"600\">{E(ColumnTitle(g, c))}</text>");
            sb.Append($"<text x=\"{F(ColX(c))}\" y=\"33\" text-anchor=\"middle\" class=\"small\">{E(ColumnSubtitle(g, c))}</text>");
        }
        Legend(sb, h + 22, edges, units, blocks: false, asked: g.Layers.Any(l => l.OnPath));
        return sb.Append("</svg>").ToString();
    }

    private static string Blocks(NetworkGradients g, int[] widths, string id)
    {
        int cols = widths.Length;
        const int W = 640, left = 60, right = 60, top = 50, maxH = 220;
        int h = top + maxH + 20, H = h + 60;
        double ColX(int c) => cols == 1 ? W / 2.0 : left + (W - left - right) * c / (double)(cols - 1);
        double maxLog = Math.Log2(widths.Max() + 1);
        double BlockH(int c) => 24 + (maxH - 24) * Math.Log2(widths[c] + 1) / maxLog;
        double Mid = top + maxH / 2.0;
        var norms = g.Layers.Select(l => l.WeightGradient is { } wg ? Math.Sqrt(wg.Data.ToArray().Sum(v => v * v)) : 0).ToArray();
        var edges = LogRange(norms);
        var means = new[] { g.InputDelta.DefaultIfEmpty(0).Average() }.Concat(g.Layers.Select(l => l.UnitDelta.DefaultIfEmpty(0).Average())).ToArray();
        var units = LogRange(means);
        var sb = new StringBuilder();
        Header(sb, W, H, id, $"the network (layer blocks), coloured by the gradients of {(g.Wrt.Length > 0 ? g.Wrt : "the objective")}");
        PathBands(sb, g, ColX, top - 8, h);
        foreach (var l in g.Layers)
        {
            int c = l.Layer;
            double t = T(norms[c - 1], edges);
            string colour = norms[c - 1] > 0 ? Svg.Ramp(0.15 + 0.85 * t, l.Target) : "#adb5bd";
            double bw = norms[c - 1] > 0 ? 5 + 23 * t : 2;
            sb.Append($"<line x1=\"{F(ColX(c - 1))}\" y1=\"{F(Mid)}\" x2=\"{F(ColX(c))}\" y2=\"{F(Mid)}\" stroke=\"{colour}\" stroke-width=\"{F(bw)}\" stroke-opacity=\"0.85\">" +
                $"<title>layer {c}: ‖∂L/∂W‖ = {Html.Sci(norms[c - 1])}</title></line>");
            sb.Append($"<text x=\"{F((ColX(c - 1) + ColX(c)) / 2)}\" y=\"{F(Mid - bw / 2 - 6)}\" text-anchor=\"middle\" class=\"small\">{(norms[c - 1] > 0 ? Html.Sci(norms[c - 1]) : "")}</text>");
        }
        for (int c = 0; c < cols; c++)
        {
            double bh = BlockH(c);
            sb.Append($"<rect x=\"{F(ColX(c) - 20)}\" y=\"{F(Mid - bh / 2)}\" width=\"40\" height=\"{F(bh)}\" rx=\"6\" fill=\"{Svg.Ramp(T(means[c], units))}\" stroke=\"#495057\">" +
                $"<title>{E(ColumnTitle(g, c))}: {widths[c]} units, mean |{(c == 0 ? "∂L/∂x" : "δ")}| = {Html.Sci(means[c])}</title></rect>");
            sb.Append($"<text x=\"{F(ColX(c))}\" y=\"18\" text-anchor=\"middle\" font-weight=\"600\">{E(ColumnTitle(g, c))}</text>");
            sb.Append($"<text x=\"{F(ColX(c))}\" y=\"33\" text-anchor=\"middle\" class=\"small\">{E(ColumnSubtitle(g, c))}</text>");
        }
        Legend(sb, h + 22, edges, units, blocks: true, asked: g.Layers.Any(l => l.OnPath));
        return sb.Append("</svg>").ToString();
    }
}
