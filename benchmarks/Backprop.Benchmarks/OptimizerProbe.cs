using System.Diagnostics;
using Backprop.Kernels;

namespace Backprop.Benchmarks;

/// <summary>Times the fused Adam pass alone: small n stays in L1/L2 (the divide and square-root units bound it), large n streams memory.</summary>
internal static class OptimizerProbe
{
    public static double AdamNsPerElement(UpdateWidth width, int n)
    {
        var rng = new Random(1);
        float[] p = new float[n], g = new float[n], m = new float[n], v = new float[n];
        for (int i = 0; i < n; i++) (p[i], g[i]) = ((float)rng.NextDouble(), (float)rng.NextDouble() * 0.01f);
        int reps = Math.Max(1, (1 << 24) / n);
        double best = double.MaxValue;
        for (int run = 0; run < 20; run++)
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int r = 0; r < reps; r++)
                OptimizerKernels.Adam(width, p.AsSpan(), g, m, v, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.001f, 0f, 0f);
            best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalNanoseconds / reps / n);
        }
        return best;
    }

    /// <summary>The fused SGD-with-momentum pass alone (20 bytes a parameter moved): nanoseconds per element, best of 20 runs.</summary>
    public static double SgdNsPerElement(UpdateWidth width, int n)
    {
        var rng = new Random(1);
        float[] p = new float[n], g = new float[n], b = new float[n];
        for (int i = 0; i < n; i++) (p[i], g[i]) = ((float)rng.NextDouble(), (float)rng.NextDouble() * 0.01f);
        int reps = Math.Max(1, (1 << 24) / n);
        double best = double.MaxValue;
        for (int run = 0; run < 20; run++)
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int r = 0; r < reps; r++)
                OptimizerKernels.Sgd(width, p.AsSpan(), g, b, 0.01f, 0.9f, 0f, nesterov: false, firstStep: false);
            best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalNanoseconds / reps / n);
        }
        return best;
    }
}
