using System.Globalization;
using System.Text;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Backprop.Core;

namespace Backprop.Explain;

/// <summary>
/// MathML Core (rendered natively by Chromium, Firefox and Safari) of the derivation's Unicode formulas and of its
/// matrices. The formulas are the same strings the text renderer prints; this only typesets them: ∂a/∂b and a/b as
/// fractions, subscript digits and _row as subscripts, ᵀ ² ′ as superscripts, words (diag, softmax, relu) upright,
/// √(…) as a root and a trailing "   (remark)" as text.
/// </summary>
public static class MathMl
{
    /// <summary><paramref name="s"/> with &amp;, &lt;, &gt; and &quot; escaped, for MathML text and attributes.</summary>
    public static string Escape(string s) => s.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal)
        .Replace(">", "&gt;", StringComparison.Ordinal).Replace("\"", "&quot;", StringComparison.Ordinal);

    /// <summary>A whole <c>&lt;math&gt;</c> element holding <paramref name="inner"/> (already MathML).</summary>
    public static string Math(string inner, bool block = false) =>
        block ? $"<math display=\"block\">{inner}</math>" : $"<math>{inner}</math>";

    /// <summary>
    /// Whether a definition is words rather than a formula ("the input", "the output of layer 1"): a word of three or
    /// more letters that the formulas do not spell (diag, softmax, relu …).
    /// </summary>
    public static bool IsProse(string s) =>
        s.Split([' ', '(', ')', ',', ':'], StringSplitOptions.RemoveEmptyEntries)
            .Any(w => w.Length >= 3 && w.All(c => c is >= 'a' and <= 'z') && !Words.Contains(w));

    /// <summary>A formula as a &lt;math&gt; element, or words as text.</summary>
    public static string MathOrText(string s) => IsProse(s) ? $"<span class=\"words\">{Escape(s)}</span>" : Math(Formula(s));

    /// <summary>The MathML (an mrow) of one formula of the derivation.</summary>
    public static string Formula(string unicode)
    {
        string remark = "";
        int cut = unicode.IndexOf("   (", StringComparison.Ordinal);
        if (cut >= 0)
        {
            remark = $"<mspace width=\"1em\"/><mtext>{Escape(unicode[(cut + 3)..])}</mtext>";
            unicode = unicode[..cut];
        }
        int pos = 0;
        var nodes = ParseSequence(unicode, ref pos, closing: null);
        return $"<mrow>{string.Concat(nodes.Select(n => n.Xml))}{remark}</mrow>";
    }

    // ------------------------------------------------------------------ the formula parser

    /// <summary>One typeset piece: its MathML, and whether it is an operand (may be a fraction's part or take a script).</summary>
    /// <remarks><see cref="Base"/> and <see cref="Sub"/> are kept for a subscripted node, so that a superscript after it
    /// (W₁ᵀ) makes one msubsup rather than a superscript on the subscript.</remarks>
    private sealed record Node(string Xml, bool Operand, bool Group = false, string Inner = "")
    {
        public string? Base { get; init; }
        public string? Sub { get; init; }
    }

    private const string SubDigits = "₀₁₂₃₄₅₆₇₈₉";
    private const string Operators = "=+−-·⊙×→≤≥,;:|!∈Σ∑∏";
    // longest first: "leaky_relu" before "relu", "softmax" before "max"
    private static readonly System.Collections.Immutable.ImmutableArray<string> Words = System.Collections.Immutable.ImmutableArray.CreateRange(new[]
        {"softmax", "onehot", "diag", "log", "exp", "max", "min", "erf", "mean", "clamp", "sign", "relu", "tanh", "gelu", "silu", "elu",
         "leaky_relu", "softplus", "selu", "mish", "swish", "id", "if", "else", "otherwise", "and", "or", "for", "sqrt", "var",
        }.Concat(Backprop.Ops.ActivationRegistry.Default.Kinds.Select(k => k.Create<double>().Symbol).Where(w => w.Length > 1 && w.All(char.IsAsciiLetter)))
        .Distinct().OrderByDescending(w => w.Length));

    private static List<Node> ParseSequence(string s, ref int i, char? closing)
    {
        var nodes = new List<Node>();
        while (i < s.Length)
        {
            char c = s[i];
            if (closing is not null && c == closing) break;
            if (c == ' ') { i++; continue; }
            if (c is '(' or '[' or '{')
            {
                char close = c == '(' ? ')' : c == '[' ? ']' : '}';
                i++;
                var inner = ParseSequence(s, ref i, close);
                if (i < s.Length && s[i] == close) i++;
                string innerXml = string.Concat(inner.Select(n => n.Xml));
                string open = c == '{' ? "{" : c.ToString(), shut = close == '}' ? "}" : close.ToString();
                nodes.Add(new Node($"<mrow><mo>{open}</mo>{innerXml}<mo>{shut}</mo></mrow>", true, Group: c == '(', Inner: $"<mrow>{innerXml}</mrow>"));
                continue;
            }
            if (c is ')' or ']' or '}')
            {
                nodes.Add(new Node($"<mo>{c}</mo>", false));
                i++;
                continue;
            }
            if (SubDigits.IndexOf(c) >= 0)
            {
                var sb = new StringBuilder();
                while (i < s.Length && SubDigits.IndexOf(s[i]) is var k and >= 0) { sb.Append((char)('0' + k)); i++; }
                Script(nodes, "msub", $"<mn>{sb}</mn>");
                continue;
            }
            if (c == '_')
            {
                // _row, _batch, _i, _{l+1}
                i++;
                string sub;
                if (i < s.Length && s[i] == '{')
                {
                    i++;
                    var inner = ParseSequence(s, ref i, '}');
                    if (i < s.Length) i++;
                    sub = $"<mrow>{string.Concat(inner.Select(n => n.Xml))}</mrow>";
                }
                else
                {
                    int start = i;
                    while (i < s.Length && char.IsLetterOrDigit(s[i])) i++;
                    string word = s[start..i];
                    sub = word.Length > 1 && !word.All(char.IsDigit) ? $"<mtext>{Escape(word)}</mtext>" : Atom(word);
                }
                Script(nodes, "msub", sub);
                continue;
            }
            if (c is 'ᵀ' or '²' or '′' or '³')
            {
                string sup = c switch { 'ᵀ' => "<mi mathvariant=\"normal\">T</mi>", '²' => "<mn>2</mn>", '³' => "<mn>3</mn>", _ => "<mo>′</mo>" };
                i++;
                Script(nodes, "msup", sup);
                continue;
            }
            if (c == '/')
            {
                i++;
                var den = Term(s, ref i) ?? new Node("<mrow/>", true);
                if (nodes.Count > 0 && nodes[^1].Operand)
                    nodes[^1] = new Node($"<mfrac>{Unwrapped(nodes[^1])}{Unwrapped(den)}</mfrac>", true);
                else nodes.Add(new Node($"<mo>/</mo>{den.Xml}", true));
                continue;
            }
            if (c is '∂' or '√')
            {
                if (Term(s, ref i) is { } term) nodes.Add(term);
                continue;
            }
            if (Operators.Contains(c, StringComparison.Ordinal))
            {
                string op = c == '-' ? "−" : c.ToString();
                nodes.Add(new Node(c is 'Σ' or '∑' or '∏' ? $"<mo largeop=\"false\">{op}</mo>" : $"<mo>{Escape(op)}</mo>", false));
                i++;
                continue;
            }
            ParseOperand(s, ref i, nodes);
        }
        return nodes;
    }

    /// <summary>One operand with its scripts: ∂ and √ take the operand that follows (∂z₂, ∂(Σ ŷ), √(…)).</summary>
    private static Node? Term(string s, ref int i)
    {
        while (i < s.Length && s[i] == ' ') i++;
        if (i >= s.Length) return null;
        if (s[i] == '∂')
        {
            i++;
            var inner = Term(s, ref i);
            return new Node($"<mrow><mo rspace=\"0\">∂</mo>{inner?.Xml}</mrow>", true);
        }
        if (s[i] == '√')
        {
            i++;
            var inner = Term(s, ref i);
            return new Node($"<msqrt>{(inner is null ? "" : Unwrapped(inner))}</msqrt>", true);
        }
        var list = new List<Node>();
        ParseOperand(s, ref i, list);
        while (i < s.Length && ParseOneScript(s, ref i, list)) { }
        return list.Count > 0 ? list[^1] : null;
    }

    /// <summary>Reads one script (subscript digits, _word, ᵀ, ², ′) onto the last node; false when there is none.</summary>
    private static bool ParseOneScript(string s, ref int i, List<Node> nodes)
    {
        char c = s[i];
        if (SubDigits.IndexOf(c) >= 0)
        {
            var sb = new StringBuilder();
            while (i < s.Length && SubDigits.IndexOf(s[i]) is var k and >= 0) { sb.Append((char)('0' + k)); i++; }
            Script(nodes, "msub", $"<mn>{sb}</mn>");
            return true;
        }
        if (c is 'ᵀ' or '²' or '′')
        {
            i++;
            Script(nodes, "msup", c switch { 'ᵀ' => "<mi mathvariant=\"normal\">T</mi>", '²' => "<mn>2</mn>", _ => "<mo>′</mo>" });
            return true;
        }
        if (c == '_' && i + 1 < s.Length && char.IsLetterOrDigit(s[i + 1]))
        {
            i++;
            int start = i;
            while (i < s.Length && char.IsLetterOrDigit(s[i])) i++;
            string word = s[start..i];
            Script(nodes, "msub", word.Length > 1 && !word.All(char.IsDigit) ? $"<mtext>{Escape(word)}</mtext>" : Atom(word));
            return true;
        }
        return false;
    }

    /// <summary>Reads one operand: a number, a word, a letter (with its combining marks), or a bracketed group.</summary>
    private static void ParseOperand(string s, ref int i, List<Node> nodes)
    {
        while (i < s.Length && s[i] == ' ') i++;
        if (i >= s.Length) return;
        char c = s[i];
        if (c is '(' or '[')
        {
            char close = c == '(' ? ')' : ']';
            i++;
            var inner = ParseSequence(s, ref i, close);
            if (i < s.Length && s[i] == close) i++;
            string innerXml = string.Concat(inner.Select(n => n.Xml));
            nodes.Add(new Node($"<mrow><mo>{c}</mo>{innerXml}<mo>{close}</mo></mrow>", true, Group: c == '(', Inner: $"<mrow>{innerXml}</mrow>"));
            return;
        }
        if (char.IsDigit(c) || (c == '.' && i + 1 < s.Length && char.IsDigit(s[i + 1])))
        {
            int start = i;
            while (i < s.Length && (char.IsDigit(s[i]) || s[i] == '.' || ((s[i] is 'e' or 'E') && i + 1 < s.Length && (char.IsDigit(s[i + 1]) || s[i + 1] is '-' or '+'))
                || ((s[i] is '-' or '+') && i > start && s[i - 1] is 'e' or 'E'))) i++;
            nodes.Add(new Node($"<mn>{s[start..i]}</mn>", true));
            return;
        }
        if (char.IsLetter(c) && c is not 'ᵀ')
        {
            // a word the formulas spell out (diag, softmax, relu) is upright; a run of other letters is a product of symbols
            foreach (var w in Words)
                if (string.CompareOrdinal(s, i, w, 0, w.Length) == 0 && (i + w.Length >= s.Length || !char.IsLetter(s[i + w.Length]) || s[i + w.Length] == 'ᵀ'))
                {
                    nodes.Add(new Node($"<mi>{Escape(w)}</mi>", true));
                    i += w.Length;
                    // "log softmax(z)": the space between two words is kept, as a thin space
                    if (i + 1 < s.Length && s[i] == ' ' && char.IsLetter(s[i + 1])) nodes.Add(new Node("<mspace width=\"0.2em\"/>", false));
                    return;
                }
            int start = i++;
            while (i < s.Length && char.GetUnicodeCategory(s[i]) is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark) i++;
            nodes.Add(new Node(Atom(s[start..i]), true));
            return;
        }
        nodes.Add(new Node($"<mo>{Escape(c.ToString())}</mo>", false));
        i++;
    }

    private static string Atom(string text) =>
        text.Length == 0 ? "<mrow/>" : text.All(char.IsDigit) ? $"<mn>{text}</mn>" : $"<mi>{Escape(text)}</mi>";

    private static void Script(List<Node> nodes, string tag, string script)
    {
        if (nodes.Count == 0) { nodes.Add(new Node($"<{tag}><mrow/>{script}</{tag}>", true)); return; }
        var last = nodes[^1];
        nodes[^1] = tag == "msup" && last.Sub is not null
            ? new Node($"<msubsup>{last.Base}{last.Sub}{script}</msubsup>", true)
            : tag == "msub" ? new Node($"<msub>{last.Xml}{script}</msub>", true) { Base = last.Xml, Sub = script }
            : new Node($"<{tag}>{last.Xml}{script}</{tag}>", true);
    }

    /// <summary>A fraction's part drops the parentheses that only grouped it.</summary>
    private static string Unwrapped(Node n) => n.Group ? n.Inner : n.Xml;

    // ------------------------------------------------------------------ matrices

    /// <summary>
    /// A matrix in brackets with its numbers; a scalar as a number; a tensor larger than
    /// <see cref="DerivationRenderer.FullPrintLimit"/> as its top-left <see cref="DerivationRenderer.CornerSize"/>² corner with ellipses.
    /// </summary>
    public static string Matrix(Tensor<double> t)
    {
        if (t.Length == 1) return $"<mn>{DerivationRenderer.Number(t.Data[0])}</mn>";
        int rows = t.Rows, cols = t.Cols;
        bool whole = rows <= DerivationRenderer.FullPrintLimit && cols <= DerivationRenderer.FullPrintLimit;
        int r = whole ? rows : System.Math.Min(rows, DerivationRenderer.CornerSize), c = whole ? cols : System.Math.Min(cols, DerivationRenderer.CornerSize);
        bool moreRows = r < rows, moreCols = c < cols;
        var sb = new StringBuilder("<mrow><mo>[</mo><mtable>");
        for (int i = 0; i < r; i++)
        {
            sb.Append("<mtr>");
            for (int j = 0; j < c; j++) sb.Append("<mtd><mn>").Append(DerivationRenderer.Number(t.Data[i * cols + j])).Append("</mn></mtd>");
            if (moreCols) sb.Append("<mtd><mo>⋯</mo></mtd>");
            sb.Append("</mtr>");
        }
        if (moreRows)
        {
            sb.Append("<mtr>");
            for (int j = 0; j < c; j++) sb.Append("<mtd><mo>⋮</mo></mtd>");
            if (moreCols) sb.Append("<mtd><mo>⋱</mo></mtd>");
            sb.Append("</mtr>");
        }
        return sb.Append("</mtable><mo>]</mo></mrow>").ToString();
    }

    /// <summary>min and max of a tensor (0, 0 when empty).</summary>
    public static (double Min, double Max) Range(Tensor<double> t) =>
        t.Length == 0 ? (0, 0) : (TensorPrimitives.Min<double>(t.Data), TensorPrimitives.Max<double>(t.Data));
}
