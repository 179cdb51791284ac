using CsCheck;

namespace Backprop.Tests.Autodiff;

/// <summary>Algebraic laws of the tape and the ops, over random shapes and values.</summary>
public class AutodiffPropertyTests
{
    private static readonly Gen<(int m, int k, int n, int seed)> Dims =
        Gen.Select(Gen.Int[1, 9], Gen.Int[1, 9], Gen.Int[1, 9], Gen.Int[0, 100000]);

    private static Tensor<double> Rand(int seed, params int[] shape) => Tensor<double>.Random(new Random(seed), -2, 2, shape);

    [Fact]
    public void TransposedFormsEqualProductsWithMaterialisedTransposes()
    {
        Dims.Sample(d =>
        {
            var (m, k, n, seed) = d;
            var a = Rand(seed, m, k); var b = Rand(seed + 1, k, n);
            var at = Transpose(a); var bt = Transpose(b);
            var tape = new Tape<double>();
            var ab = Functional.MatMul(tape.Leaf(a), tape.Leaf(b)).Value;
            AssertClose(ab, Functional.MatMul(tape.Leaf(at), tape.Leaf(b), transA: true).Value);
            AssertClose(ab, Functional.MatMul(tape.Leaf(a), tape.Leaf(bt), transB: true).Value);
            AssertClose(ab, Functional.MatMul(tape.Leaf(at), tape.Leaf(bt), true, true).Value);
        });
    }

    [Fact]
    public void VectorJacobianProductIsLinearInTheSeed()
    {
        Dims.Sample(d =>
        {
            var (m, k, n, seed) = d;
            var tape = new Tape<double>();
            var x = tape.Leaf(Rand(seed, m, k));
            var w = tape.Leaf(Rand(seed + 1, n, k));
            var y = Functional.Tanh(Functional.Linear(x, w));
            var s1 = Rand(seed + 2, m, n); var s2 = Rand(seed + 3, m, n);
            tape.Backward(y, s1); var g1 = w.Grad.Clone();
            tape.Backward(y, s2); var g2 = w.Grad.Clone();
            var s12 = new Tensor<double>(m, n);
            for (int i = 0; i < s12.Length; i++) s12.Data[i] = 2 * s1.Data[i] - s2.Data[i];
            tape.Backward(y, s12);
            for (int i = 0; i < g1.Length; i++) Assert.Equal(2 * g1.Data[i] - g2.Data[i], w.Grad.Data[i], 1e-12);
        });
    }

    [Fact]
    public void JacobianRowKIsTheGradientOfOutputK()
    {
        Dims.Sample(d =>
        {
            var (m, k, n, seed) = d;
            var tape = new Tape<double>();
            var x = tape.Leaf(Rand(seed, m, k));
            var w = tape.Leaf(Rand(seed + 1, n, k));
            var b = tape.Leaf(Rand(seed + 2, n));
            var y = Functional.Sigmoid(Functional.Linear(x, w, b));
            var j = Jacobian.Compute(tape, y, b);
            Assert.Equal([m * n, n], j.ShapeArray);
            // row (r, c) of d y / d b: only column c is non-zero, and it is σ′(z) = y(1 − y)
            for (int r = 0; r < m; r++)
                for (int c = 0; c < n; c++)
                    for (int col = 0; col < n; col++)
                    {
                        double yv = y.Value[r * n + c];
                        double expected = col == c ? yv * (1 - yv) : 0;
                        Assert.Equal(expected, j[(r * n + c), col], 1e-14);
                    }
        }, iter: 30);
    }

    [Fact]
    public void SoftmaxRowsSumToOneAndLogSoftmaxIsItsLog()
    {
        Gen.Select(Gen.Int[1, 6], Gen.Int[1, 12], Gen.Int[0, 10000], Gen.Double[0.1, 200]).Sample((rows, cols, seed, scale) =>
        {
            var x = Tensor<double>.Random(new Random(seed), -scale, scale, rows, cols);
            var tape = new Tape<double>();
            var s = Functional.Softmax(tape.Leaf(x)).Value;
            var ls = Functional.LogSoftmax(tape.Leaf(x)).Value;
            for (int r = 0; r < rows; r++)
            {
                double sum = 0;
                for (int c = 0; c < cols; c++)
                {
                    sum += s[r, c];
                    Assert.True(double.IsFinite(ls[r, c]));
                    if (s[r, c] > 1e-300) Assert.Equal(Math.Log(s[r, c]), ls[r, c], 1e-9);
                }
                Assert.Equal(1.0, sum, 1e-12);
            }
        });
    }

    [Fact]
    public void CrossEntropyEqualsMeanNegativeLogSoftmaxAtTheTarget()
    {
        Gen.Select(Gen.Int[1, 6], Gen.Int[2, 9], Gen.Int[0, 10000]).Sample((rows, cols, seed) =>
        {
            var rng = new Random(seed);
            var x = Tensor<double>.Random(rng, -5, 5, rows, cols);
            var t = Enumerable.Range(0, rows).Select(_ => rng.Next(cols)).ToArray();
            var tape = new Tape<double>();
            double ce = Functional.CrossEntropy(tape.Leaf(x), t).Value[0];
            var ls = Functional.LogSoftmax(tape.Leaf(x)).Value;
            double expected = -Enumerable.Range(0, rows).Sum(r => ls[r, t[r]]) / rows;
            Assert.Equal(expected, ce, 1e-12);
        });
    }

    [Fact]
    public void ReplayingATapeReproducesAFreshRecording()
    {
        Dims.Sample(d =>
        {
            var (m, k, n, seed) = d;
            var w = Var<double>.Parameter(Rand(seed, n, k));
            var x1 = Rand(seed + 1, m, k); var x2 = Rand(seed + 2, m, k);
            var tape = new Tape<double>();
            var x = tape.Leaf(x1.Clone());
            var loss = Functional.Mean(Functional.Gelu(Functional.Linear(x, w)));
            x2.Data.CopyTo(x.Value.Data);
            tape.Forward();
            tape.Backward(loss);
            var replayed = w.Grad.Clone();
            double replayedLoss = loss.Value[0];

            var fresh = new Tape<double>();
            var fl = Functional.Mean(Functional.Gelu(Functional.Linear(fresh.Leaf(x2), w)));
            fresh.Backward(fl);
            Assert.Equal(fl.Value[0], replayedLoss, 1e-15);
            for (int i = 0; i < replayed.Length; i++) Assert.Equal(w.Grad.Data[i], replayed.Data[i], 1e-15);
        }, iter: 30);
    }

    [Fact]
    public void GradientsOfAValueUsedTwiceAccumulate()
    {
        var tape = new Tape<double>();
        var x = tape.Leaf(Tensor<double>.FromVector([1.5, -2.0]));
        var y = Functional.Sum(x * x + x * 3.0);   // dy/dx = 2x + 3
        tape.Backward(y);
        Assert.Equal([6.0, -1.0], x.Grad.Data);
        tape.Backward(y);                  // a second pass overwrites, it does not add to the first
        Assert.Equal([6.0, -1.0], x.Grad.Data);
    }

    [Fact]
    public void BackwardFromANonScalarNeedsASeed()
    {
        var tape = new Tape<double>();
        var y = Functional.Exp(tape.Leaf(Tensor<double>.Ones(2, 3)));
        var ex = Assert.Throws<ShapeMismatchException>(() => tape.Backward(y));
        Assert.Contains("[2×3]", ex.Message);
    }

    [Fact]
    public void ShapeErrorsNameTheShapes()
    {
        var tape = new Tape<double>();
        var ex = Assert.Throws<ShapeMismatchException>(() => Functional.MatMul(tape.Leaf(new Tensor<double>(2, 3)), tape.Leaf(new Tensor<double>(4, 5))));
        Assert.Contains("[2×3]", ex.Message);
        Assert.Contains("[4×5]", ex.Message);
        var ex2 = Assert.Throws<ShapeMismatchException>(() => tape.Leaf(new Tensor<double>(2, 3)) + tape.Leaf(new Tensor<double>(4)));
        Assert.Contains("[2×3]", ex2.Message);
        Assert.Contains("[4]", ex2.Message);
    }

    private static Tensor<double> Transpose(Tensor<double> a)
    {
        var t = new Tensor<double>(a.Dim(1), a.Dim(0));
        for (int i = 0; i < a.Dim(0); i++) for (int j = 0; j < a.Dim(1); j++) t[j, i] = a[i, j];
        return t;
    }

    private static void AssertClose(Tensor<double> e, Tensor<double> a)
    {
        Assert.Equal(e.ShapeArray, a.ShapeArray);
        for (int i = 0; i < e.Length; i++) Assert.Equal(e.Data[i], a.Data[i], 1e-12);
    }
}
