using System.Diagnostics;
using Backprop.Kernels;

namespace Backprop.Benchmarks;

/// <summary>Times the fused Adam pass alone: small n stays in L1/L2 (the divide and square-root units bound it), large n streams memory.</summary>
internal static class OptimizerProbe
{
    public static double AdamNsPerElement(UpdateWidth width, int n)
    {
        float[] p = Parameters(n, out var g), m = new float[n], v = new float[n];
        return BestNsPerElement(n, () => OptimizerKernels.Adam(width, p.AsSpan(), g, m, v, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.001f, 0f, 0f));
    }

    /// <summary>The fused SGD-with-momentum pass alone (20 bytes a parameter moved): nanoseconds per element, best of 20 runs.</summary>
    public static double SgdNsPerElement(UpdateWidth width, int n)
    {
        float[] p = Parameters(n, out var g), b = new float[n];
        return BestNsPerElement(n, () => OptimizerKernels.Sgd(width, p.AsSpan(), g, b, 0.01f, 0.9f, 0f, nesterov: false, firstStep: false));
    }

    // random parameters in [0, 1) and gradients in [0, 0.01), the same for every pass
    private static float[] Parameters(int n, out float[] gradients)
    {
        var rng = new Random(1);
        float[] p = new float[n];
        gradients = new float[n];
        for (int i = 0; i < n; i++) (p[i], gradients[i]) = ((float)rng.NextDouble(), (float)rng.NextDouble() * 0.01f);
        return p;
    }

    // nanoseconds per element of one pass over n elements: the best of 20 runs of about 2^24 elements each
    private static double BestNsPerElement(int n, Func<bool> pass)
    {
        int reps = Math.Max(1, (1 << 24) / n);
        double best = double.MaxValue;
        for (int run = 0; run < 20; run++)
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int r = 0; r < reps; r++) pass();
            best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalNanoseconds / reps / n);
        }
        return best;
    }
}
