using System.Globalization;
using System.Text;

namespace Backprop.Reports;

/// <summary>One named series of a chart.</summary>
public sealed record Series(string Name, IReadOnlyList<double> X, IReadOnlyList<double> Y);

/// <summary>
/// Inline SVG charts. Written here rather than by ScottPlot (whose SVG is a fixed-size picture with its own fonts):
/// these scale with the page (viewBox), take the page's fonts and colours, and print as vectors. Log axes have a grid
/// line at every decade, so a gradient that falls by 10× a layer shows as equal steps.
/// </summary>
public static class Svg
{
    /// <summary>The series colours, in order : the i-th series takes colour i mod 8.</summary>
    public static readonly System.Collections.Immutable.ImmutableArray<string> Palette = ["#1c5fb8", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c", "#5c940d"];

    private static string F(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);
    private static string E(string s) => Html.Escape(s);

    /// <summary>A colour from light to dark along a sequential scale, t in [0, 1]; <paramref name="accent"/> picks orange instead of blue.</summary>
    public static string Ramp(double t, bool accent = false)
    {
        t = double.IsFinite(t) ? Math.Clamp(t, 0, 1) : 0;
        (int r, int g, int b)[] stops = accent
            ? [(255, 236, 214), (247, 103, 7), (134, 34, 6)]
            : [(226, 234, 246), (66, 133, 214), (8, 38, 97)];
        double x = t * (stops.Length - 1);
        int i = Math.Min((int)x, stops.Length - 2);
        double f = x - i;
        int C(int a, int c) => (int)Math.Round(a + (c - a) * f);
        return $"#{C(stops[i].r, stops[i + 1].r):x2}{C(stops[i].g, stops[i + 1].g):x2}{C(stops[i].b, stops[i + 1].b):x2}";
    }

    /// <summary>The decades [lo, hi] (powers of ten) that hold every positive value; (−1, 0) when none is positive.</summary>
    public static (int Lo, int Hi) Decades(IEnumerable<double> values)
    {
        var pos = values.Where(v => v > 0 && double.IsFinite(v)).ToList();
        if (pos.Count == 0) return (-1, 0);
        // a value just above its decade's floor would be a bar without height: one more decade below it
        double min = Math.Log10(pos.Min());
        int lo = (int)Math.Floor(min), hi = (int)Math.Ceiling(Math.Log10(pos.Max()));
        if (min - lo < 0.5) lo--;
        return (lo, hi == lo ? lo + 1 : hi);
    }

    private static string Decade(int k) => k switch { 0 => "1", 1 => "10", 2 => "100", -1 => "0.1", -2 => "0.01", _ => $"1e{k}" };

    /// <summary>
    /// Grouped bars on a log scale: one group per label, one bar per series. A bar whose value is 0 is left out and
    /// marked "0" (a log axis has no zero).
    /// </summary>
    public static string LogBarChart(string title, IReadOnlyList<string> labels, IReadOnlyList<(string Name, IReadOnlyList<double> Values)> series,
        string yLabel, string id)
    {
        const int W = 600, H = 320, left = 64, right = 16, top = 34, bottom = 56;
        double plotW = W - left - right, plotH = H - top - bottom;
        var (lo, hi) = Decades(series.SelectMany(s => s.Values));
        double Y(double v) => top + plotH * (1 - (Math.Log10(v) - lo) / (hi - lo));
        var sb = new StringBuilder();
        sb.Append($"<svg id=\"{id}\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{E(title)}\">");
        sb.Append($"<title>{E(title)}</title>");
        sb.Append($"<text x=\"{left}\" y=\"18\" font-weight=\"600\">{E(title)}</text>");
        for (int k = lo; k <= hi; k++)
        {
            double y = Y(Math.Pow(10, k));
            sb.Append($"<line class=\"gridline\" x1=\"{left}\" y1=\"{F(y)}\" x2=\"{W - right}\" y2=\"{F(y)}\"/>");
            sb.Append($"<text x=\"{left - 6}\" y=\"{F(y + 4)}\" text-anchor=\"end\" class=\"small\">{Decade(k)}</text>");
        }
        sb.Append($"<line class=\"axis\" x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{top + plotH}\"/>");
        sb.Append($"<line class=\"axis\" x1=\"{left}\" y1=\"{top + plotH}\" x2=\"{W - right}\" y2=\"{top + plotH}\"/>");
        sb.Append($"<text transform=\"translate(14,{F(top + plotH / 2)}) rotate(-90)\" text-anchor=\"middle\" class=\"small\">{E(yLabel)} (log scale)</text>");
        int groups = labels.Count, n = series.Count;
        double groupW = plotW / Math.Max(1, groups), barW = Math.Min(40, groupW * 0.8 / Math.Max(1, n));
        for (int g = 0; g < groups; g++)
        {
            double cx = left + groupW * (g + 0.5);
            for (int s = 0; s < n; s++)
            {
                double v = g < series[s].Values.Count ? series[s].Values[g] : double.NaN;
                double x = cx - barW * n / 2 + barW * s;
                if (!(v > 0) || !double.IsFinite(v))
                {
                    sb.Append($"<text x=\"{F(x + barW / 2)}\" y=\"{F(top + plotH - 4)}\" text-anchor=\"middle\" class=\"small\">{(v == 0 ? "0" : "–")}</text>");
                    continue;
                }
                double y = Y(v);
                sb.Append($"<rect x=\"{F(x + 1)}\" y=\"{F(y)}\" width=\"{F(barW - 2)}\" height=\"{F(top + plotH - y)}\" fill=\"{Palette[s % Palette.Length]}\" data-value=\"{v.ToString("R", CultureInfo.InvariantCulture)}\">" +
                    $"<title>{E(labels[g])}, {E(series[s].Name)}: {Html.Sci(v)}</title></rect>");
                if (n * groups <= 16) sb.Append($"<text x=\"{F(x + barW / 2)}\" y=\"{F(y - 4)}\" text-anchor=\"middle\" class=\"small\">{Html.Sci(v)}</text>");
            }
            sb.Append($"<text x=\"{F(cx)}\" y=\"{F(top + plotH + 16)}\" text-anchor=\"middle\">{E(labels[g])}</text>");
        }
        Legend(sb, series.Select(s => s.Name).ToList(), left, H - 14);
        return sb.Append("</svg>").ToString();
    }

    private static void Legend(StringBuilder sb, IReadOnlyList<string> names, double x, double y)
    {
        foreach (var (name, i) in names.Select((nm, i) => (nm, i)))
        {
            sb.Append($"<rect x=\"{F(x)}\" y=\"{F(y - 9)}\" width=\"12\" height=\"10\" fill=\"{Palette[i % Palette.Length]}\"/>");
            sb.Append($"<text x=\"{F(x + 16)}\" y=\"{F(y)}\" class=\"small\">{E(name)}</text>");
            x += 28 + 6.5 * name.Length;
        }
    }

    /// <summary>"Nice" tick values (1, 2, 5 × 10^k) covering [lo, hi].</summary>
    public static double[] Ticks(double lo, double hi, int target = 5)
    {
        if (!(hi > lo)) { hi = lo + 1; }
        double raw = (hi - lo) / target, mag = Math.Pow(10, Math.Floor(Math.Log10(raw))), r = raw / mag;
        double step = (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
        var ticks = new List<double>();
        // from the last tick at or below lo to the first at or above hi, so that the axis holds every value
        double end = Math.Ceiling(hi / step - 1e-9) * step;
        for (double t = Math.Floor(lo / step + 1e-9) * step; t <= end + step * 1e-9; t += step) ticks.Add(Math.Abs(t) < step * 1e-9 ? 0 : t);
        return [.. ticks];
    }

    /// <summary>Lines (with their points marked) over a shared x axis; log or linear y.</summary>
    /// <param name="title">The chart's title, drawn above it.</param>
    /// <param name="series">The lines, each with its own x and y values; non-finite values (and non-positive ones on a log axis) are left out.</param>
    /// <param name="xLabel">The x axis's label.</param>
    /// <param name="yLabel">The y axis's label.</param>
    /// <param name="logY">A log y axis with a grid line at every decade (otherwise linear).</param>
    /// <param name="id">The &lt;svg&gt; element's id, unique within the page.</param>
    /// <param name="yMax">The least top of a linear y axis (100 for percentages), so that small values are not drawn as large.</param>
    public static string LineChart(string title, IReadOnlyList<Series> series, string xLabel, string yLabel, bool logY, string id, double? yMax = null)
    {
        const int W = 600, H = 320, left = 64, right = 16, top = 34, bottom = 58;
        double plotW = W - left - right, plotH = H - top - bottom;
        var xs = series.SelectMany(s => s.X).Where(double.IsFinite).DefaultIfEmpty(0).ToList();
        double x0 = xs.Min(), x1 = xs.Max();
        if (x1 <= x0) { x0 -= 0.5; x1 += 0.5; }
        var ys = series.SelectMany(s => s.Y).Where(v => double.IsFinite(v) && (!logY || v > 0)).DefaultIfEmpty(logY ? 1 : 0).ToList();
        double y0, y1;
        double[] yTicks;
        if (logY)
        {
            var (lo, hi) = Decades(ys);
            y0 = lo; y1 = hi;
            yTicks = Enumerable.Range(lo, hi - lo + 1).Select(k => (double)k).ToArray();
        }
        else
        {
            y0 = Math.Min(0, ys.Min()); y1 = Math.Max(ys.Max(), yMax ?? double.MinValue);
            if (y1 <= y0) y1 = y0 + 1;
            yTicks = Ticks(y0, y1);
            y0 = Math.Min(y0, yTicks[0]); y1 = Math.Max(y1, yTicks[^1]);
        }
        double X(double v) => left + plotW * (v - x0) / (x1 - x0);
        double Y(double v) => top + plotH * (1 - ((logY ? Math.Log10(v) : v) - y0) / (y1 - y0));
        var sb = new StringBuilder();
        sb.Append($"<svg id=\"{id}\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{E(title)}\">");
        sb.Append($"<title>{E(title)}</title><text x=\"{left}\" y=\"18\" font-weight=\"600\">{E(title)}</text>");
        foreach (var t in yTicks)
        {
            double y = logY ? Y(Math.Pow(10, t)) : Y(t);
            sb.Append($"<line class=\"gridline\" x1=\"{left}\" y1=\"{F(y)}\" x2=\"{W - right}\" y2=\"{F(y)}\"/>");
            sb.Append($"<text x=\"{left - 6}\" y=\"{F(y + 4)}\" text-anchor=\"end\" class=\"small\">{(logY ? Decade((int)t) : t.ToString("G4", CultureInfo.InvariantCulture))}</text>");
        }
        foreach (var t in Ticks(x0, x1, 8).Where(t => t >= x0 && t <= x1 && Math.Abs(t - Math.Round(t)) < 1e-9))
        {
            sb.Append($"<line class=\"axis\" x1=\"{F(X(t))}\" y1=\"{top + plotH}\" x2=\"{F(X(t))}\" y2=\"{top + plotH + 4}\"/>");
            sb.Append($"<text x=\"{F(X(t))}\" y=\"{F(top + plotH + 16)}\" text-anchor=\"middle\" class=\"small\">{Html.Sci(t)}</text>");
        }
        sb.Append($"<line class=\"axis\" x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{top + plotH}\"/>");
        sb.Append($"<line class=\"axis\" x1=\"{left}\" y1=\"{top + plotH}\" x2=\"{W - right}\" y2=\"{top + plotH}\"/>");
        sb.Append($"<text x=\"{F(left + plotW / 2)}\" y=\"{F(top + plotH + 32)}\" text-anchor=\"middle\" class=\"small\">{E(xLabel)}</text>");
        sb.Append($"<text transform=\"translate(14,{F(top + plotH / 2)}) rotate(-90)\" text-anchor=\"middle\" class=\"small\">{E(yLabel)}{(logY ? " (log scale)" : "")}</text>");
        for (int s = 0; s < series.Count; s++)
        {
            string colour = Palette[s % Palette.Length];
            var pts = series[s].X.Zip(series[s].Y).Where(p => double.IsFinite(p.First) && double.IsFinite(p.Second) && (!logY || p.Second > 0)).ToList();
            if (pts.Count > 1)
                sb.Append($"<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{string.Join(" ", pts.Select(p => $"{F(X(p.First))},{F(Y(p.Second))}"))}\"/>");
            if (pts.Count <= 60)
                foreach (var p in pts)
                    sb.Append($"<circle cx=\"{F(X(p.First))}\" cy=\"{F(Y(p.Second))}\" r=\"3\" fill=\"{colour}\"><title>{E(series[s].Name)} at {Html.Sci(p.First)}: {Html.Sci(p.Second)}</title></circle>");
        }
        Legend(sb, series.Select(s => s.Name).ToList(), left, H - 8);
        return sb.Append("</svg>").ToString();
    }

    /// <summary>A confusion matrix as a heat map: rows the true class, columns the predicted one, each cell's count printed, shaded by its share of the row.</summary>
    public static string HeatMap(string title, long[,] counts, IReadOnlyList<string> labels, string id)
    {
        int k = counts.GetLength(0);
        double cell = Math.Clamp(440.0 / Math.Max(1, k), 14, 48);
        int left = 80, top = 44;
        double size = cell * k;
        int W = (int)Math.Max(left + size + 20, 10 + 7.5 * title.Length), H = (int)(top + size + 40);
        var sb = new StringBuilder();
        sb.Append($"<svg id=\"{id}\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{E(title)}\">");
        sb.Append($"<title>{E(title)}</title><text x=\"4\" y=\"18\" font-weight=\"600\">{E(title)}</text>");
        sb.Append($"<text x=\"{F(left + size / 2)}\" y=\"36\" text-anchor=\"middle\" class=\"small\">predicted</text>");
        sb.Append($"<text transform=\"translate(12,{F(top + size / 2)}) rotate(-90)\" text-anchor=\"middle\" class=\"small\">true</text>");
        double fontSize = Math.Min(12, cell * 0.38);
        for (int r = 0; r < k; r++)
        {
            long rowSum = 0;
            for (int c = 0; c < k; c++) rowSum += counts[r, c];
            string label = r < labels.Count ? labels[r] : r.ToString(CultureInfo.InvariantCulture);
            sb.Append($"<text x=\"{left - 4}\" y=\"{F(top + cell * (r + 0.5) + 4)}\" text-anchor=\"end\" class=\"small\">{E(Short(label))}</text>");
            for (int c = 0; c < k; c++)
            {
                double share = rowSum == 0 ? 0 : (double)counts[r, c] / rowSum;
                string fill = Ramp(Math.Sqrt(share), accent: r != c);
                double x = left + cell * c, y = top + cell * r;
                sb.Append($"<rect x=\"{F(x)}\" y=\"{F(y)}\" width=\"{F(cell - 1)}\" height=\"{F(cell - 1)}\" fill=\"{(counts[r, c] == 0 ? "#f8f9fb" : fill)}\"><title>true {E(label)}, predicted {E(c < labels.Count ? labels[c] : c.ToString(CultureInfo.InvariantCulture))}: {counts[r, c]}</title></rect>");
                if (counts[r, c] > 0)
                    sb.Append($"<text x=\"{F(x + cell / 2)}\" y=\"{F(y + cell / 2 + fontSize / 3)}\" text-anchor=\"middle\" style=\"font-size:{F(fontSize)}px;fill:{(Math.Sqrt(share) > 0.55 ? "#fff" : "#1d2330")}\">{counts[r, c]}</text>");
            }
        }
        for (int c = 0; c < k; c++)
            sb.Append($"<text x=\"{F(left + cell * (c + 0.5))}\" y=\"{F(top + size + 14)}\" text-anchor=\"middle\" class=\"small\">{E(Short(c < labels.Count ? labels[c] : c.ToString(CultureInfo.InvariantCulture)))}</text>");
        return sb.Append("</svg>").ToString();
    }

    private static string Short(string s) => s.Length <= 10 ? s : s[..9] + "…";

    /// <summary>A horizontal colour legend: the ramp from <paramref name="lo"/> to <paramref name="hi"/> on a log scale.</summary>
    public static string RampLegend(StringBuilder sb, double x, double y, string label, double lo, double hi, bool accent)
    {
        string gid = $"ramp-{(accent ? "a" : "b")}-{F(x)}-{F(y)}".Replace('.', '_');
        sb.Append($"<defs><linearGradient id=\"{gid}\">");
        for (int i = 0; i <= 4; i++) sb.Append($"<stop offset=\"{i * 25}%\" stop-color=\"{Ramp(i / 4.0, accent)}\"/>");
        sb.Append("</linearGradient></defs>");
        sb.Append($"<text x=\"{F(x)}\" y=\"{F(y - 4)}\" class=\"small\">{E(label)}</text>");
        sb.Append($"<rect x=\"{F(x)}\" y=\"{F(y)}\" width=\"120\" height=\"8\" fill=\"url(#{gid})\"/>");
        sb.Append($"<text x=\"{F(x)}\" y=\"{F(y + 20)}\" class=\"small\">{Html.Sci(lo)}</text>");
        sb.Append($"<text x=\"{F(x + 120)}\" y=\"{F(y + 20)}\" text-anchor=\"end\" class=\"small\">{Html.Sci(hi)}</text>");
        return gid;
    }
}
