using System.Globalization;
using System.Text;

namespace Backprop.Reports;

/// <summary>
/// The shell of every page: one self-contained HTML5 document (styles and the one script inline, system fonts, no
/// resource from anywhere), readable at 1280 px and on a phone, and printable. The script measures every MathML
/// element and SVG after layout and writes what it found into the DOM (data-* attributes on &lt;body&gt;), so that a
/// headless browser's dumped DOM says whether the mathematics rendered; it also records script errors there.
/// </summary>
public static class Html
{
    /// <summary><paramref name="s"/> with &amp;, &lt;, &gt; and &quot; escaped: safe as HTML text and inside a double-quoted attribute.</summary>
    public static string Escape(string s) => s.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal)
        .Replace(">", "&gt;", StringComparison.Ordinal).Replace("\"", "&quot;", StringComparison.Ordinal);

    /// <summary>A number in the invariant culture with <paramref name="format"/>: "–" for NaN, and −0 written as 0.</summary>
    public static string Num(double v, string format = "G4") =>
        double.IsNaN(v) ? "–" : (v == 0 ? 0.0 : v).ToString(format, CultureInfo.InvariantCulture);

    /// <summary>A number for a scale (1e-05, 0.01, 1, 100): short, in scientific notation where it is far from 1.</summary>
    public static string Sci(double v) => v == 0 ? "0" : Math.Abs(Math.Log10(Math.Abs(v))) >= 3
        ? v.ToString("0.0e+00", CultureInfo.InvariantCulture) : v.ToString("G3", CultureInfo.InvariantCulture);

    /// <summary>A whole page: title, the body's sections, the styles and the measuring script.</summary>
    public static string Page(string title, string subtitle, IEnumerable<string> sections)
    {
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
        sb.Append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
        sb.Append("<meta name=\"generator\" content=\"backprop\">");
        sb.Append($"<title>{Escape(title)}</title><style>{Css}</style></head>\n<body>");
        sb.Append($"<header><h1>{Escape(title)}</h1><p class=\"muted\">{Escape(subtitle)}</p></header>\n<main>");
        foreach (var s in sections) sb.Append(s).Append('\n');
        sb.Append("</main>\n<footer class=\"muted\">Written by backprop. The page is self-contained: it loads nothing.</footer>");
        sb.Append($"<script>{Script}</script></body></html>\n");
        return sb.ToString();
    }

    /// <summary>A section with a heading and its content.</summary>
    public static string Section(string id, string heading, string content, string cssClass = "") =>
        $"<section id=\"{id}\"{(cssClass.Length > 0 ? $" class=\"{cssClass}\"" : "")}><h2>{Escape(heading)}</h2>{content}</section>";

    /// <summary>A two-column table of names and values (already HTML).</summary>
    public static string Figures(IEnumerable<(string Name, string ValueHtml)> rows)
    {
        var sb = new StringBuilder("<table class=\"figures\"><tbody>");
        foreach (var (name, value) in rows) sb.Append($"<tr><th>{Escape(name)}</th><td>{value}</td></tr>");
        return sb.Append("</tbody></table>").ToString();
    }

    /// <summary>A table with a header row; cells are HTML.</summary>
    public static string Table(IReadOnlyList<string> header, IEnumerable<IReadOnlyList<string>> rows, string cssClass = "data")
    {
        var sb = new StringBuilder($"<div class=\"scroll\"><table class=\"{cssClass}\"><thead><tr>");
        foreach (var h in header) sb.Append($"<th>{Escape(h)}</th>");
        sb.Append("</tr></thead><tbody>");
        foreach (var r in rows) sb.Append("<tr>").Append(string.Concat(r.Select(c => $"<td>{c}</td>"))).Append("</tr>");
        return sb.Append("</tbody></table></div>").ToString();
    }

    /// <summary>A verdict box: green when healthy, amber otherwise.</summary>
    public static string Verdict(string verdict, bool healthy) =>
        $"<p class=\"verdict-box {(healthy ? "good" : "bad")}\"><strong>verdict:</strong> {Escape(verdict)}</p>";

    // Chromium lays out an mtd's numbers by its own math layout, which follows -webkit-right but not right (measured
    // in Chromium 156: a short number in a column of long ones sat at the column's left edge with "right").
    // Sizes measured after layout: a <math> that the browser does not render as MathML has no box of its own size.
    private const string Script = """
(function () {
  var errors = [];
  window.addEventListener('error', function (e) { errors.push(String(e.message)); document.body.setAttribute('data-script-errors', errors.join(' | ')); });
  function measure() {
    var maths = document.querySelectorAll('math'), zero = 0, minW = Infinity, minH = Infinity;
    for (var i = 0; i < maths.length; i++) {
      var r = maths[i].getBoundingClientRect();
      if (!(r.width > 0 && r.height > 0)) zero++;
      minW = Math.min(minW, r.width); minH = Math.min(minH, r.height);
    }
    var svgs = document.querySelectorAll('svg'), svgZero = 0;
    for (var j = 0; j < svgs.length; j++) { var s = svgs[j].getBoundingClientRect(); if (!(s.width > 0 && s.height > 0)) svgZero++; }
    var b = document.body;
    b.setAttribute('data-math-count', maths.length);
    b.setAttribute('data-math-zero-size', zero);
    b.setAttribute('data-math-min-size', maths.length ? (minW.toFixed(1) + 'x' + minH.toFixed(1)) : '');
    b.setAttribute('data-mathml-rendered', maths.length > 0 && maths[0] instanceof MathMLElement ? 'yes' : 'no');
    b.setAttribute('data-svg-count', svgs.length);
    b.setAttribute('data-svg-zero-size', svgZero);
    b.setAttribute('data-script-errors', errors.join(' | '));
    b.setAttribute('data-measured', 'yes');
  }
  if (document.readyState === 'complete') measure(); else window.addEventListener('load', measure);
})();
""";

    private const string Css = """
:root { --fg: #1d2330; --muted: #5b6474; --line: #d9dee7; --bg: #ffffff; --panel: #f6f8fb; --accent: #d9480f; --good: #2b8a3e; --bad: #c92a2a; --blue: #1c5fb8; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif; color: var(--fg); background: var(--bg); line-height: 1.45; font-size: 16px; }
header, main, footer { max-width: 1200px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 20px; border-bottom: 1px solid var(--line); }
h1 { font-size: 1.6rem; margin: 0.2em 0; word-break: break-word; }
h2 { font-size: 1.25rem; margin: 1.4em 0 0.5em; border-bottom: 1px solid var(--line); padding-bottom: 0.2em; }
h3 { font-size: 1.05rem; margin: 1.2em 0 0.4em; }
.muted { color: var(--muted); font-weight: normal; }
footer { padding: 24px; font-size: 0.85rem; }
math { font-family: "STIX Two Math", "Latin Modern Math", "DejaVu Math TeX Gyre", "Cambria Math", math; }
math[display="block"] { margin: 0.3em 0; text-align: left; }
.step math[display="block"], .value math[display="block"] { display: block math; width: max-content; max-width: none; }
mtd { text-align: right; text-align: -webkit-right; padding: 0.05em 0.45em; }
.grid { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 24px; align-items: start; }
.grid > * { min-width: 0; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
.step { border-left: 3px solid var(--line); padding: 4px 0 4px 14px; margin: 12px 0; }
.step.result { border-left-color: var(--accent); background: #fff4e6; }
.eq, .value { overflow-x: auto; overflow-y: hidden; max-width: 100%; }
.shape { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 0.85rem; color: var(--muted); }
.factors { margin: 4px 0; padding-left: 1.2em; }
.factors li { margin: 2px 0; overflow-x: auto; }
.rules, .note, .tape, .summary { font-size: 0.9rem; color: var(--muted); margin: 4px 0; }
.notes { color: var(--muted); font-size: 0.9rem; }
svg { display: block; max-width: 100%; height: auto; font-family: inherit; }
svg text { fill: var(--fg); font-size: 12px; }
svg .axis { stroke: #8a93a3; stroke-width: 1; }
svg .gridline { stroke: #e6e9ef; stroke-width: 1; }
svg .small { font-size: 10px; fill: var(--muted); }
figure { margin: 0; }
figcaption { font-size: 0.9rem; color: var(--muted); margin-top: 4px; }
table { border-collapse: collapse; }
table.figures th { text-align: left; font-weight: 600; padding: 3px 16px 3px 0; vertical-align: top; }
table.figures td { padding: 3px 0; }
table.data { width: 100%; font-size: 0.9rem; }
table.data th, table.data td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: right; white-space: nowrap; }
table.data th:first-child, table.data td:first-child { text-align: left; }
.scroll { overflow-x: auto; }
.verdict-box { border-radius: 8px; padding: 10px 14px; margin: 10px 0; }
.verdict-box.good { background: #ebfbee; border: 1px solid #8ce99a; }
.verdict-box.bad { background: #fff5f5; border: 1px solid #ffa8a8; }
.check.pass .verdict { color: var(--good); }
.check.fail .verdict { color: var(--bad); }
@media (max-width: 900px) {
  .grid { grid-template-columns: minmax(0, 1fr); }
}
@media (max-width: 600px) {
  header, main, footer { padding: 0 12px; }
  body { font-size: 15px; }
  h1 { font-size: 1.3rem; }
  .step { padding-left: 8px; }
}
@media print {
  body { font-size: 11pt; }
  header, main, footer { max-width: none; padding: 0; }
  .panel { background: none; }
  .step.result { background: none; }
  .eq, .value, .scroll { overflow: visible; }
  .step, figure, table, .verdict-box { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
  footer { display: none; }
}
""";
}
