using Backprop.Core;

namespace Backprop.Explain;

/// <summary>
/// Small float64 matrix arithmetic for derivations. Explain recomputes every step by the rule it prints, in
/// float64 and independently of the ops' kernels, so that agreement with the tape is evidence, not tautology.
/// </summary>
internal static class Float64Math
{
    public static Tensor<double> ToDouble<T>(Tensor<T> t) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T> =>
        new(t.ToDoubleArray(), t.ShapeArray);

    public static Tensor<double> Matrix(Tensor<double> t) => t.Rank == 2 ? t : t.Reshape(t.Rows, t.Cols);

    public static Tensor<double> MatMul(Tensor<double> a, Tensor<double> b)
    {
        int n = a.Dim(0), k = a.Dim(1), m = b.Dim(1);
        if (b.Dim(0) != k) throw new ShapeMismatchException($"explain: {a.ShapeString}·{b.ShapeString}: inner dimensions differ");
        var c = new Tensor<double>(n, m);
        for (int i = 0; i < n; i++)
            for (int p = 0; p < k; p++)
            {
                double av = a.Data[i * k + p];
                for (int j = 0; j < m; j++) c.Data[i * m + j] += av * b.Data[p * m + j];
            }
        return c;
    }

    public static Tensor<double> Transpose(Tensor<double> a)
    {
        a = Matrix(a);
        int r = a.Dim(0), c = a.Dim(1);
        var t = new Tensor<double>(c, r);
        for (int i = 0; i < r; i++)
            for (int j = 0; j < c; j++) t.Data[j * r + i] = a.Data[i * c + j];
        return t;
    }

    public static Tensor<double> Hadamard(Tensor<double> a, Tensor<double> b)
    {
        var c = new Tensor<double>(a.ShapeArray);
        for (int i = 0; i < c.Length; i++) c.Data[i] = a.Data[i] * b.Data[i];
        return c;
    }

    public static Tensor<double> ColumnSums(Tensor<double> a)
    {
        int r = a.Rows, c = a.Cols;
        var s = new Tensor<double>(c);
        for (int i = 0; i < r; i++)
            for (int j = 0; j < c; j++) s.Data[j] += a.Data[i * c + j];
        return s;
    }

    public static Tensor<double> Diag(Tensor<double> v)
    {
        int n = v.Length;
        var d = new Tensor<double>(n, n);
        for (int i = 0; i < n; i++) d.Data[i * n + i] = v.Data[i];
        return d;
    }


    /// <summary>The softmax Jacobian-vector product s ⊙ (g − Σ_row(g ⊙ s)), row by row.</summary>
    public static Tensor<double> SoftmaxJvp(Tensor<double> s, Tensor<double> g)
    {
        int r = s.Rows, c = s.Cols;
        var o = new Tensor<double>(s.ShapeArray);
        for (int i = 0; i < r; i++)
        {
            double dot = 0;
            for (int j = 0; j < c; j++) dot += g.Data[i * c + j] * s.Data[i * c + j];
            for (int j = 0; j < c; j++) o.Data[i * c + j] = s.Data[i * c + j] * (g.Data[i * c + j] - dot);
        }
        return o;
    }

    public static double MaxAbs(Tensor<double> a)
    {
        double m = 0;
        foreach (var v in a.Data) m = Math.Max(m, Math.Abs(v));
        return m;
    }

    /// <summary>
    /// max |a − b| / max(max |b|, <paramref name="floor"/>): a deviation relative to the reference's scale, or to
    /// <paramref name="floor"/> where the reference is smaller (a sum that cancels to rounding noise); with no scale at
    /// all, the absolute difference.
    /// </summary>
    public static double RelativeDeviation(Tensor<double> a, Tensor<double> reference, double floor = 0)
    {
        double maxDiff = 0, scale = 0;
        for (int i = 0; i < a.Length; i++)
        {
            maxDiff = Math.Max(maxDiff, Math.Abs(a.Data[i] - reference.Data[i]));
            scale = Math.Max(scale, Math.Abs(reference.Data[i]));
        }
        scale = Math.Max(scale, floor);
        return scale == 0 ? maxDiff : maxDiff / scale;
    }

    public static string Sub(int n)
    {
        const string digits = "₀₁₂₃₄₅₆₇₈₉";
        return string.Concat(n.ToString(System.Globalization.CultureInfo.InvariantCulture).Select(ch => ch == '-' ? '₋' : digits[ch - '0']));
    }
}
