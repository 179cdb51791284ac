using System.Numerics;
using Backprop.Kernels;

namespace Backprop.Tests.Kernels;

/// <summary>
/// Every vector width of the fused optimizer passes gives the scalar loop's bits (the same operations in the same
/// order, no FMA contraction), over lengths that leave every kind of tail, and flags a non-finite gradient alike.
/// </summary>
public class OptimizerKernelTests
{
    public static IEnumerable<object[]> Cases() =>
        from w in new[] { nameof(UpdateWidth.Vector512), nameof(UpdateWidth.Vector), nameof(UpdateWidth.Auto) }
        from f64 in new[] { false, true }
        select new object[] { w, f64 };

    private static readonly int[] Lengths = [1, 7, 8, 15, 16, 17, 31, 40, 1000, 4099];

    [Theory]
    [MemberData(nameof(Cases))]
    public void AdamMatchesTheScalarPassBitForBit(string widthName, bool float64)
    {
        var width = Enum.Parse<UpdateWidth>(widthName);
        // every width runs, accelerated or not (Vector512 falls back to per-element IEEE operations): the same bits
        if (float64) Adam<double>(width); else Adam<float>(width);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void SgdMatchesTheScalarPassBitForBit(string widthName, bool float64)
    {
        var width = Enum.Parse<UpdateWidth>(widthName);
        if (float64) Sgd<double>(width); else Sgd<float>(width);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void RmsPropMatchesTheScalarPassBitForBit(string widthName, bool float64)
    {
        var width = Enum.Parse<UpdateWidth>(widthName);
        if (float64) RmsProp<double>(width); else RmsProp<float>(width);
    }

    [Fact]
    public void SpansOfAnotherLengthAreRefused()
    {
        float[] p = new float[8], shorter = new float[7], ok = new float[8];
        Assert.Throws<ArgumentException>(() => OptimizerKernels.Adam<float>(p, shorter, ok, ok, 1e-3f, 0.9f, 0.999f, 1e-8f, 1, 1, 0, 0));
        Assert.Throws<ArgumentException>(() => OptimizerKernels.Adam<float>(p, ok, ok, shorter, 1e-3f, 0.9f, 0.999f, 1e-8f, 1, 1, 0, 0));
        Assert.Throws<ArgumentException>(() => OptimizerKernels.Sgd<float>(p, ok, shorter, 0.1f, 0.9f, 0, false, true));
        Assert.Throws<ArgumentException>(() => OptimizerKernels.RmsProp<float>(p, shorter, ok, 0.1f, 0.99f, 1e-8f, 0));
        Assert.True(OptimizerKernels.Sgd<float>(p, ok, ok, 0.1f, 0.9f, 0, false, true));
    }

    private static T[] Random<T>(Random rng, int n, double scale, bool positive = false) where T : IFloatingPointIeee754<T> =>
        Enumerable.Range(0, n).Select(_ => T.CreateChecked(positive ? rng.NextDouble() * scale : (rng.NextDouble() * 2 - 1) * scale)).ToArray();

    private static void AssertSameBits<T>(T[] expected, T[] actual, string what) where T : IFloatingPointIeee754<T>
    {
        for (int i = 0; i < expected.Length; i++)
            Assert.True(expected[i].Equals(actual[i]) && T.IsNegative(expected[i]) == T.IsNegative(actual[i]),
                $"{what}[{i}] of {expected.Length}: {actual[i]} where the scalar pass gives {expected[i]}");
    }

    /// <summary>Runs <paramref name="update"/> at the width and at Scalar on copies of the same state, several steps
    /// (so that the state feeds back), then once with an infinite gradient at each position class.</summary>
    private static void Check<T>(UpdateWidth width, int states, Func<UpdateWidth, T[], T[], T[][], bool> update, int seed)
        where T : IFloatingPointIeee754<T>
    {
        var rng = new Random(seed);
        foreach (int n in Lengths)
        {
            var p = Random<T>(rng, n, 1);
            var st = Enumerable.Range(0, states).Select(_ => Random<T>(rng, n, 0.01, positive: true)).ToArray();
            var (p2, st2) = ((T[])p.Clone(), st.Select(s => (T[])s.Clone()).ToArray());
            for (int step = 0; step < 3; step++)
            {
                var g = Random<T>(rng, n, 0.1);
                Assert.True(update(UpdateWidth.Scalar, p, g, st));
                Assert.True(update(width, p2, g, st2));
            }
            AssertSameBits(p, p2, "parameter");
            for (int s = 0; s < states; s++) AssertSameBits(st[s], st2[s], $"state {s}");
            foreach (int bad in new[] { 0, n / 2, n - 1 })
            {
                var g = Random<T>(rng, n, 0.1);
                g[bad] = bad % 2 == 0 ? T.PositiveInfinity : T.NaN;
                Assert.False(update(width, (T[])p.Clone(), g, st.Select(x => (T[])x.Clone()).ToArray()), $"a non-finite gradient at {bad} of {n}");
            }
        }
    }

    private static void Adam<T>(UpdateWidth width) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T c(double x) => T.CreateChecked(x);
        foreach (var (l2, decoupled) in new[] { (0.0, 0.0), (0.01, 0.0), (0.0, 0.01) })
            Check<T>(width, 2, (w, p, g, s) => OptimizerKernels.Adam(w, p, g, s[0], s[1], c(1e-3), c(0.9), c(0.999), c(1e-8),
                c(1 - 0.9 * 0.9), c(1 - 0.999 * 0.999), c(l2), c(decoupled)), seed: 1);
    }

    private static void Sgd<T>(UpdateWidth width) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T c(double x) => T.CreateChecked(x);
        foreach (var (nesterov, firstStep) in new[] { (false, false), (true, false), (false, true) })
            Check<T>(width, 1, (w, p, g, s) => OptimizerKernels.Sgd(w, p, g, s[0], c(0.01), c(0.9), c(1e-4), nesterov, firstStep), seed: 2);
    }

    private static void RmsProp<T>(UpdateWidth width) where T : unmanaged, IFloatingPointIeee754<T>
    {
        T c(double x) => T.CreateChecked(x);
        Check<T>(width, 1, (w, p, g, s) => OptimizerKernels.RmsProp(w, p, g, s[0], c(1e-3), c(0.99), c(1e-8), c(1e-4)), seed: 3);
    }
}
