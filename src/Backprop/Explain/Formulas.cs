using System.Text.RegularExpressions;

namespace Backprop.Explain;

/// <summary>Rewrites an op's formula text (data on the op) with the names of one network, token by token.</summary>
public static partial class Formulas
{
    // identifiers are runs of letters, digits and combining marks (x̂ is not x); ᵀ is a modifier letter but marks a
    // transpose, not part of a name
    [GeneratedRegex(@"[\p{L}-[ᵀ]][\p{L}\p{M}\p{N}-[ᵀ]]*")]
    private static partial Regex Identifier();

    /// <summary>
    /// <paramref name="formula"/> with every identifier found in <paramref name="names"/> replaced by its value; other
    /// text is kept. Whole identifiers only (x̂ is not x, and ᵀ is not part of a name).
    /// </summary>
    public static string Substitute(string formula, IReadOnlyDictionary<string, string> names) =>
        Identifier().Replace(formula, m => names.TryGetValue(m.Value, out var r) ? r : m.Value);

    /// <summary>The right-hand side of "lhs = rhs".</summary>
    public static string RightHandSide(string formula)
    {
        int i = formula.IndexOf(" = ", StringComparison.Ordinal);
        return i < 0 ? formula : formula[(i + 3)..];
    }

    /// <summary>Parenthesises a compound expression before it becomes a factor of a product.</summary>
    public static string Paren(string expr) =>
        expr.IndexOfAny([' ', '·', '⊙', '/']) >= 0 && !(expr.StartsWith('(') && expr.EndsWith(')') && Balanced(expr[1..^1])) ? $"({expr})" : expr;

    private static bool Balanced(string s)
    {
        int depth = 0;
        foreach (var c in s)
        {
            if (c == '(') depth++;
            else if (c == ')' && --depth < 0) return false;
        }
        return depth == 0;
    }
}
