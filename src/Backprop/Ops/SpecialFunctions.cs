using System.Numerics;

namespace Backprop.Ops;

/// <summary>Scalar functions that System.Math lacks, accurate to double rounding.</summary>
public static class SpecialFunctions
{
    private const double TwoOverSqrtPi = 1.1283791670955125739;
    private const double OneOverSqrtPi = 0.56418958354775628695;
    private const double InvSqrt2 = 0.70710678118654752440;
    private const double InvSqrt2Pi = 0.39894228040143267794;

    /// <summary>
    /// erf(x). For |x| ≤ 3 the series e^(−x²)·(2/√π)·Σ 2ⁿx^(2n+1)/(1·3·…·(2n+1)), whose terms are all
    /// positive (no cancellation); beyond, 1 − erfc(x) from erfc's continued fraction.
    /// </summary>
    public static double Erf(double x)
    {
        if (double.IsNaN(x)) return double.NaN;
        double ax = Math.Abs(x);
        if (ax > 3.0) return Math.Sign(x) * (1.0 - ErfcLarge(ax));
        return SeriesErf(x);
    }

    /// <summary>erfc(x) = 1 − erf(x), without cancellation for large positive x.</summary>
    public static double Erfc(double x)
    {
        if (double.IsNaN(x)) return double.NaN;
        if (x > 3.0) return ErfcLarge(x);
        if (x < -3.0) return 2.0 - ErfcLarge(-x);
        return 1.0 - SeriesErf(x);
    }

    private static double SeriesErf(double x)
    {
        double x2 = x * x;
        double term = x, sum = x;
        for (int n = 1; n < 200; n++)
        {
            term *= 2.0 * x2 / (2 * n + 1);
            sum += term;
            if (Math.Abs(term) <= 1e-17 * Math.Abs(sum)) break;
        }
        return TwoOverSqrtPi * Math.Exp(-x2) * sum;
    }

    // erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + …))))), evaluated by Lentz's method.
    private static double ErfcLarge(double x)
    {
        if (x > 27.3) return 0.0;
        const double tiny = 1e-300;
        double f = x, c = x, d = 0.0;
        for (int n = 1; n < 500; n++)
        {
            double a = n * 0.5;
            d = x + a * d; if (d == 0) d = tiny; d = 1.0 / d;
            c = x + a / c; if (c == 0) c = tiny;
            double delta = c * d;
            f *= delta;
            if (Math.Abs(delta - 1.0) < 1e-16) break;
        }
        return OneOverSqrtPi * Math.Exp(-x * x) / f;
    }

    /// <summary>Φ(x), the standard normal CDF: (1 + erf(x/√2))/2, via erfc in the lower tail.</summary>
    public static double NormalCdf(double x) => x < -3.0 ? 0.5 * Erfc(-x * InvSqrt2) : 0.5 * (1.0 + Erf(x * InvSqrt2));

    /// <summary>φ(x), the standard normal density.</summary>
    public static double NormalPdf(double x) => InvSqrt2Pi * Math.Exp(-0.5 * x * x);

    /// <summary>log(1 + x), accurate for small x.</summary>
    public static T Log1P<T>(T x) where T : IFloatingPointIeee754<T>
    {
        T u = T.One + x;
        if (u == T.One) return x;
        return T.Log(u) * x / (u - T.One);
    }

    /// <summary>e^x − 1, accurate for small x.</summary>
    public static T ExpM1<T>(T x) where T : IFloatingPointIeee754<T>
    {
        T u = T.Exp(x);
        if (u == T.One) return x;
        T um1 = u - T.One;
        if (um1 == -T.One) return -T.One;
        return um1 * x / T.Log(u);
    }
}
