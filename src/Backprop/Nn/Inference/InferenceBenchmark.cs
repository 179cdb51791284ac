using System.Diagnostics;
using System.Numerics;
using Backprop.Kernels;

namespace Backprop.Nn.Inference;

/// <summary>One inference measurement: the best repetition's rate and time per call, and what a warm call allocated.</summary>
/// <param name="Batch">Rows per call.</param>
/// <param name="SamplesPerSecond">Rows predicted per second in the best repetition.</param>
/// <param name="RunMicroseconds">Time of one call on the batch in the best repetition, in microseconds.</param>
/// <param name="AllocatedBytesPerRun">Managed bytes a warm call allocated, calling and worker threads together (0 is the goal).</param>
public sealed record InferenceBenchmarkResult(int Batch, double SamplesPerSecond, double RunMicroseconds, double AllocatedBytesPerRun);

/// <summary>
/// Times the forward pass alone of a compiled network (<see cref="InferenceNetwork{T}"/>) on a random batch (seeded),
/// in evaluation mode: warm-up, then the best of several repetitions, each looping enough calls to last a while. The
/// ONNX Runtime benchmark under benchmarks/ measures the same way, so the two figures compare like with like.
/// </summary>
public static class InferenceBenchmark
{
    /// <summary>
    /// Compiles <paramref name="network"/> (a copy, in evaluation mode) and times
    /// <see cref="InferenceNetwork{T}.Predict(ReadOnlySpan{T}, Span{T}, int)"/> on one random batch.
    /// </summary>
    /// <param name="network">The network to measure; it is not changed.</param>
    /// <param name="batch">Rows per call (at least 1).</param>
    /// <param name="context">What the compiled network runs on (null: <see cref="ComputeContext.Default"/>).</param>
    /// <param name="reps">Timed repetitions (at least 1); the best is reported.</param>
    /// <param name="repSeconds">Approximate length of one repetition, in seconds.</param>
    /// <param name="warmupSeconds">Untimed calls first: the JIT tiers the code up and the buffers grow.</param>
    /// <param name="seed">Seed of the random input batch (uniform in [-1, 1)).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="batch"/> or <paramref name="reps"/> is less than 1.</exception>
    public static InferenceBenchmarkResult Run<T>(Sequential<T> network, int batch, ComputeContext? context = null, int reps = 7,
        double repSeconds = 0.2, double warmupSeconds = 0.5, int seed = 0) where T : unmanaged, IFloatingPointIeee754<T>
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(reps, 1);
        var compiled = InferenceNetwork<T>.Compile(network, context);
        var rng = new Random(seed);
        var x = new T[batch * compiled.Inputs];
        for (int i = 0; i < x.Length; i++) x[i] = T.CreateChecked(rng.NextDouble() * 2 - 1);
        var y = new T[batch * compiled.Outputs];
        var warm = Stopwatch.StartNew();
        long calls = 0;
        while (warm.Elapsed.TotalSeconds < warmupSeconds || calls < 10) { compiled.Predict(x, y, batch); calls++; }
        long inner = Math.Max(1, (long)(calls * repSeconds / warm.Elapsed.TotalSeconds));

        long workersBefore = compiled.Context.WorkerAllocatedBytesForCurrentThread;
        long callerBefore = GC.GetAllocatedBytesForCurrentThread();
        double best = double.MaxValue;
        for (int r = 0; r < reps; r++)
        {
            long t0 = Stopwatch.GetTimestamp();
            for (long i = 0; i < inner; i++) compiled.Predict(x, y, batch);
            best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds / inner);
        }
        double allocated = (GC.GetAllocatedBytesForCurrentThread() - callerBefore + compiled.Context.WorkerAllocatedBytesForCurrentThread - workersBefore)
            / (double)(reps * inner);
        return new InferenceBenchmarkResult(batch, batch / best, best * 1e6, allocated);
    }
}
