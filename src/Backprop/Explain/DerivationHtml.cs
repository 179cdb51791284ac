using System.Globalization;
using System.Text;
using Backprop.Core;

namespace Backprop.Explain;

/// <summary>
/// Writes a <see cref="Derivation"/> as an HTML fragment with MathML: the same steps, formulas, factors and numbers as
/// the text and LaTeX renderers, typeset. The page around it (network, charts, styles) is the report's.
/// </summary>
public static class DerivationHtml
{
    private static string E(string s) => MathMl.Escape(s);

    /// <summary>The derivation's sections: objective and notes, forward pass, backward pass, Jacobian, finite-difference check.</summary>
    public static string Render(Derivation d)
    {
        var sb = new StringBuilder();
        sb.Append("<section class=\"derivation\" id=\"derivation\">");
        sb.Append($"<h2>Derivation of {MathMl.Math(MathMl.Formula(d.Result.Name))} <span class=\"muted\">({E(d.Wrt)}, {(d.Notation == Notation.Rows ? "row-vector recurrences" : "δ notation")}, {E(d.DType)})</span></h2>");
        sb.Append($"<p class=\"objective\">Objective: {MathMl.Math(MathMl.Formula(d.Objective))}</p>");
        if (d.Notes.Count > 0)
        {
            sb.Append("<ul class=\"notes\">");
            foreach (var n in d.Notes) sb.Append($"<li>{E(n)}</li>");
            sb.Append("</ul>");
        }
        sb.Append("<h3>Forward pass</h3>");
        foreach (var s in d.Forward) Step(sb, s, withFactors: false);
        sb.Append($"<h3>Backward pass <span class=\"muted\">({E(string.Join(" → ", d.BackwardNames))})</span></h3>");
        foreach (var s in d.Backward) Step(sb, s, withFactors: true, result: ReferenceEquals(s, d.Result));
        if (d.Jacobian.Count > 0)
        {
            sb.Append("<h3>Jacobian of the output in matrix-product form</h3>");
            foreach (var s in d.Jacobian) Step(sb, s, withFactors: true);
        }
        sb.Append("</section>");
        return sb.ToString();
    }

    /// <summary>The finite-difference check as a pass/fail box with its numbers.</summary>
    public static string FiniteDifference(FiniteDifferenceCheck fd)
    {
        string Sci(double v) => v.ToString("0.00e+00", CultureInfo.InvariantCulture);
        var sb = new StringBuilder();
        sb.Append($"<section class=\"check {(fd.Passed ? "pass" : "fail")}\" id=\"finite-difference\">");
        sb.Append($"<h2>Finite-difference check: <span class=\"verdict\">{(fd.Passed ? "pass" : "FAIL")}</span></h2>");
        sb.Append("<table class=\"figures\"><tbody>");
        sb.Append($"<tr><th>method</th><td>central differences in float64, step {Sci(fd.Step)}·max(1,|x|)</td></tr>");
        if (fd.Total > 0) sb.Append($"<tr><th>elements checked</th><td>{(fd.Checked < fd.Total ? $"{fd.Checked} of {fd.Total} (an even sample)" : $"all {fd.Total}")}</td></tr>");
        sb.Append($"<tr><th>max relative error</th><td>{Sci(fd.MaxRelError)}</td></tr>");
        sb.Append($"<tr><th>max absolute error</th><td>{Sci(fd.MaxAbsError)}</td></tr>");
        sb.Append($"<tr><th>passes when</th><td>|a − n| ≤ {fd.AbsTolerance.ToString("0e+00", CultureInfo.InvariantCulture)} + {fd.RelTolerance.ToString("0e+00", CultureInfo.InvariantCulture)}·|n| ({E(fd.DType)})</td></tr>");
        sb.Append("</tbody></table></section>");
        return sb.ToString();
    }

    private static void Step(StringBuilder sb, DerivationStep s, bool withFactors, bool result = false)
    {
        sb.Append($"<div class=\"step{(result ? " result" : "")}\">");
        sb.Append("<div class=\"eq\">");
        sb.Append(MathMl.Math($"<mrow>{MathMl.Formula(s.Formula)}</mrow>", block: true));
        sb.Append("</div>");
        sb.Append($"<div class=\"shape\">{E(s.Shape)}</div>");
        if (withFactors)
        {
            if (s.Factors.Count > 0)
            {
                sb.Append("<ul class=\"factors\">");
                foreach (var f in s.Factors)
                    sb.Append($"<li>{MathMl.Math(MathMl.Formula(f.Symbol))}: {MathMl.MathOrText(f.Definition)} {Value(f.Value)}</li>");
                sb.Append("</ul>");
            }
            if (s.Rules.Count > 0) sb.Append($"<p class=\"rules\">rule{(s.Rules.Count > 1 ? "s" : "")} from the tape: {string.Join("; ", s.Rules.Select(r => MathMl.Math(MathMl.Formula(r))))}</p>");
            if (s.Note is not null) sb.Append($"<p class=\"note\">note: {E(s.Note)}</p>");
        }
        sb.Append($"<div class=\"value\">{MathMl.Math($"<mrow>{MathMl.Formula(s.Name)}<mo>=</mo>{MathMl.Matrix(s.Value)}</mrow>", block: true)}");
        if (IsLarge(s.Value)) sb.Append($"<p class=\"summary\">{E(DerivationRenderer.Summary(s.Value))}; the top-left corner is shown</p>");
        sb.Append("</div>");
        if (withFactors && s.TapeDeviation is double dev)
            sb.Append($"<p class=\"tape\">tape's own gradient: {(dev <= 1e-9 ? "equal" : "differs")} (max relative deviation {dev.ToString("0.0e+00", CultureInfo.InvariantCulture)})</p>");
        sb.Append("</div>");
    }

    private static string Value(Tensor<double> t) =>
        $"{MathMl.Math($"<mrow><mo>=</mo>{MathMl.Matrix(t)}</mrow>")}{(IsLarge(t) ? $" <span class=\"summary\">{E(DerivationRenderer.Summary(t))}</span>" : "")}";

    private static bool IsLarge(Tensor<double> t) => t.Rows > DerivationRenderer.FullPrintLimit || t.Cols > DerivationRenderer.FullPrintLimit;
}
