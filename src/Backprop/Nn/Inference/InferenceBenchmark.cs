using System.Diagnostics;
using System.Numerics;
using Backprop.Kernels;

namespace Backprop.Nn.Inference;

/// <summary>One inference measurement: the best repetition's rate and time per call, and what a warm call allocated.</summary>
public sealed record InferenceBenchmarkResult(int Batch, double SamplesPerSecond, double RunMicroseconds, double AllocatedBytesPerRun);

/// <summary>
/// Times the forward pass alone of a compiled network (<see cref="InferenceNetwork{T}"/>) on a random batch (seeded),
/// in evaluation mode: warm-up, then the best of several repetitions, each looping enough calls to last a while. The
/// ONNX Runtime benchmark under benchmarks/ measures the same way, so the two figures compare like with like.
/// </summary>
public static class InferenceBenchmark
{
    /// <param name="warmupSeconds">Untimed calls first: the JIT tiers the code up and the buffers grow.</param>
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
