using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Backprop.Kernels;

/// <summary>The vector width a peak measurement runs at.</summary>
public enum PeakWidth
{
    /// <summary>The widest this CPU accelerates: Vector512, else Vector256, else Vector&lt;T&gt;.</summary>
    Auto,
    /// <summary><see cref="Vector512{T}"/> FMAs: needs a CPU that accelerates 512-bit vectors (AVX-512).</summary>
    Vector512,
    /// <summary><see cref="Vector256{T}"/> FMAs: needs a CPU that accelerates 256-bit vectors (AVX2).</summary>
    Vector256,
    /// <summary>Vector&lt;T&gt; with MultiplyAddEstimate: any hardware (a multiply and an add where there is no FMA).</summary>
    Portable,
}

/// <summary>One peak measurement: GFLOPS over all threads, and how it was taken.</summary>
/// <param name="Gflops">10⁹ floating-point operations per second, all threads together (an FMA counts 2 per lane).</param>
/// <param name="Threads">Threads that ran the loop at once.</param>
/// <param name="Width">The vector width measured (never <see cref="PeakWidth.Auto"/>).</param>
/// <param name="Lanes">Elements in one vector of that width.</param>
/// <param name="Float64">Whether the elements were doubles (otherwise floats).</param>
public sealed record PeakResult(double Gflops, int Threads, PeakWidth Width, int Lanes, bool Float64)
{
    /// <summary><see cref="Gflops"/> divided by <see cref="Threads"/>: the peak of one core when each thread has its own.</summary>
    public double GflopsPerThread => Gflops / Threads;
}

/// <summary>
/// This core's floating-point peak, measured: a loop of independent fused multiply-adds on registers only (no loads or
/// stores), the ceiling against which the GEMM and the training step are stated as a fraction. It knows nothing of
/// what the products mean.
/// </summary>
/// <remarks>
/// <see cref="Accumulators"/> independent chains hide the FMA latency (4 cycles on Zen 4/5 and recent Intel, 2 FMA
/// ports: at least 8 chains in flight are needed; 12 leaves room and still fits in 16 registers with the two
/// constants). Each chain computes acc ← acc·m + a with m = 1 − 2⁻¹⁰ and a = 2⁻¹⁰, which converges to 1 and never
/// reaches denormals or infinities (which would slow some cores down).
/// </remarks>
public static class PeakFlops
{
    /// <summary>Independent accumulator chains of the loop.</summary>
    public const int Accumulators = 12;

    /// <summary>The width <see cref="PeakWidth.Auto"/> resolves to on this CPU.</summary>
    public static PeakWidth BestWidth =>
        Vector512.IsHardwareAccelerated ? PeakWidth.Vector512 :
        Vector256.IsHardwareAccelerated ? PeakWidth.Vector256 : PeakWidth.Portable;

    /// <summary>Whether this CPU accelerates a width (<see cref="PeakWidth.Portable"/> always runs).</summary>
    public static bool IsSupported(PeakWidth width) => width switch
    {
        PeakWidth.Vector512 => Vector512.IsHardwareAccelerated,
        PeakWidth.Vector256 => Vector256.IsHardwareAccelerated,
        _ => true,
    };

    /// <summary>Lanes of T in a vector of the width.</summary>
    public static int Lanes<T>(PeakWidth width) where T : unmanaged, IFloatingPointIeee754<T> => Resolve(width) switch
    {
        PeakWidth.Vector512 => Vector512<T>.Count,
        PeakWidth.Vector256 => Vector256<T>.Count,
        _ => Vector<T>.Count,
    };

    private static PeakWidth Resolve(PeakWidth width) => width == PeakWidth.Auto ? BestWidth : width;

    /// <summary>
    /// Measures GFLOPS (2 per lane per FMA) with <paramref name="threads"/> threads, each running its own loop:
    /// the best of <paramref name="reps"/> repetitions of about <paramref name="repSeconds"/> each, after a warm-up.
    /// </summary>
    /// <remarks>
    /// The defaults are many short repetitions: on a shared machine the best of them is the one least disturbed
    /// (on the 2-core VM at load 17–23, 5 × 50 ms gave 105 GFLOPS where 25 × 20 ms gave 222–226, the quiet figure).
    /// </remarks>
    public static PeakResult Measure(bool float64, int threads = 1, PeakWidth width = PeakWidth.Auto, int reps = 25, double repSeconds = 0.02)
        => float64 ? Measure<double>(threads, width, reps, repSeconds) : Measure<float>(threads, width, reps, repSeconds);

    /// <summary>
    /// As <see cref="Measure(bool, int, PeakWidth, int, double)"/>, for element type <typeparamref name="T"/>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="threads"/> or <paramref name="reps"/> is less than 1.</exception>
    /// <exception cref="PlatformNotSupportedException">This CPU does not accelerate <paramref name="width"/>.</exception>
    public static PeakResult Measure<T>(int threads = 1, PeakWidth width = PeakWidth.Auto, int reps = 25, double repSeconds = 0.02)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(reps, 1);
        width = Resolve(width);
        if (!IsSupported(width)) throw new PlatformNotSupportedException($"this CPU does not accelerate {width}");
        int lanes = Lanes<T>(width);
        // Warm-up: tiers the JIT up; sizes the loop to about repSeconds on one thread.
        long iterations = 1 << 12;
        while (true)
        {
            long t0 = Stopwatch.GetTimestamp();
            Run<T>(width, iterations);
            double s = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            if (s >= repSeconds / 4 || iterations >= 1L << 40)
            {
                iterations = Math.Max(1, (long)(iterations * repSeconds / Math.Max(s, 1e-9)));
                break;
            }
            iterations *= 4;
        }
        double flops = 2.0 * Accumulators * lanes * iterations * threads;
        double best = 0;
        for (int r = 0; r < reps; r++)
        {
            double seconds = threads == 1 ? TimeOne<T>(width, iterations) : TimeThreads<T>(width, iterations, threads);
            best = Math.Max(best, flops / seconds / 1e9);
        }
        return new PeakResult(best, threads, width, lanes, typeof(T) == typeof(double));
    }

    private static double TimeOne<T>(PeakWidth width, long iterations) where T : unmanaged, IFloatingPointIeee754<T>
    {
        long t0 = Stopwatch.GetTimestamp();
        Run<T>(width, iterations);
        return Stopwatch.GetElapsedTime(t0).TotalSeconds;
    }

    /// <summary>
    /// Wall time for every thread to run its own loop, started together behind a barrier: from the first loop's start
    /// to the last one's end, each timed by its own thread. (Timed by the calling thread instead, the clock started
    /// only once that thread got a core back, after the loops had begun: with a thread per core and the caller a
    /// thread more, 2 threads measured up to 616 GFLOPS on a 2-core machine whose cores peak at 233 each.)
    /// </summary>
    private static double TimeThreads<T>(PeakWidth width, long iterations, int threads) where T : unmanaged, IFloatingPointIeee754<T>
    {
        using var barrier = new Barrier(threads);
        var workers = new Thread[threads];
        var starts = new long[threads];
        var ends = new long[threads];
        for (int i = 0; i < threads; i++)
        {
            int t = i;
            workers[i] = new Thread(() =>
            {
                barrier.SignalAndWait();
                starts[t] = Stopwatch.GetTimestamp();
                Run<T>(width, iterations);
                ends[t] = Stopwatch.GetTimestamp();
            }) { IsBackground = true };
            workers[i].Start();
        }
        foreach (var w in workers) w.Join();
        return (double)(ends.Max() - starts.Min()) / Stopwatch.Frequency;
    }

    /// <summary>
    /// Runs the loop: <paramref name="iterations"/> steps of acc ← acc·m + a on <see cref="Accumulators"/> vectors,
    /// every lane starting at 0. Returns the sum of all lanes of all accumulators (so the loop is not optimised away,
    /// and so a test can check the arithmetic against a scalar reference).
    /// </summary>
    public static T Run<T>(PeakWidth width, long iterations) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentOutOfRangeException.ThrowIfNegative(iterations);
        return Resolve(width) switch
        {
            PeakWidth.Vector512 => Loop512<T>(iterations),
            PeakWidth.Vector256 => Loop256<T>(iterations),
            _ => LoopPortable<T>(iterations),
        };
    }

    /// <summary>The scalar value one lane reaches after <paramref name="iterations"/> steps (with a fused multiply-add).</summary>
    public static double Reference(long iterations, bool float64)
    {
        double m = 1 - 1.0 / 1024, a = 1.0 / 1024, acc = 0;
        float accF = 0;
        for (long i = 0; i < iterations; i++)
        {
            if (float64) acc = Math.FusedMultiplyAdd(acc, m, a);
            else accF = MathF.FusedMultiplyAdd(accF, (float)m, (float)a);
        }
        return float64 ? acc : accF;
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static T Loop512<T>(long iterations) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var m = Vector512.Create(T.One - T.One / T.CreateTruncating(1024));
        var a = Vector512.Create(T.One / T.CreateTruncating(1024));
        Vector512<T> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default,
            c6 = default, c7 = default, c8 = default, c9 = default, c10 = default, c11 = default;
        for (long i = 0; i < iterations; i++)
        {
            c0 = Fma(c0, m, a); c1 = Fma(c1, m, a); c2 = Fma(c2, m, a); c3 = Fma(c3, m, a);
            c4 = Fma(c4, m, a); c5 = Fma(c5, m, a); c6 = Fma(c6, m, a); c7 = Fma(c7, m, a);
            c8 = Fma(c8, m, a); c9 = Fma(c9, m, a); c10 = Fma(c10, m, a); c11 = Fma(c11, m, a);
        }
        return Vector512.Sum(((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7)) + ((c8 + c9) + (c10 + c11)));

        static Vector512<T> Fma(Vector512<T> x, Vector512<T> y, Vector512<T> z) =>
            typeof(T) == typeof(float) ? Vector512.FusedMultiplyAdd(x.AsSingle(), y.AsSingle(), z.AsSingle()).As<float, T>()
            : Vector512.FusedMultiplyAdd(x.AsDouble(), y.AsDouble(), z.AsDouble()).As<double, T>();
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static T Loop256<T>(long iterations) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var m = Vector256.Create(T.One - T.One / T.CreateTruncating(1024));
        var a = Vector256.Create(T.One / T.CreateTruncating(1024));
        Vector256<T> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default,
            c6 = default, c7 = default, c8 = default, c9 = default, c10 = default, c11 = default;
        for (long i = 0; i < iterations; i++)
        {
            c0 = Fma(c0, m, a); c1 = Fma(c1, m, a); c2 = Fma(c2, m, a); c3 = Fma(c3, m, a);
            c4 = Fma(c4, m, a); c5 = Fma(c5, m, a); c6 = Fma(c6, m, a); c7 = Fma(c7, m, a);
            c8 = Fma(c8, m, a); c9 = Fma(c9, m, a); c10 = Fma(c10, m, a); c11 = Fma(c11, m, a);
        }
        return Vector256.Sum(((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7)) + ((c8 + c9) + (c10 + c11)));

        static Vector256<T> Fma(Vector256<T> x, Vector256<T> y, Vector256<T> z) =>
            typeof(T) == typeof(float) ? Vector256.FusedMultiplyAdd(x.AsSingle(), y.AsSingle(), z.AsSingle()).As<float, T>()
            : Vector256.FusedMultiplyAdd(x.AsDouble(), y.AsDouble(), z.AsDouble()).As<double, T>();
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static T LoopPortable<T>(long iterations) where T : unmanaged, IFloatingPointIeee754<T>
    {
        var m = new Vector<T>(T.One - T.One / T.CreateTruncating(1024));
        var a = new Vector<T>(T.One / T.CreateTruncating(1024));
        Vector<T> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default,
            c6 = default, c7 = default, c8 = default, c9 = default, c10 = default, c11 = default;
        for (long i = 0; i < iterations; i++)
        {
            c0 = Fma(c0, m, a); c1 = Fma(c1, m, a); c2 = Fma(c2, m, a); c3 = Fma(c3, m, a);
            c4 = Fma(c4, m, a); c5 = Fma(c5, m, a); c6 = Fma(c6, m, a); c7 = Fma(c7, m, a);
            c8 = Fma(c8, m, a); c9 = Fma(c9, m, a); c10 = Fma(c10, m, a); c11 = Fma(c11, m, a);
        }
        return Vector.Sum(((c0 + c1) + (c2 + c3)) + ((c4 + c5) + (c6 + c7)) + ((c8 + c9) + (c10 + c11)));

        static Vector<T> Fma(Vector<T> x, Vector<T> y, Vector<T> z) =>
            typeof(T) == typeof(float) ? Vector.MultiplyAddEstimate(x.As<T, float>(), y.As<T, float>(), z.As<T, float>()).As<float, T>()
            : Vector.MultiplyAddEstimate(x.As<T, double>(), y.As<T, double>(), z.As<T, double>()).As<double, T>();
    }
}
