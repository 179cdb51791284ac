using System.Diagnostics;
using System.Numerics;

namespace Backprop.Kernels;

/// <summary>Measures <see cref="Gemm.Multiply{T}(ComputeContext, bool, bool, int, int, int, ReadOnlySpan{T}, ReadOnlySpan{T}, Span{T}, bool, bool, IGemmBlockFinish?)"/> throughput.</summary>
public static class GemmBenchmark
{
    /// <summary>
    /// GFLOPS (2·m·n·k per product) of C = op(A)·op(B) on random data: warms up, then returns the best of
    /// <paramref name="reps"/> timed repetitions, each looping enough products to last about <paramref name="repSeconds"/>.
    /// The products run on <paramref name="context"/> (null: <see cref="ComputeContext.Default"/>): its threads, kernels and tuning.
    /// </summary>
    /// <param name="m">Rows of C.</param>
    /// <param name="n">Columns of C.</param>
    /// <param name="k">The inner dimension.</param>
    /// <param name="float64">Time double precision (otherwise float).</param>
    /// <param name="transA">A is stored k×m (see <see cref="Gemm"/>).</param>
    /// <param name="transB">B is stored n×k (see <see cref="Gemm"/>).</param>
    /// <param name="reps">Timed repetitions (at least 1); the best is returned.</param>
    /// <param name="repSeconds">Approximate length of one repetition, in seconds.</param>
    /// <param name="context">The context the products run on (null: <see cref="ComputeContext.Default"/>).</param>
    /// <param name="packedB">B (stored n×k, so <paramref name="transB"/>) packed once into a <see cref="PackedMatrix{T}"/> before timing, as inference packs a weight.</param>
    /// <returns>The best repetition's throughput, in GFLOPS (10⁹ floating-point operations per second).</returns>
    /// <exception cref="ArgumentOutOfRangeException">A dimension or <paramref name="reps"/> is less than 1.</exception>
    /// <exception cref="ArgumentException"><paramref name="packedB"/> without <paramref name="transB"/>, or with <paramref name="transA"/>.</exception>
    public static double Run(int m, int n, int k, bool float64, bool transA = false, bool transB = false,
        int reps = 7, double repSeconds = 0.1, ComputeContext? context = null, bool packedB = false)
        => float64
            ? Run<double>(m, n, k, transA, transB, reps, repSeconds, context, packedB)
            : Run<float>(m, n, k, transA, transB, reps, repSeconds, context, packedB);

    /// <summary>
    /// As <see cref="Run(int, int, int, bool, bool, bool, int, double, ComputeContext?, bool)"/>, for element type
    /// <typeparamref name="T"/>: GFLOPS of the best of <paramref name="reps"/> timed repetitions.
    /// </summary>
    public static double Run<T>(int m, int n, int k, bool transA = false, bool transB = false,
        int reps = 7, double repSeconds = 0.1, ComputeContext? context = null, bool packedB = false) where T : unmanaged, IFloatingPointIeee754<T>
    {
        context ??= ComputeContext.Default;
        if (packedB && (transA || !transB)) throw new ArgumentException("a packed B is the stored n×k operand of A·Bᵀ: give transB and not transA");
        ArgumentOutOfRangeException.ThrowIfLessThan(m, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(reps, 1);
        foreach (var (name, rows, cols) in new[] { ("A", m, k), ("B", k, n), ("C", m, n) })
            if ((long)rows * cols > Array.MaxLength)
                throw new ArgumentException($"{name} would be {rows}×{cols} = {(long)rows * cols} values, more than one array holds ({Array.MaxLength})");
        var rng = new Random(1234);
        var a = new T[(long)m * k];
        var b = new T[(long)k * n];
        var c = new T[(long)m * n];
        for (int i = 0; i < a.Length; i++) a[i] = T.CreateChecked(rng.NextDouble() * 2 - 1);
        for (int i = 0; i < b.Length; i++) b[i] = T.CreateChecked(rng.NextDouble() * 2 - 1);
        double flops = 2.0 * m * n * k;
        var packed = packedB ? new PackedMatrix<T>(context, n, k, b) : null;
        // Warm-up: tiers the JIT up, grows packing buffers, starts the workers; also sizes the inner loop.
        long inner = 1;
        var sw = Stopwatch.StartNew();
        while (true)
        {
            sw.Restart();
            for (long r = 0; r < inner; r++) Multiply();
            double s = sw.Elapsed.TotalSeconds;
            if (s >= repSeconds / 2 || inner >= 1L << 30)
            {
                inner = Math.Max(1, (long)(inner * repSeconds / Math.Max(s, 1e-9)));
                break;
            }
            inner *= 4;
        }
        for (long r = 0; r < inner; r++) Multiply();

        double best = 0;
        for (int rep = 0; rep < reps; rep++)
        {
            long t0 = Stopwatch.GetTimestamp();
            for (long r = 0; r < inner; r++) Multiply();
            double s = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            best = Math.Max(best, flops * inner / s / 1e9);
        }
        return best;

        void Multiply()
        {
            if (packed is not null) packed.Multiply(context, m, a, c);
            else Gemm.Multiply<T>(context, transA, transB, m, n, k, a, b, c, false);
        }
    }
}
