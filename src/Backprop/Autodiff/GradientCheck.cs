using System.Numerics;
using Backprop.Core;

namespace Backprop.Autodiff;

/// <summary>The comparison of analytic and numerical gradients for one tensor.</summary>
/// <param name="Name">The checked tensor's name.</param>
/// <param name="Shape">Its shape.</param>
/// <param name="MaxAbsError">The largest |analytic − numeric| over its elements.</param>
/// <param name="MaxRelError">The largest |analytic − numeric| / |numeric| over the elements whose numeric gradient exceeds the absolute tolerance (0 if none does).</param>
/// <param name="WorstIndex">The multi-index of the element that came closest to failing (or failed worst).</param>
/// <param name="WorstAnalytic">The analytic gradient at <paramref name="WorstIndex"/>.</param>
/// <param name="WorstNumeric">The central-difference gradient at <paramref name="WorstIndex"/>.</param>
/// <param name="Passed">Whether every element passed.</param>
public sealed record GradientCheckEntry(
    string Name,
    int[] Shape,
    double MaxAbsError,
    double MaxRelError,
    int[] WorstIndex,
    double WorstAnalytic,
    double WorstNumeric,
    bool Passed);

/// <summary>The outcome of a gradient check: one entry per checked tensor and the settings that judged them.</summary>
/// <param name="DType">The precision whose analytic gradients were checked: "float32" or "float64".</param>
/// <param name="Step">The relative finite-difference step ε^(1/3) of the evaluating precision (h = step·max(1, |x|)).</param>
/// <param name="AbsTolerance">The absolute tolerance: an element passes when |analytic − numeric| ≤ AbsTolerance + RelTolerance·|numeric|.</param>
/// <param name="RelTolerance">The relative tolerance of that test.</param>
/// <param name="Entries">One comparison per checked tensor, in the order they were given.</param>
public sealed record GradientCheckReport(string DType, double Step, double AbsTolerance, double RelTolerance, IReadOnlyList<GradientCheckEntry> Entries)
{
    /// <summary>Whether every element of every checked tensor passed.</summary>
    public bool Passed => Entries.All(e => e.Passed);
}

/// <summary>
/// Central finite differences, (f(x + h) − f(x − h)) / 2h, evaluated in float64. The step h = ε^(1/3)·max(1, |x|)
/// balances truncation error (∝ h²) against rounding error (∝ ε/h) for the evaluating dtype's machine epsilon ε;
/// the tolerances follow the dtype whose analytic gradients are checked.
/// </summary>
public static class GradientCheck
{
    /// <summary>The machine epsilon of <typeparamref name="T"/>: 2⁻²³ for float, 2⁻⁵² for double.</summary>
    public static double MachineEpsilon<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
        typeof(T) == typeof(float) ? 1.1920929e-7 : 2.220446049250313e-16;

    /// <summary>The relative central-difference step ε^(1/3) for <typeparamref name="T"/>, ≈ 4.9e-3 for float and 6.1e-6 for double.</summary>
    public static double StepFor<T>() where T : unmanaged, IFloatingPointIeee754<T> => Math.Cbrt(MachineEpsilon<T>());

    /// <summary>Tolerances that the dtype's rounding and the step's truncation error stay well inside.</summary>
    public static (double abs, double rel) TolerancesFor<T>() where T : unmanaged, IFloatingPointIeee754<T> =>
        typeof(T) == typeof(float) ? (1e-4, 1e-3) : (1e-7, 1e-5);

    /// <summary>
    /// Checks the gradients of the scalar <paramref name="objective"/> (read after each <c>tape.Forward()</c>)
    /// with respect to each named leaf. <paramref name="backward"/> must run the analytic backward pass.
    /// </summary>
    public static GradientCheckReport Run<T>(
        Tape<T> tape,
        Func<double> objective,
        Action backward,
        IReadOnlyList<(string Name, Var<T> Leaf)> leaves,
        double? absTolerance = null,
        double? relTolerance = null) where T : unmanaged, IFloatingPointIeee754<T>
    {
        tape.Forward();
        backward();
        var analytic = leaves.Select(l => l.Leaf.Grad.ToDoubleArray()).ToList();
        var (defAbs, defRel) = TolerancesFor<T>();
        return Compare(tape, objective, leaves, analytic, typeof(T) == typeof(float) ? "float32" : "float64",
            absTolerance ?? defAbs, relTolerance ?? defRel);
    }

    /// <summary>
    /// Compares given analytic gradients (computed in any precision, named by <paramref name="dtype"/>) with central
    /// differences of <paramref name="objective"/> on <paramref name="tape"/>, whose precision sets the step.
    /// A float32 network is checked against a float64 copy of itself: float32 differences would need a step so
    /// large that it straddles the kinks of relu-like activations. The values checked may be leaves or recorded
    /// values (a layer's output): a recorded value is perturbed in place and only what follows it is recomputed.
    /// </summary>
    public static GradientCheckReport Compare<TN>(
        Tape<TN> tape,
        Func<double> objective,
        IReadOnlyList<(string Name, Var<TN> Leaf)> leaves,
        IReadOnlyList<double[]> analytic,
        string dtype,
        double atol,
        double rtol,
        int? maxElements = null) where TN : unmanaged, IFloatingPointIeee754<TN>
    {
        double step = StepFor<TN>();
        var entries = new List<GradientCheckEntry>();
        for (int li = 0; li < leaves.Count; li++)
        {
            var (name, leaf) = leaves[li];
            var data = leaf.Value.Data;
            double maxAbs = 0, maxRel = 0, worstScore = -1, worstA = 0, worstN = 0;
            int worst = 0;
            bool passed = true;
            // a large value is checked on an even sample of its elements: each element costs two forward passes
            int count = maxElements is int m && m > 0 && m < data.Length ? m : data.Length;
            for (int k = 0; k < count; k++)
            {
                int i = count == data.Length ? k : (int)((long)k * data.Length / count + (long)k * 7919 % Math.Max(1, data.Length / count));
                TN saved = data[i];
                double x = double.CreateTruncating(saved);
                double h = step * Math.Max(1.0, Math.Abs(x));
                TN plus = TN.CreateTruncating(x + h), minus = TN.CreateTruncating(x - h);
                // a leaf: replay everything; a recorded value: replay only what follows it, keeping the perturbation
                data[i] = plus; tape.ForwardAfter(leaf); double fp = objective();
                data[i] = minus; tape.ForwardAfter(leaf); double fm = objective();
                data[i] = saved;
                // the step actually taken, after rounding x ± h to the dtype
                double numeric = (fp - fm) / (double.CreateTruncating(plus) - double.CreateTruncating(minus));
                double a = analytic[li][i];
                double abs = Math.Abs(a - numeric);
                double rel = abs / Math.Max(Math.Abs(numeric), 1e-12);
                bool ok = abs <= atol + rtol * Math.Abs(numeric);
                passed &= ok;
                maxAbs = Math.Max(maxAbs, abs);
                if (Math.Abs(numeric) > atol) maxRel = Math.Max(maxRel, rel);
                double score = abs / (atol + rtol * Math.Abs(numeric));
                if (double.IsNaN(score)) { score = double.PositiveInfinity; passed = false; }
                if (score > worstScore) { worstScore = score; worst = i; worstA = a; worstN = numeric; }
            }
            tape.ForwardAfter(leaf); // values after this one were last computed with its final element shifted
            entries.Add(new GradientCheckEntry(name, leaf.Value.ShapeArray, maxAbs, maxRel,
                Unravel(worst, leaf.Value.ShapeArray), worstA, worstN, passed));
        }
        tape.Forward();
        return new GradientCheckReport(dtype, step, atol, rtol, entries);
    }

    /// <summary>Checks every leaf of a scalar-valued graph built by <paramref name="build"/> from the given inputs.</summary>
    public static GradientCheckReport Check<T>(Func<Var<T>[], Var<T>> build, params Tensor<T>[] inputs)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var tape = new Tape<T>();
        var leaves = inputs.Select((t, i) => tape.Leaf(t.Clone(), true, $"x{i}")).ToArray();
        var y = build(leaves);
        Func<double> objective;
        Action backward;
        if (y.Value.Length == 1)
        {
            objective = () => double.CreateTruncating(y.Value.Data[0]);
            backward = () => tape.Backward(y);
        }
        else
        {
            // a fixed random projection turns a tensor output into a scalar: checks the full vector-Jacobian product
            var rng = new Random(1234);
            var seed = Tensor<T>.Random(rng, -1, 1, y.Value.ShapeArray);
            objective = () =>
            {
                double s = 0;
                for (int i = 0; i < seed.Length; i++) s += double.CreateTruncating(seed.Data[i]) * double.CreateTruncating(y.Value.Data[i]);
                return s;
            };
            backward = () => tape.Backward(y, seed);
        }
        return Run(tape, objective, backward, leaves.Select(l => (l.Name!, l)).ToList());
    }

    /// <summary>The multi-index of flat row-major index <paramref name="flat"/> in a tensor of <paramref name="shape"/> (as NumPy's unravel_index).</summary>
    public static int[] Unravel(int flat, int[] shape)
    {
        var idx = new int[shape.Length];
        for (int d = shape.Length - 1; d >= 0; d--)
        {
            int n = Math.Max(1, shape[d]);
            idx[d] = flat % n;
            flat /= n;
        }
        return idx;
    }
}
