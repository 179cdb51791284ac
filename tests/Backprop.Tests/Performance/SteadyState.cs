using Backprop.Kernels;

namespace Backprop.Tests.Performance;

/// <summary>Allocation measured once code has reached its steady state.</summary>
public static class SteadyState
{
    /// <summary>
    /// Bytes that <paramref name="rounds"/> calls of <paramref name="round"/> allocate on the calling thread and on the
    /// context's workers once warm: rounds are repeated (up to <paramref name="warmUpSeconds"/>) until one allocates
    /// nothing, then <paramref name="rounds"/> are measured; the smallest of three such measurements is returned.
    /// Why not one: the JIT allocates on the calling thread while it tiers code up or replaces a running loop (OSR),
    /// and under load a worker may first meet a piece of a split product late and size its scratch then (seen in
    /// full-suite runs on a loaded 2-core machine, one run in several). Code that allocates on every call allocates
    /// in every measurement, so it is still counted.
    /// </summary>
    public static long AllocatedBytes(Action round, ComputeContext context, int rounds, double warmUpSeconds = 20)
    {
        long best = long.MaxValue;
        for (int attempt = 0; attempt < 3 && best != 0; attempt++)
        {
            var deadline = DateTime.UtcNow.AddSeconds(warmUpSeconds / 3);
            for (int warm = 0; warm < 3 || DateTime.UtcNow < deadline; warm++)
                if (Measure(round, context, 1) == 0 && warm >= 3) break;
            best = Math.Min(best, Measure(round, context, rounds));
        }
        return best;
    }

    private static long Measure(Action round, ComputeContext context, int rounds)
    {
        long mine = GC.GetAllocatedBytesForCurrentThread();
        long workers = context.WorkerAllocatedBytesForCurrentThread;
        for (int r = 0; r < rounds; r++) round();
        return GC.GetAllocatedBytesForCurrentThread() - mine + (context.WorkerAllocatedBytesForCurrentThread - workers);
    }
}
