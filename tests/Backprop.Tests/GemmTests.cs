using System.Numerics;
using System.Runtime.Intrinsics.X86;
using Backprop.Kernels;

namespace Backprop.Tests;

/// <summary>Gemm.Multiply against a double-precision triple loop, on every hardware path, transpose form and edge shape.</summary>
public class GemmTests
{
    private static readonly int[] Grid = [1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 48, 63, 64, 65, 67];

    // Paths travel as names, which xunit shows in the test names.
    public static IEnumerable<object[]> PathsAndTypes() =>
        from p in new[] { nameof(GemmPath.Avx512), nameof(GemmPath.Avx2), nameof(GemmPath.Portable) }
        from f64 in new[] { false, true }
        select new object[] { p, f64 };

    private static GemmPath P(string name) => Enum.Parse<GemmPath>(name);

    private static bool Supported(GemmPath p) => p switch
    {
        GemmPath.Avx512 => Avx512F.IsSupported,
        GemmPath.Avx2 => Fma.IsSupported && Avx2.IsSupported,
        _ => true,
    };

    /// <summary>A context with a forced path and thread count; with several threads it splits even small products, to exercise the threaded edges.</summary>
    internal static ComputeContext Context(GemmPath path, int threads, KernelTuning? tuning = null) =>
        new(threads, threads > 1 ? (tuning ?? KernelTuning.Default) with { MinMacsPerThread = 1 } : tuning, path);

    /// <summary>Runs <paramref name="body"/> on a context with a forced path and thread count, then disposes it.</summary>
    private static void With(GemmPath path, int threads, Action<ComputeContext> body)
    {
        using var context = Context(path, threads);
        body(context);
    }

    /// <summary>Checks one product (fresh random A, B, C) against the double-precision loop.</summary>
    private static void Check<T>(ComputeContext context, Random rng, bool tA, bool tB, int m, int n, int k, bool acc)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var a = new double[m * k];
        var b = new double[k * n];
        var c0 = new double[m * n];
        for (int i = 0; i < a.Length; i++) a[i] = rng.NextDouble() * 2 - 1;
        for (int i = 0; i < b.Length; i++) b[i] = rng.NextDouble() * 2 - 1;
        for (int i = 0; i < c0.Length; i++) c0[i] = rng.NextDouble() * 2 - 1;
        // Round inputs to T so both sides see the same operands.
        var at = a.Select(T.CreateChecked).ToArray();
        var bt = b.Select(T.CreateChecked).ToArray();
        var ct = c0.Select(T.CreateChecked).ToArray();
        Gemm.Multiply<T>(context, tA, tB, m, n, k, at, bt, ct, acc);

        double eps = typeof(T) == typeof(float) ? 1e-6 : 1e-14;
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double s = 0, mag = 0;
                for (int p = 0; p < k; p++)
                {
                    double av = double.CreateChecked(at[tA ? p * m + i : i * k + p]);
                    double bv = double.CreateChecked(bt[tB ? j * k + p : p * n + j]);
                    s += av * bv;
                    mag += Math.Abs(av * bv);
                }
                double cPrev = double.CreateChecked(T.CreateChecked(c0[i * n + j]));
                double want = acc ? cPrev + s : s;
                double got = double.CreateChecked(ct[i * n + j]);
                double tol = eps * (4 * (mag + (acc ? Math.Abs(cPrev) : 0)) + 1e-3) * Math.Max(1, Math.Sqrt(k));
                if (!(Math.Abs(got - want) <= tol))
                    Assert.Fail($"{typeof(T).Name} tA={tA} tB={tB} {m}x{n}x{k} acc={acc} path={context.GemmPath} threads={context.Threads}: " +
                                $"C[{i},{j}] = {got}, want {want} (tol {tol})");
            }
        }
    }

    private static void GridRun<T>(GemmPath path, int threads, int seed) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var rng = new Random(seed);
        With(path, threads, context =>
        {
            foreach (int m in Grid)
                foreach (int n in Grid)
                {
                    // k cycles through the grid so every k value meets many (m, n); transposes and accumulate cycle too.
                    int idx = Array.IndexOf(Grid, m) * Grid.Length + Array.IndexOf(Grid, n);
                    int k = Grid[(idx * 7) % Grid.Length];
                    bool tA = (idx & 1) != 0, tB = (idx & 2) != 0, acc = (idx & 4) != 0;
                    Check<T>(context, rng, tA, tB, m, n, k, acc);
                }
        });
    }

    [Theory]
    [MemberData(nameof(PathsAndTypes))]
    public void EdgeShapeGrid_OneThread(string pathName, bool f64)
    {
        var path = P(pathName);
        if (!Supported(path)) return;
        if (f64) GridRun<double>(path, 1, 11); else GridRun<float>(path, 1, 12);
    }

    [Theory]
    [MemberData(nameof(PathsAndTypes))]
    public void EdgeShapeGrid_TwoThreads(string pathName, bool f64)
    {
        var path = P(pathName);
        if (!Supported(path)) return;
        if (f64) GridRun<double>(path, 2, 21); else GridRun<float>(path, 2, 22);
    }

    /// <summary>Every transpose form × accumulate on a few ragged shapes, per path, type and thread count.</summary>
    [Theory]
    [MemberData(nameof(PathsAndTypes))]
    public void AllTransposeFormsAndAccumulate(string pathName, bool f64)
    {
        var path = P(pathName);
        if (!Supported(path)) return;
        var rng = new Random(5);
        foreach (int threads in new[] { 1, 2 })
            With(path, threads, context =>
            {
                foreach (var (m, n, k) in new[] { (1, 1, 1), (1, 2, 2), (13, 37, 19), (33, 17, 65), (67, 65, 3) })
                    foreach (bool tA in new[] { false, true })
                        foreach (bool tB in new[] { false, true })
                            foreach (bool acc in new[] { false, true })
                            {
                                if (f64) Check<double>(context, rng, tA, tB, m, n, k, acc);
                                else Check<float>(context, rng, tA, tB, m, n, k, acc);
                            }
            });
    }

    /// <summary>Larger shapes that cross the kc, mc (and, with shrunken blocking, nc) cache blocks.</summary>
    [Theory]
    [MemberData(nameof(PathsAndTypes))]
    public void CrossesCacheBlocks(string pathName, bool f64)
    {
        var path = P(pathName);
        if (!Supported(path)) return;
        var rng = new Random(7);
        // Shrunken blocking: 200×300×129 spans several kc, mc and nc blocks.
        var shrunken = KernelTuning.Default with { Nc = 96, McBytes = 8 * 1024, KcBytes = 48 * 128 };
        foreach (int threads in new[] { 1, 2 })
        {
            using var small = Context(path, threads, shrunken);
            With(path, threads, context =>
            {
                for (int form = 0; form < 4; form++)
                {
                    bool tA = (form & 1) != 0, tB = (form & 2) != 0;
                    if (f64) Check<double>(small, rng, tA, tB, 200, 300, 129, form % 2 == 0);
                    else Check<float>(small, rng, tA, tB, 200, 300, 129, form % 2 == 0);
                    // Default blocking: k = 600 takes two or more depth blocks (kc = 512 fixed, 256 from a Zen 5's caches).
                    if (f64) Check<double>(context, rng, tA, tB, 70, 45, 600, form % 2 == 1);
                    else Check<float>(context, rng, tA, tB, 70, 45, 600, form % 2 == 1);
                }
            });
        }
    }

    [Theory]
    [MemberData(nameof(PathsAndTypes))]
    public void PrefetchingCChangesNoBit(string pathName, bool f64)
    {
        // A smoke test of the prefetching loop (a prefetch cannot change a value, so this fails only if the loop reads or
        // writes where it should hint): KernelTuning.PrefetchCBytes = 0 prefetches every tile's successor (past C's end
        // too, for the last one); the products must be the ones without prefetching, in every form, across several blocks.
        // When it is used is PrefetchStartsAboveTheThreshold's.
        var path = P(pathName);
        if (!Supported(path)) return;
        var shrunken = KernelTuning.Default with { Nc = 96, McBytes = 8 * 1024, KcBytes = 48 * 128 };
        using var always = new ComputeContext(1, shrunken with { PrefetchCBytes = 0 }, path);
        using var never = new ComputeContext(1, shrunken with { PrefetchCBytes = long.MaxValue }, path);
        if (f64) Same<double>(); else Same<float>();

        void Same<T>() where T : unmanaged, IFloatingPointIeee754<T>
        {
            var rng = new Random(11);
            int m = 75, n = 130, k = 129;
            var a = Enumerable.Range(0, m * k).Select(_ => T.CreateTruncating(rng.NextDouble() * 2 - 1)).ToArray();
            var b = Enumerable.Range(0, k * n).Select(_ => T.CreateTruncating(rng.NextDouble() * 2 - 1)).ToArray();
            var c0 = Enumerable.Range(0, m * n).Select(_ => T.CreateTruncating(rng.NextDouble())).ToArray();
            for (int form = 0; form < 8; form++)
            {
                bool tA = (form & 1) != 0, tB = (form & 2) != 0, acc = (form & 4) != 0;
                T[] x = (T[])c0.Clone(), y = (T[])c0.Clone();
                Gemm.Multiply<T>(always, tA, tB, m, n, k, a, b, x, acc);
                Gemm.Multiply<T>(never, tA, tB, m, n, k, a, b, y, acc);
                Assert.Equal(y, x);
                var r = (T[])c0.Clone();
                Gemm.Reference<T>(tA, tB, m, n, k, a, b, r, acc);
                for (int i = 0; i < r.Length; i++) Assert.True(T.Abs(r[i] - x[i]) <= T.CreateTruncating(1e-3), $"form {form}, element {i}");
            }
        }
    }

    [Fact]
    public void PrefetchStartsAboveTheThreshold()
    {
        // C is prefetched once a depth block's sweep of it (mc·nc values) is larger than PrefetchCBytes: 1024³ float32 on
        // a 1 MiB L2 (384 rows × 1024 × 4 bytes) yes, the 128×512 training products (256 KiB) no
        var l2 = KernelTuning.Fixed with { PrefetchCBytes = 1 << 20 };
        Assert.True(CacheBlockedGemm<float, PortableKernel<float>>.PrefetchesC(l2, 384, 1024));
        Assert.False(CacheBlockedGemm<float, PortableKernel<float>>.PrefetchesC(l2, 128, 512));
        Assert.False(CacheBlockedGemm<float, PortableKernel<float>>.PrefetchesC(l2, 256, 1024));   // exactly 1 MiB
        Assert.True(CacheBlockedGemm<double, PortableKernel<double>>.PrefetchesC(l2, 256, 1024));  // 2 MiB in float64
        Assert.True(CacheBlockedGemm<float, PortableKernel<float>>.PrefetchesC(KernelTuning.Fixed with { PrefetchCBytes = 0 }, 8, 32));
        Assert.False(CacheBlockedGemm<float, PortableKernel<float>>.PrefetchesC(KernelTuning.Fixed with { PrefetchCBytes = long.MaxValue }, 1 << 16, 1 << 16));
        // this CPU's tuning takes its L2's size, when the CPU reports one
        if (CpuCaches.ThisCpu is { L2Bytes: > 0 } caches) Assert.Equal(caches.L2Bytes, KernelTuning.Default.PrefetchCBytes);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void ZeroDepthClearsOrKeeps(bool acc)
    {
        var c = new float[] { 1, 2, 3, 4, 5, 6 };
        Gemm.Multiply<float>(ComputeContext.Default, false, false, 2, 3, 0, ReadOnlySpan<float>.Empty, ReadOnlySpan<float>.Empty, c, acc);
        Assert.Equal(acc ? new float[] { 1, 2, 3, 4, 5, 6 } : new float[6], c);
    }

    [Fact]
    public void LeadingDimensionsAddressSubMatrices()
    {
        // C[1..3, 1..4] (ldc 6) = A[0..2, 2..7] (lda 8) · B[1..6, 0..3] (ldb 5)
        var rng = new Random(3);
        var a = Enumerable.Range(0, 3 * 8).Select(_ => rng.NextDouble()).ToArray();
        var b = Enumerable.Range(0, 7 * 5).Select(_ => rng.NextDouble()).ToArray();
        var c = new double[4 * 6];
        Gemm.Multiply<double>(ComputeContext.Default, false, false, 3, 3, 5, a.AsSpan(2), 8, b.AsSpan(5), 5, c.AsSpan(7), 6, false);
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++)
            {
                double s = 0;
                for (int p = 0; p < 5; p++) s += a[i * 8 + 2 + p] * b[(1 + p) * 5 + j];
                Assert.Equal(s, c[(1 + i) * 6 + 1 + j], 12);
            }
        Assert.Equal(0, c[0]);
        Assert.Equal(0, c[6 + 4]);
    }

    [Fact]
    public void MatchesReferenceOnTrainingShapes()
    {
        var rng = new Random(9);
        foreach (int threads in new[] { 1, 2 })
            With(GemmPath.Auto, threads, context =>
            {
                Check<float>(context, rng, false, true, 128, 10, 512, false);  // Y = X·Wᵀ
                Check<float>(context, rng, true, false, 10, 64, 128, true);    // dW = dYᵀ·X
                Check<float>(context, rng, false, false, 128, 96, 10, false);  // dX = dY·W
            });
    }

    /// <summary>
    /// Zero skipping: operands with all-zero depth steps (blank image borders in A's columns, dead units in B's rows)
    /// and scattered zeros give the reference product on every path, both dtypes and 1 or 2 threads, with and
    /// without accumulate, whichever operand's list of non-zero steps is the shorter.
    /// </summary>
    [Theory]
    [MemberData(nameof(PathsAndTypes))]
    public void SparseOperandsMatchTheReference(string pathName, bool f64)
    {
        var path = P(pathName);
        if (!Supported(path)) return;
        foreach (int threads in new[] { 1, 2 })
            With(path, threads, context =>
            {
                var rng = new Random(17);
                foreach (var (m, n, k, tA, tB) in new[] { (37, 70, 90, false, true), (64, 100, 130, false, false), (50, 33, 64, true, false), (9, 40, 300, false, false) })
                {
                    // Zero whole depth steps of op(A) for some row groups and whole rows of op(B), plus scattered zeros.
                    double AValue(int i, int p) => p % 3 == 0 || (i < m / 2 && p % 5 == 1) || rng.Next(4) == 0 ? 0 : rng.NextDouble() * 2 - 1;
                    double BValue(int p, int j) => p % 7 == 2 || rng.Next(3) == 0 ? 0 : rng.NextDouble() * 2 - 1;
                    var a = new double[m * k];
                    var b = new double[k * n];
                    for (int i = 0; i < m; i++) for (int p = 0; p < k; p++) a[tA ? p * m + i : i * k + p] = AValue(i, p);
                    for (int p = 0; p < k; p++) for (int j = 0; j < n; j++) b[tB ? j * k + p : p * n + j] = BValue(p, j);
                    foreach (bool acc in new[] { false, true })
                    {
                        var want = Enumerable.Range(0, m * n).Select(_ => rng.NextDouble()).ToArray();
                        var got = want.ToArray();
                        Gemm.Reference<double>(tA, tB, m, n, k, a, b, want, acc);
                        if (f64)
                        {
                            Gemm.Multiply<double>(context, tA, tB, m, n, k, a, b, got, acc);
                            for (int i = 0; i < got.Length; i++) Assert.Equal(want[i], got[i], 1e-12 * k);
                        }
                        else
                        {
                            var gf = got.Select(v => (float)v).ToArray();
                            Gemm.Multiply<float>(context, tA, tB, m, n, k, a.Select(v => (float)v).ToArray(), b.Select(v => (float)v).ToArray(), gf, acc);
                            for (int i = 0; i < gf.Length; i++) Assert.Equal(want[i], gf[i], 2e-5 * Math.Sqrt(k));
                        }
                    }
                }
            });
    }

    /// <summary>A NaN or ∞ in a step that another operand does not zero out is never skipped.</summary>
    [Fact]
    public void NonFiniteValuesInNonZeroStepsPropagate()
    {
        With(GemmPath.Auto, 1, context =>
        {
            int m = 16, n = 64, k = 40;
            var a = new float[m * k];
            var b = Enumerable.Range(0, k * n).Select(i => 1f).ToArray();
            a[3 * k + 5] = float.NaN;   // row 3, depth 5: the only non-zero in its step
            a[10 * k + 7] = float.PositiveInfinity;
            var c = new float[m * n];
            Gemm.Multiply<float>(context, false, false, m, n, k, a, b, c, false);
            Assert.All(Enumerable.Range(0, n), j => Assert.True(float.IsNaN(c[3 * n + j])));
            Assert.All(Enumerable.Range(0, n), j => Assert.True(float.IsPositiveInfinity(c[10 * n + j])));
            Assert.Equal(0f, c[0]);
        });
    }

    /// <summary>
    /// Splitting C by rows instead of columns changes which thread computes an element, not how: the products are
    /// bit-identical, and own-chunk-first scheduling gives the same answer as any other order.
    /// </summary>
    [Theory]
    [InlineData(512, 784, 128)]
    [InlineData(37, 90, 33)]
    [InlineData(256, 40, 64)]
    public void RowSplitIsBitIdenticalToTheDefaultSplit(int m, int n, int k)
    {
        var rng = new Random(m + n + k);
        var a = Enumerable.Range(0, m * k).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var b = Enumerable.Range(0, k * n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        using var one = Context(GemmPath.Auto, 1);
        With(GemmPath.Auto, 2, context =>
        {
            foreach (bool tA in new[] { false, true })
            {
                var byRows = new float[m * n];
                var byDefault = new float[m * n];
                var serial = new float[m * n];
                Gemm.Multiply<float>(context, tA, false, m, n, k, a, b, byRows, false, rowSplit: true);
                Gemm.Multiply<float>(context, tA, false, m, n, k, a, b, byDefault, false);
                Gemm.Multiply<float>(one, tA, false, m, n, k, a, b, serial, false);
                Assert.Equal(serial, byRows);
                Assert.Equal(serial, byDefault);
            }
        });
    }

    /// <summary>
    /// Two threads multiplying at once (xunit runs test classes in parallel, and a program may too) each get their own
    /// product: a threaded job's description is per caller, so one caller cannot redirect the other's workers.
    /// </summary>
    [Fact]
    public void ConcurrentCallersGetTheirOwnProducts()
    {
        With(GemmPath.Auto, 2, context =>
        {
            void Caller(int seed)
            {
                var rng = new Random(seed);
                int m = 24 + seed, n = 64, k = 16;
                var a = Enumerable.Range(0, m * k).Select(_ => rng.NextDouble()).ToArray();
                var b = Enumerable.Range(0, k * n).Select(_ => rng.NextDouble()).ToArray();
                var want = new double[m * n];
                Gemm.Reference<double>(false, false, m, n, k, a, b, want, false);
                var c = new double[m * n];
                for (int r = 0; r < 20000; r++)
                {
                    Array.Clear(c);
                    Gemm.Multiply<double>(context, false, false, m, n, k, a, b, c, false);
                    for (int i = 0; i < c.Length; i++)
                        if (Math.Abs(c[i] - want[i]) > 1e-12 * k) Assert.Fail($"caller {seed}, round {r}: C[{i}] = {c[i]}, want {want[i]}");
                }
            }
            var t1 = Task.Run(() => Caller(1));
            var t2 = Task.Run(() => Caller(2));
            Task.WaitAll(t1, t2);
        });
    }

    /// <summary>After warm-up a call allocates nothing, on the caller or anywhere (workers included).</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void WarmCallAllocatesNothing(int threads)
    {
        var shapes = new[] { (96, 80, 100), (64, 128, 300), (32, 40, 200), (40, 10, 100), (1, 2, 2), (13, 17, 19) };
        var data = shapes.Select(s => (new float[s.Item1 * s.Item3], new float[s.Item3 * s.Item2], new float[s.Item1 * s.Item2],
            new double[s.Item1 * s.Item3], new double[s.Item3 * s.Item2], new double[s.Item1 * s.Item2])).ToArray();
        With(GemmPath.Auto, threads, context =>
        {
            void All()
            {
                for (int i = 0; i < shapes.Length; i++)
                {
                    var (m, n, k) = shapes[i];
                    var (af, bf, cf, ad, bd, cd) = data[i];
                    for (int form = 0; form < 4; form++)
                    {
                        Gemm.Multiply<float>(context, (form & 1) != 0, (form & 2) != 0, m, n, k, af, bf, cf, form == 3);
                        Gemm.Multiply<double>(context, (form & 1) != 0, (form & 2) != 0, m, n, k, ad, bd, cd, form == 2);
                    }
                }
            }
            for (int r = 0; r < 40; r++) All(); // past JIT tiering
            // Neither the caller nor the pool's worker threads may allocate. (A process-wide count would also
            // see other tests running in parallel and background JIT compiles.)
            Assert.Equal(0, Backprop.Tests.Performance.SteadyState.AllocatedBytes(All, context, 3));
        });
    }
}
