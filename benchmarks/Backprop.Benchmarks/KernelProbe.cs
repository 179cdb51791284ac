using System.Diagnostics;
using Backprop.Kernels;

namespace Backprop.Benchmarks;

/// <summary>Times the float AVX-512 micro-kernel on L1-resident packed panels (no packing, no memory traffic).</summary>
internal static unsafe class KernelProbe
{
    public static double Run<K>(int kc) where K : struct, IMicroKernel<float>
    {
        int mr = K.MR, nr = K.NR;
        var a = GC.AllocateArray<float>(mr * kc + 16, pinned: true);
        var b = GC.AllocateArray<float>(nr * kc + 16, pinned: true);
        var c = GC.AllocateArray<float>(mr * nr + 16, pinned: true);
        fixed (float* pa = a, pb = b, pc = c)
        {
            double best = 0;
            for (int rep = 0; rep < 10; rep++)
            {
                int iters = 20000;
                long t0 = Stopwatch.GetTimestamp();
                for (int i = 0; i < iters; i++) K.Run(kc, pa, pb, nr, pc, nr, true);
                double s = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                best = Math.Max(best, 2.0 * mr * nr * kc * iters / s / 1e9);
            }
            return best;
        }
    }
}
