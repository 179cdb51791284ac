using Backprop.Kernels;

namespace Backprop.Tests.Performance;

/// <summary>Allocation measured once code has reached its steady state.</summary>
public static class SteadyState
{
    /// <summary>
    /// Bytes that <paramref name="rounds"/> calls of <paramref name="round"/> allocate on the calling thread and on the
    /// context's workers, measured after warm-up: rounds are repeated (up to <paramref name="warmUpSeconds"/>) until one allocates nothing. The JIT
    /// allocates on the calling thread while it tiers code up or replaces a running loop (OSR), and on a loaded
    /// machine that goes on for a while; code that allocates on every call never reaches a clean round, so its bytes
    /// are still counted.
    /// </summary>
    public static long AllocatedBytes(Action round, ComputeContext context, int rounds, double warmUpSeconds = 20)
    {
        var deadline = DateTime.UtcNow.AddSeconds(warmUpSeconds);
        for (int warm = 0; warm < 3 || DateTime.UtcNow < deadline; warm++)
            if (Measure(round, context, 1) == 0 && warm >= 3) break;
        return Measure(round, context, rounds);
    }

    private static long Measure(Action round, ComputeContext context, int rounds)
    {
        long mine = GC.GetAllocatedBytesForCurrentThread();
        long workers = context.WorkerAllocatedBytesForCurrentThread;
        for (int r = 0; r < rounds; r++) round();
        return GC.GetAllocatedBytesForCurrentThread() - mine + (context.WorkerAllocatedBytesForCurrentThread - workers);
    }
}
