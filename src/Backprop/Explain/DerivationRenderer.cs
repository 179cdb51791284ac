using System.Globalization;
using System.Text;

using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Backprop.Core;
using Backprop.Ops;

namespace Backprop.Explain;

/// <summary>How <see cref="DerivationRenderer.Render"/> writes a derivation.</summary>
public enum DerivationFormat
{
    /// <summary>Plain text with Unicode formulas, for a terminal.</summary>
    Text,
    /// <summary>Markdown with $…$ math.</summary>
    Markdown,
    /// <summary>A LaTeX align fragment.</summary>
    Latex,
}

/// <summary>Writes a <see cref="Derivation"/> as plain text, markdown with $…$ math, or a LaTeX align fragment.</summary>
public static class DerivationRenderer
{
    /// <summary>Matrices up to this many rows and columns are printed in full; larger ones are summarised.</summary>
    public const int FullPrintLimit = 8;

    /// <summary>A number as every renderer prints it: 6 significant digits, invariant culture, never "-0".</summary>
    public static string Number(double v) => (v == 0 ? 0.0 : v).ToString("G6", CultureInfo.InvariantCulture); // no "-0"

    /// <summary>The whole derivation <paramref name="d"/> in <paramref name="format"/>: title, forward pass, backward steps, the Jacobian (when derived) and the finite-difference check (when run).</summary>
    public static string Render(Derivation d, DerivationFormat format) => format switch
    {
        DerivationFormat.Markdown => Markdown(d),
        DerivationFormat.Latex => Latex(d),
        _ => Text(d),
    };

    private static bool Small(Tensor<double> t) => t.Rows <= FullPrintLimit && t.Cols <= FullPrintLimit;

    /// <summary>A one-line summary of a tensor: its shape, Frobenius norm, min and max (0 for an empty one).</summary>
    public static string Summary(Tensor<double> t)
    {
        double min = t.Length == 0 ? 0 : TensorPrimitives.Min<double>(t.Data), max = t.Length == 0 ? 0 : TensorPrimitives.Max<double>(t.Data);
        return $"{t.ShapeString}: ‖·‖_F = {Number(t.FrobeniusNorm())}, min {Number(min)}, max {Number(max)}";
    }

    /// <summary>The rows and columns of the top-left corner a large tensor shows of its values.</summary>
    public const int CornerSize = 4;

    /// <summary>
    /// Rows of right-aligned numbers in brackets; for a large tensor a summary line (shape, norm, min, max) and its
    /// top-left <see cref="CornerSize"/>×<see cref="CornerSize"/> corner, with ellipses for what is left out.
    /// </summary>
    public static IReadOnlyList<string> MatrixLines(Tensor<double> t)
    {
        bool small = Small(t);
        int rows = t.Rows, cols = t.Cols;
        int r = small ? rows : Math.Min(rows, CornerSize), c = small ? cols : Math.Min(cols, CornerSize);
        var cells = new string[r * c];
        for (int i = 0; i < r; i++)
            for (int j = 0; j < c; j++) cells[i * c + j] = Number(t.Data[i * cols + j]);
        int width = cells.DefaultIfEmpty("").Max(s => s.Length);
        var lines = new List<string>(r + 2);
        if (!small) lines.Add($"{Summary(t)}; top-left corner:");
        for (int i = 0; i < r; i++)
            lines.Add("[ " + string.Join("  ", Enumerable.Range(0, c).Select(j => cells[i * c + j].PadLeft(width))) + (c < cols ? "  …" : "") + " ]");
        if (r < rows) lines.Add("  " + string.Join("  ", Enumerable.Repeat("⋮".PadLeft(width), c)));
        return lines;
    }

    private static string Title(Derivation d) =>
        $"explain {d.ProblemName} ({d.DType}): {d.Result.Name} ({d.Wrt}), {(d.Notation == Notation.Rows ? "row-vector recurrences" : "δ notation")}";

    /// <summary>
    /// The finite-difference check in one line: the step, the sample checked if not all, the largest relative and
    /// absolute errors, the pass rule with its tolerances, and pass or FAIL.
    /// </summary>
    public static string FiniteDifferenceLine(FiniteDifferenceCheck fd) =>
        $"finite-difference check (central differences in float64, step {fd.Step.ToString("0.00e+00", CultureInfo.InvariantCulture)}·max(1,|x|)" +
        (fd.Checked < fd.Total ? $", on an even sample of {fd.Checked} of the {fd.Total} elements" : "") + "): " +
        $"max rel error {fd.MaxRelError:0.00e+00}, max abs error {fd.MaxAbsError:0.00e+00} " +
        $"(pass if |a − n| ≤ {fd.AbsTolerance.ToString("0e+00", CultureInfo.InvariantCulture)} + {fd.RelTolerance.ToString("0e+00", CultureInfo.InvariantCulture)}·|n|, {fd.DType}): {(fd.Passed ? "pass" : "FAIL")}";

    private static string TapeLine(DerivationStep s) => s.TapeDeviation is double dev
        ? $"tape's own gradient: {(dev <= 1e-9 ? "equal" : "differs")} (max relative deviation {dev:0.0e+00})"
        : "";

    // ------------------------------------------------------------------ text

    private static string Text(Derivation d)
    {
        var sb = new StringBuilder();
        sb.AppendLine(Title(d));
        sb.AppendLine($"objective: {d.Objective}");
        foreach (var n in d.Notes) sb.AppendLine($"note: {n}");
        sb.AppendLine();
        sb.AppendLine("Forward pass");
        foreach (var s in d.Forward) TextStep(sb, s, withFactors: false);
        sb.AppendLine();
        sb.AppendLine($"Backward pass: {d.Result.Name}, step by step ({string.Join(" → ", d.BackwardNames)})");
        foreach (var s in d.Backward) TextStep(sb, s, withFactors: true);
        if (d.Jacobian.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine("Jacobian of the output in matrix-product form");
            foreach (var s in d.Jacobian) TextStep(sb, s, withFactors: true);
        }
        if (d.FiniteDifference is { } fd)
        {
            sb.AppendLine();
            sb.AppendLine(FiniteDifferenceLine(fd));
        }
        return sb.ToString();
    }

    private static void TextStep(StringBuilder sb, DerivationStep s, bool withFactors)
    {
        sb.AppendLine($"  {s.Formula,-44}  {s.Shape}");
        if (withFactors)
        {
            foreach (var f in s.Factors)
            {
                sb.AppendLine($"      {f.Symbol}: {f.Definition}");
                foreach (var line in MatrixLines(f.Value)) sb.AppendLine($"        {line}");
            }
            if (s.Rules.Count > 0) sb.AppendLine($"      rule{(s.Rules.Count > 1 ? "s" : "")} from the tape: {string.Join("; ", s.Rules)}");
            if (s.Note is not null) sb.AppendLine($"      note: {s.Note}");
            sb.AppendLine($"      {s.Name} =");
        }
        foreach (var line in MatrixLines(s.Value)) sb.AppendLine($"        {line}");
        if (withFactors && s.TapeDeviation is not null) sb.AppendLine($"      {TapeLine(s)}");
    }

    // ------------------------------------------------------------------ markdown

    private static string Markdown(Derivation d)
    {
        var words = Words(d.SymbolLatex);
        var sb = new StringBuilder();
        sb.AppendLine($"# {Title(d)}");
        sb.AppendLine();
        sb.AppendLine($"Objective: ${LatexOf(d.Objective, words)}$");
        sb.AppendLine();
        foreach (var n in d.Notes) sb.AppendLine($"- {n}");
        sb.AppendLine();
        sb.AppendLine("## Forward pass");
        sb.AppendLine();
        foreach (var s in d.Forward) MarkdownStep(sb, s, false, words);
        sb.AppendLine("## Backward pass");
        sb.AppendLine();
        foreach (var s in d.Backward) MarkdownStep(sb, s, true, words);
        if (d.Jacobian.Count > 0)
        {
            sb.AppendLine("## Jacobian in matrix-product form");
            sb.AppendLine();
            foreach (var s in d.Jacobian) MarkdownStep(sb, s, true, words);
        }
        if (d.FiniteDifference is { } fd)
        {
            sb.AppendLine("## Check");
            sb.AppendLine();
            sb.AppendLine(FiniteDifferenceLine(fd));
        }
        return sb.ToString();
    }

    private static void MarkdownStep(StringBuilder sb, DerivationStep s, bool withFactors, (string From, string To)[] words)
    {
        sb.AppendLine($"### ${LatexOf(s.Name, words)}$");
        sb.AppendLine();
        sb.AppendLine($"$${LatexOf(s.Formula, words)}$$");
        sb.AppendLine();
        sb.AppendLine($"Shape: `{s.Shape}`");
        sb.AppendLine();
        if (withFactors)
            foreach (var f in s.Factors)
                sb.AppendLine($"- ${LatexOf(f.Symbol, words)}$ ({ToLatexInline(f.Definition, words)}) $= {LatexMatrix(f.Value)}$");
        if (withFactors && s.Rules.Count > 0) sb.AppendLine($"- rules from the tape: `{string.Join("; ", s.Rules)}`");
        if (s.Note is not null) sb.AppendLine($"- note: {s.Note}");
        if (s.TapeDeviation is not null) sb.AppendLine($"- {TapeLine(s)}");
        sb.AppendLine();
        sb.AppendLine($"$${LatexOf(s.Name, words)} = {LatexMatrix(s.Value)}$$");
        sb.AppendLine();
    }

    private static string ToLatexInline(string s, (string From, string To)[] words) => $"${LatexOf(s, words)}$";

    // ------------------------------------------------------------------ LaTeX

    private static string Latex(Derivation d)
    {
        var words = Words(d.SymbolLatex);
        var sb = new StringBuilder();
        sb.AppendLine($"% {Title(d)}");
        foreach (var n in d.Notes) sb.AppendLine($"% {n}");
        sb.AppendLine("\\begin{align}");
        var all = d.Forward.Concat(d.Backward).Concat(d.Jacobian).ToList();
        for (int i = 0; i < all.Count; i++)
        {
            var s = all[i];
            string formula = LatexOf(s.Formula, words);
            int eq = formula.IndexOf('=');
            string aligned = eq < 0 ? $"&{formula}" : $"{formula[..eq]}&={formula[(eq + 1)..]}";
            sb.Append($"  {aligned} &&= {LatexMatrix(s.Value)}");
            sb.AppendLine(i < all.Count - 1 ? " \\\\" : "");
        }
        sb.AppendLine("\\end{align}");
        if (d.FiniteDifference is { } fd) sb.AppendLine($"% {FiniteDifferenceLine(fd)}");
        return sb.ToString();
    }

    /// <summary>
    /// A LaTeX bmatrix of the tensor's values; for a large tensor (more than <see cref="FullPrintLimit"/> rows or columns)
    /// a \text summary and the top-left <see cref="CornerSize"/>×<see cref="CornerSize"/> corner with \cdots, \vdots and \ddots.
    /// </summary>
    public static string LatexMatrix(Tensor<double> t)
    {
        bool small = Small(t);
        int rows = t.Rows, cols = t.Cols;
        int r = small ? rows : Math.Min(rows, CornerSize), c = small ? cols : Math.Min(cols, CornerSize);
        var sb = new StringBuilder();
        if (!small)
            sb.Append($"\\text{{{Summary(t).Replace("‖·‖_F", "Frobenius norm", StringComparison.Ordinal).Replace("×", "x", StringComparison.Ordinal)}; top-left corner: }}");
        sb.Append("\\begin{bmatrix}");
        for (int i = 0; i < r; i++)
        {
            if (i > 0) sb.Append(" \\\\ ");
            sb.Append(string.Join(" & ", Enumerable.Range(0, c).Select(j => Number(t.Data[i * cols + j]))));
            if (c < cols) sb.Append(" & \\cdots");
        }
        if (r < rows) sb.Append(" \\\\ ").Append(string.Join(" & ", Enumerable.Repeat("\\vdots", c))).Append(c < cols ? " & \\ddots" : "");
        return sb.Append("\\end{bmatrix}").ToString();
    }

    /// <summary>Words of the formulas that are not activation symbols (those come from the activations themselves).</summary>
    private static readonly System.Collections.Immutable.ImmutableArray<(string From, string To)> FormulaWords =
    [
        ("softmax", "\\operatorname{softmax}"), ("onehot", "\\operatorname{onehot}"), ("diag", "\\operatorname{diag}"),
        ("log", "\\log"), ("max", "\\max"), ("erf", "\\operatorname{erf}"),
        ("_row", "_{\\text{row}}"), ("_batch", "_{\\text{batch}}"), ("_rows", "_{\\text{rows}}"),
        ("mean", "\\operatorname{mean}"), ("clamp", "\\operatorname{clamp}"), ("sign", "\\operatorname{sign}"),
    ];

    /// <summary>
    /// The words to replace: the formula words, the built-in activations' symbols and <paramref name="extra"/> (the
    /// network's own activations), longest first so that no word is cut short by another it begins with.
    /// </summary>
    private static (string From, string To)[] Words(IReadOnlyList<(string Symbol, string Latex)>? extra)
    {
        var symbols = ActivationRegistry.Default.Kinds.Select(k => k.Create<double>())
            .Where(a => a.LatexSymbol is not null).Select(a => (a.Symbol, a.LatexSymbol!));
        return [.. FormulaWords.Concat(symbols).Concat(extra ?? []).DistinctBy(w => w.Item1).OrderByDescending(w => w.Item1.Length)];
    }

    /// <summary>Converts the Unicode math of the formulas to LaTeX; a trailing "   (…)" remark becomes \text.</summary>
    public static string ToLatex(string s, IReadOnlyList<(string Symbol, string Latex)>? symbolLatex = null) => LatexOf(s, Words(symbolLatex));

    private static string LatexOf(string s, (string From, string To)[] words)
    {
        string remark = "";
        int cut = s.IndexOf("   (", StringComparison.Ordinal);
        if (cut >= 0)
        {
            // a hatted letter in the remark (x̂) as inline math: \text cannot hold the combining mark
            string text = System.Text.RegularExpressions.Regex.Replace(s[(cut + 3)..].Replace("_", "\\_", StringComparison.Ordinal),
                "(\\p{L})\u0302", m => $"$\\hat{{{LatexChar(m.Groups[1].Value[0]).TrimEnd()}}}$");
            remark = $"\\quad\\text{{{text}}}";
            s = s[..cut];
        }
        var sb = new StringBuilder();
        for (int i = 0; i < s.Length; i++)
        {
            char ch = s[i];
            int sub = "₀₁₂₃₄₅₆₇₈₉".IndexOf(ch);
            if (sub >= 0)
            {
                sb.Append("_{");
                while (i < s.Length && "₀₁₂₃₄₅₆₇₈₉".IndexOf(s[i]) is var k and >= 0) { sb.Append((char)('0' + k)); i++; }
                i--;
                sb.Append('}');
                continue;
            }
            if (i + 1 < s.Length && s[i + 1] == '\u0302')
            {
                // a letter with a combining circumflex (x̂, σ̂): \hat of the letter's LaTeX
                sb.Append("\\hat{").Append(LatexChar(ch).TrimEnd()).Append('}');
                i++;
                continue;
            }
            if (ch == 'i' && i + 2 < s.Length && s.Substring(i, 2) == "id" && !char.IsLetter(s[i + 2]) && (i == 0 || !char.IsLetter(s[i - 1])))
            {
                sb.Append("\\operatorname{id}"); i++; continue;
            }
            var word = words.FirstOrDefault(w => string.CompareOrdinal(s, i, w.From, 0, w.From.Length) == 0);
            if (word.From is not null && (i == 0 || !char.IsLetter(s[i - 1]) || word.From[0] == '_'))
            {
                sb.Append(word.To).Append(word.To.EndsWith('}') ? "" : " ");
                i += word.From.Length - 1;
                continue;
            }
            sb.Append(LatexChar(ch));
        }
        return sb.Append(remark).ToString();
    }

    private static string LatexChar(char ch) => ch switch
        {
            'σ' => "\\sigma ", 'δ' => "\\delta ", '∂' => "\\partial ", 'Σ' => "\\sum ", '⊙' => "\\odot ", '·' => "\\cdot ",
            '−' => "-", '→' => "\\to ", '×' => "\\times ", 'ᵀ' => "^{\\top}", '′' => "'", 'ŷ' => "\\hat{y}", 'φ' => "\\varphi ",
            'Φ' => "\\Phi ", 'π' => "\\pi ", '√' => "\\sqrt", '‖' => "\\|", '≤' => "\\le ", 'α' => "\\alpha ",
            'μ' => "\\mu ", 'ε' => "\\varepsilon ", 'γ' => "\\gamma ", 'β' => "\\beta ", '²' => "^{2}", 'ℓ' => "\\ell ",
            '∈' => "\\in ", '{' => "{", '}' => "}", _ => ch.ToString(),
        };
}
