using Backprop.Core;
using Backprop.Explain;

namespace Backprop.Tests.Explain;

/// <summary>The typesetting of the derivation's Unicode formulas as MathML: the structure a reader sees.</summary>
public class MathMlTests
{
    [Fact]
    public void A_partial_derivative_is_a_fraction_and_a_transposed_weight_one_subsup()
    {
        string m = MathMl.Formula("∂L/∂W₁ = δ₁ᵀ·x");
        Assert.Contains("<mfrac><mrow><mo rspace=\"0\">∂</mo><mi>L</mi></mrow><mrow><mo rspace=\"0\">∂</mo><msub><mi>W</mi><mn>1</mn></msub></mrow></mfrac>", m, StringComparison.Ordinal);
        Assert.Contains("<msubsup><mi>δ</mi><mn>1</mn><mi mathvariant=\"normal\">T</mi></msubsup>", m, StringComparison.Ordinal);
        Assert.Contains("<mo>·</mo><mi>x</mi>", m, StringComparison.Ordinal);
    }

    [Fact]
    public void A_parenthesised_numerator_loses_its_parentheses_and_words_stay_upright()
    {
        string m = MathMl.Formula("L = (1/N)·Σ (ŷ − t)²");
        Assert.Contains("<mfrac><mn>1</mn><mi>N</mi></mfrac>", m, StringComparison.Ordinal);
        Assert.Contains("<msup><mrow><mo>(</mo><mi>ŷ</mi><mo>−</mo><mi>t</mi><mo>)</mo></mrow><mn>2</mn></msup>", m, StringComparison.Ordinal);
        string d = MathMl.Formula("db₄ = dy₅·diag(σ′(A₄y₄ + b₄))");
        Assert.Contains("<mi>diag</mi>", d, StringComparison.Ordinal);
        Assert.Contains("<msup><mi>σ</mi><mo>′</mo></msup>", d, StringComparison.Ordinal);
    }

    [Fact]
    public void A_trailing_remark_is_text_and_prose_is_not_typeset()
    {
        Assert.Contains("<mtext>(N = 24: the number of output elements)</mtext>", MathMl.Formula("2·(ŷ − t)/N   (N = 24: the number of output elements)"), StringComparison.Ordinal);
        Assert.True(MathMl.IsProse("the output of layer 1"));
        Assert.False(MathMl.IsProse("relu′(z) = 1 if z > 0 else 0"));
        Assert.False(MathMl.IsProse("σ′(z) = σ(z)·(1 − σ(z))"));
    }

    [Fact]
    public void A_large_matrix_shows_its_top_left_corner_with_ellipses()
    {
        var t = new Tensor<double>(Enumerable.Range(0, 20 * 9).Select(i => (double)i).ToArray(), 20, 9);
        string m = MathMl.Matrix(t);
        int cells = System.Text.RegularExpressions.Regex.Count(m, "<mn>");
        Assert.Equal(DerivationRenderer.CornerSize * DerivationRenderer.CornerSize, cells);
        Assert.Contains("<mn>10</mn>", m, StringComparison.Ordinal);   // row 1, column 1 of a 9-column matrix
        Assert.Contains("⋯", m, StringComparison.Ordinal);
        Assert.Contains("⋮", m, StringComparison.Ordinal);
        var lines = DerivationRenderer.MatrixLines(t);
        Assert.Contains("top-left corner", lines[0], StringComparison.Ordinal);
        Assert.Contains("20×9", lines[0], StringComparison.Ordinal);
        Assert.Equal(1 + DerivationRenderer.CornerSize + 1, lines.Count);
    }
}
