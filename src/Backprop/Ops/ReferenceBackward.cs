using System.Numerics;
using Backprop.Core;
using Backprop.Autodiff;

namespace Backprop.Ops;

/// <summary>A value a backward rule names (x̂, σ̂, dx̂, a mask), in float64, under the op's own symbol and with its definition.</summary>
/// <param name="Symbol">The symbol in the op's formulas, e.g. "x̂".</param>
/// <param name="Definition">What it is, in words, e.g. "(x − μ)/σ̂, the normalised input".</param>
/// <param name="Value">Its value, computed in float64.</param>
public sealed record ReferenceValue(string Symbol, string Definition, Tensor<double> Value);

/// <summary>
/// ∂L/∂(one input) recomputed in float64 by the rule <see cref="Op{T}.GradFormulas"/> prints, with the values the rule
/// names and, where the rule needs one, a remark in words (e.g. that the rows of the batch are coupled).
/// </summary>
/// <param name="Gradient">∂L/∂input, in the input's shape.</param>
/// <param name="Values">The intermediate values the rule names, for explain to print.</param>
/// <param name="Note">A remark in words where the rule needs one; null otherwise.</param>
public sealed record ReferenceGradient(Tensor<double> Gradient, IReadOnlyList<ReferenceValue> Values, string? Note = null);

/// <summary>
/// An op whose backward rule <c>explain</c> recomputes independently of the op's kernel: in float64, from the inputs'
/// values and the gradient of the output (which explain itself computed further down the graph), by the printed rule.
/// The op carries this next to its forward, backward and formulas: one op, one place.
/// </summary>
public interface IReferenceBackward<T> where T : unmanaged, IFloatingPointIeee754<T>
{
    /// <summary>The op's own symbols in its formulas (x̂, μ, σ², σ̂, dx̂, m …), which a derivation gives the layer's subscript.</summary>
    IReadOnlyList<string> LocalSymbols { get; }

    /// <summary>∂L/∂inputs[<paramref name="which"/>] given ∂L/∂(output) = <paramref name="dy"/>, by the rule GradFormulas[which].</summary>
    ReferenceGradient ReferenceBackward(Var<T>[] inputs, Tensor<double> dy, int which);
}

/// <summary>
/// An op that can make one row's output depend on the other rows of the batch (batch norm in training mode): then a
/// sample's gradient is not a function of that sample alone, and per-sample gradients are not defined.
/// </summary>
public interface IBatchCoupling
{
    /// <summary>Whether the last forward pass coupled the rows of the batch.</summary>
    bool CouplesBatch { get; }

    /// <summary>Why, in words, for a one-line refusal.</summary>
    string CouplingReason { get; }
}

/// <summary>The float64 arithmetic the reference rules share.</summary>
internal static class Reference
{
    public static Tensor<double> ToDouble<T>(Tensor<T> t) where T : unmanaged, IFloatingPointIeee754<T> => new(t.ToDoubleArray(), t.ShapeArray);

    /// <summary>Σ over the rows of an N × F matrix: F values.</summary>
    public static Tensor<double> ColumnSums(Tensor<double> a)
    {
        int n = a.Dim(0), f = a.Dim(1);
        var s = new Tensor<double>(f);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < f; j++) s.Data[j] += a.Data[i * f + j];
        return s;
    }

    public static Tensor<double> Hadamard(Tensor<double> a, Tensor<double> b)
    {
        var c = new Tensor<double>(a.ShapeArray);
        for (int i = 0; i < c.Length; i++) c.Data[i] = a.Data[i] * b.Data[i];
        return c;
    }

    /// <summary>dx̂ = dy ⊙ γ per feature (dy itself without γ).</summary>
    public static Tensor<double> ScaledByGamma<T>(Tensor<double> dy, Var<T>[] inputs) where T : unmanaged, IFloatingPointIeee754<T>
    {
        if (inputs.Length < 2) return dy.Clone();
        var gamma = ToDouble(inputs[1].Value);
        int f = gamma.Length;
        var d = new Tensor<double>(dy.ShapeArray);
        for (int k = 0; k < d.Length; k++) d.Data[k] = dy.Data[k] * gamma.Data[k % f];
        return d;
    }

    /// <summary>
    /// The normalisation's backward along one axis of an N × F matrix: for each group (a row for layer norm, a column for
    /// batch norm) of size K, dx = (1/σ̂)·(dx̂ − mean(dx̂) − x̂ ⊙ mean(dx̂ ⊙ x̂)); <paramref name="sigmaHat"/> per group.
    /// </summary>
    public static Tensor<double> NormalizeBackward(Tensor<double> dxhat, Tensor<double> xhat, Tensor<double> sigmaHat, bool rows)
    {
        int n = xhat.Dim(0), f = xhat.Dim(1);
        int groups = rows ? n : f, size = rows ? f : n;
        var dx = new Tensor<double>(n, f);
        for (int g = 0; g < groups; g++)
        {
            double mean = 0, meanDot = 0;
            for (int k = 0; k < size; k++)
            {
                int at = rows ? g * f + k : k * f + g;
                mean += dxhat.Data[at];
                meanDot += dxhat.Data[at] * xhat.Data[at];
            }
            mean /= size;
            meanDot /= size;
            for (int k = 0; k < size; k++)
            {
                int at = rows ? g * f + k : k * f + g;
                dx.Data[at] = (dxhat.Data[at] - mean - xhat.Data[at] * meanDot) / sigmaHat.Data[g];
            }
        }
        return dx;
    }

    /// <summary>μ, σ̂ = √(σ² + ε) (σ² biased) and x̂ = (x − μ)/σ̂ over each row (<paramref name="rows"/>) or each column.</summary>
    public static (Tensor<double> Mean, Tensor<double> SigmaHat, Tensor<double> XHat) Normalize(Tensor<double> x, double eps, bool rows)
    {
        int n = x.Dim(0), f = x.Dim(1);
        int groups = rows ? n : f, size = rows ? f : n;
        var mean = rows ? new Tensor<double>(n, 1) : new Tensor<double>(f);
        var sigmaHat = rows ? new Tensor<double>(n, 1) : new Tensor<double>(f);
        var xhat = new Tensor<double>(n, f);
        for (int g = 0; g < groups; g++)
        {
            double m = 0, v = 0;
            for (int k = 0; k < size; k++) m += x.Data[rows ? g * f + k : k * f + g];
            m /= size;
            for (int k = 0; k < size; k++) { double d = x.Data[rows ? g * f + k : k * f + g] - m; v += d * d; }
            double s = Math.Sqrt(v / size + eps);
            mean.Data[g] = m;
            sigmaHat.Data[g] = s;
            for (int k = 0; k < size; k++) { int at = rows ? g * f + k : k * f + g; xhat.Data[at] = (x.Data[at] - m) / s; }
        }
        return (mean, sigmaHat, xhat);
    }
}
