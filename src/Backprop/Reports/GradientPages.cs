using System.Globalization;
using System.Text;
using Backprop.Explain;
using Backprop.Health;

namespace Backprop.Reports;

/// <summary>
/// The web pages of <c>explain</c> and <c>diagnose</c>: the derivation typeset in MathML (<see cref="DerivationHtml"/>,
/// from the one <see cref="Derivation"/>), the network drawn by its gradients, the per-layer gradient norms on a log
/// scale beside the health verdict, the finite-difference check, and the health table.
/// </summary>
public static class GradientPages
{
    private static string E(string s) => Html.Escape(s);

    /// <summary>The explain page of one derivation.</summary>
    /// <param name="d">The derivation: typeset step by step, and its result shown as the gradient asked for.</param>
    /// <param name="health">The health report of the same backward pass: the norm chart, the verdict and the table.</param>
    /// <param name="network">The same pass's per-unit and per-weight gradients, for the network drawing.</param>
    /// <param name="source">What was explained, for the subtitle (a problem file, or a model on rows of a data set).</param>
    /// <returns>A self-contained HTML document (<see cref="Html.Page"/>).</returns>
    public static string Explain(Derivation d, HealthReport health, NetworkGradients network, string source)
    {
        var sections = new List<string>();
        var glance = new StringBuilder("<div class=\"grid\">");
        glance.Append($"<figure class=\"panel\">{NetworkSvg.Draw(network)}<figcaption>Units coloured by |δ|, weights by |∂L/∂W| (log scales); " +
            $"the band marks the layers the backward pass to {E(d.Wrt)} goes through.</figcaption></figure>");
        glance.Append($"<div class=\"panel\">{NormChart(health)}{Html.Verdict(health.Verdict, health.Healthy)}</div>");
        glance.Append("</div>");
        sections.Add(Html.Section("overview", "At a glance", glance.ToString()));
        var result = d.Result;
        sections.Add(Html.Section("result", "The gradient asked for",
            $"<div class=\"value\">{MathMl.Math($"<mrow>{MathMl.Formula(result.Name)}<mo>=</mo>{MathMl.Matrix(result.Value)}</mrow>", block: true)}</div>" +
            $"<p class=\"shape\">{E(d.Wrt)}: {E(result.Value.ShapeString)}</p>" +
            (result.Value.Rows > DerivationRenderer.FullPrintLimit || result.Value.Cols > DerivationRenderer.FullPrintLimit
                ? $"<p class=\"summary\">{E(DerivationRenderer.Summary(result.Value))}; the top-left corner is shown</p>" : "")));
        if (d.FiniteDifference is { } fd) sections.Add(DerivationHtml.FiniteDifference(fd));
        sections.Add(DerivationHtml.Render(d));
        sections.Add(Html.Section("health", "Gradient health, layer by layer", HealthTable(health)));
        return Html.Page($"explain {d.ProblemName}: {result.Name}", $"{source} · {d.Wrt} · {d.DType} · " +
            (d.Notation == Notation.Rows ? "row-vector recurrences" : "δ notation"), sections);
    }

    /// <summary>The diagnose page: the verdict, the charts and the health table.</summary>
    public static string Diagnose(string name, HealthReport health, NetworkGradients? network, string source)
    {
        var sections = new List<string> { Html.Section("verdict", "Verdict", Html.Verdict(health.Verdict, health.Healthy) +
            Html.Figures([("shrink factor (first to last layer's ‖∂L/∂W‖)", Html.Sci(health.ShrinkFactor)),
                ("vanishing", health.Vanishing ? "yes" : "no"), ("exploding", health.Exploding ? "yes" : "no")])) };
        var charts = new StringBuilder("<div class=\"grid\">");
        charts.Append($"<div class=\"panel\">{NormChart(health)}</div>");
        if (network is not null)
            charts.Append($"<figure class=\"panel\">{NetworkSvg.Draw(network)}<figcaption>Units coloured by |δ|, weights by |∂L/∂W| (log scales).</figcaption></figure>");
        charts.Append($"<div class=\"panel\">{UnitChart(health)}</div>");
        charts.Append("</div>");
        sections.Add(Html.Section("charts", "Charts", charts.ToString()));
        sections.Add(Html.Section("health", "Gradient health, layer by layer", HealthTable(health)));
        return Html.Page($"diagnose {name}", source, sections);
    }

    /// <summary>‖∂L/∂W‖ and ‖∂L/∂h‖ per layer, grouped bars on a log scale.</summary>
    public static string NormChart(HealthReport health)
    {
        var labels = health.Layers.Select(l => $"layer {l.Layer}").ToList();
        var weight = health.Layers.Select(l => l.HasWeight ? l.WeightGradientNorm : double.NaN).ToList();
        var output = health.Layers.Select(l => l.OutputGradientNorm).ToList();
        return Svg.LogBarChart("Per-layer gradient norms", labels, [("‖∂L/∂W‖", weight), ("‖∂L/∂h‖", output)], "norm", "gradient-norms");
    }

    /// <summary>Dead and saturated shares of each layer's units, as bars (0–100%).</summary>
    private static string UnitChart(HealthReport health)
    {
        var labels = health.Layers.Select(l => $"layer {l.Layer}").ToList();
        var xs = Enumerable.Range(1, health.Layers.Count).Select(i => (double)i).ToList();
        return Svg.LineChart("Dead and saturated units", [
            new Series("dead %", xs, health.Layers.Select(l => 100 * (l.DeadFraction ?? 0)).ToList()),
            new Series("saturated %", xs, health.Layers.Select(l => 100 * (l.SaturatedFraction ?? 0)).ToList())], "layer", "% of units", logY: false, "unit-health", yMax: 100);
    }

    /// <summary>
    /// The per-layer health table as an HTML fragment: kind, activation, ‖∂L/∂W‖ and ‖W‖ (and ‖∂L/∂γ‖, ‖γ‖ where a
    /// layer has a scale), ‖∂L/∂h‖, and the dead and saturated fractions; layers numbered from 1.
    /// </summary>
    public static string HealthTable(HealthReport health)
    {
        static string Sci(double? v) => v is double d ? d.ToString("0.000e+00", CultureInfo.InvariantCulture) : "–";
        static string Pct(double? f) => f is double v ? $"{100 * v:0}%" : "–";
        bool scales = health.Layers.Any(l => l.ScaleNorm is not null);
        var header = new List<string> { "layer", "kind", "activation", "‖∂L/∂W‖", "‖W‖" };
        if (scales) header.AddRange(["‖∂L/∂γ‖", "‖γ‖"]);
        header.AddRange(["‖∂L/∂h‖", "dead ReLU", "saturated"]);
        var rows = health.Layers.Select(l =>
        {
            var r = new List<string> { l.Layer.ToString(CultureInfo.InvariantCulture), E(l.Kind), E(l.Activation),
                Sci(l.HasWeight ? l.WeightGradientNorm : null), Sci(l.HasWeight ? l.WeightNorm : null) };
            if (scales) r.AddRange([Sci(l.ScaleGradientNorm), Sci(l.ScaleNorm)]);
            r.AddRange([Sci(l.OutputGradientNorm), Pct(l.DeadFraction), Pct(l.SaturatedFraction)]);
            return (IReadOnlyList<string>)r;
        });
        return Html.Table(header, rows) + "<p class=\"muted\">Layers are numbered from 1: layers.0 of the file is layer 1.</p>";
    }
}
